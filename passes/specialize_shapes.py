"""Shape specialisation: bind symbolic dims to sizes (`specialize-shapes{B=4,T=128}`).

Every type (inputs, params, results, region arguments) and every DIMS attribute is rewritten,
then each node's types are inferred again and checked, so a size that breaks a shape rule is
reported at the node it breaks. Symbols left unbound stay symbolic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from archir.builder import infer_types
from archir.errors import ArchirError, PassError
from archir.ir import Graph, Node, Value
from archir.pass_manager import register_pass
from archir.registry import AttrKind, get_op
from archir.symbolic import Dim, free_symbols, substitute
from archir.types import TensorType, TupleType, Type

_SIZE = re.compile(r"-?\d+\Z")


@register_pass("specialize-shapes")
def specialize_shapes(graph: Graph, /, **sizes: str) -> Graph:
    """Substitute sizes for the named symbols everywhere and re-check every node's types."""
    bindings = _parse_sizes(sizes)
    known = _graph_symbols(graph)
    for name in bindings:
        if name not in known:
            raise PassError(f"graph @{graph.name} has no symbol '{name}'",
                            hint=f"its symbols: {', '.join(sorted(known)) or 'none'}")
    if not bindings:
        return graph
    for v in _values(graph):
        v.type = _substitute_type(v, bindings)
    _check_nodes(graph.nodes, bindings)
    return graph


def _parse_sizes(sizes: dict[str, str]) -> dict[str, int]:
    bindings: dict[str, int] = {}
    for name, text in sizes.items():
        if not _SIZE.match(text):
            raise PassError(f"size of symbol '{name}' must be an integer, got '{text}'",
                            hint="write specialize-shapes{B=4,T=128}")
        bindings[name] = int(text)
    return bindings


def _values(graph: Graph) -> Iterator[Value]:
    """Every value the graph defines: inputs, params, results and region arguments."""
    yield from graph.inputs
    yield from graph.params
    for node in graph.walk():
        yield from node.outputs
        for region in node.regions:
            yield from region.args


def _graph_symbols(graph: Graph) -> set[str]:
    names: set[str] = set()
    for v in _values(graph):
        names |= _type_symbols(v.type)
    for node in graph.walk():
        for key in _dims_attrs(node):
            for d in node.attrs[key]:
                names |= free_symbols(d)
    return names


def _type_symbols(t: Type) -> set[str]:
    if isinstance(t, TensorType):
        return t.free_symbols()
    if isinstance(t, TupleType):
        names: set[str] = set()
        for element in t.elements:
            names |= _type_symbols(element)
        return names
    return set()


def _dims_attrs(node: Node) -> list[str]:
    return [key for key, spec in get_op(node.op).attrs.items()
            if spec.kind is AttrKind.DIMS and node.attrs.get(key) is not None]


def _substitute_type(v: Value, bindings: dict[str, int]) -> Type:
    try:
        return _substitute(v.type, bindings)
    except PassError as err:
        what = f"%{v.name}" if v.name else f"a {v.kind} value"
        raise PassError(f"{err.message} in the type {v.type} of {what}",
                        hint=err.hint) from None


def _substitute(t: Type, bindings: dict[str, int]) -> Type:
    if isinstance(t, TensorType):
        return t.with_shape(_substitute_dim(d, bindings) for d in t.shape)
    if isinstance(t, TupleType):
        return TupleType(tuple(_substitute(e, bindings) for e in t.elements))
    return t


def _substitute_dim(d: Dim, bindings: dict[str, int]) -> Dim:
    if isinstance(d, int):
        return d  # kept as is: -1 in a reshape or expand target is not a size
    try:
        value = substitute(d, bindings)
    except ArchirError as err:
        raise PassError(f"binding {_show(bindings)} makes dim {d} invalid: {err.message}") from None
    if isinstance(value, int) and value < 0:
        raise PassError(f"binding {_show(bindings)} makes dim {d} negative ({value})",
                        hint="choose sizes that keep every dim >= 0")
    return value


def _check_nodes(nodes: list[Node], bindings: dict[str, int]) -> None:
    """Substitute DIMS attributes, then infer each node again (regions before their owner)."""
    for node in nodes:
        try:
            for key in _dims_attrs(node):
                node.attrs[key] = tuple(_substitute_dim(d, bindings) for d in node.attrs[key])
        except PassError as err:
            raise err.with_context(loc=node.loc, node=node.describe()) from None
        for region in node.regions:
            _check_nodes(region.nodes, bindings)
        _check_types(node, bindings)


def _check_types(node: Node, bindings: dict[str, int]) -> None:
    try:
        inferred = infer_types(get_op(node.op), node.inputs, node.attrs, node.regions)
    except ArchirError as err:
        raise PassError(f"binding {_show(bindings)} makes {node.op} invalid: {err.message}",
                        loc=node.loc, node=node.describe()) from None
    declared = [v.type for v in node.outputs]
    if inferred != declared:
        got = ", ".join(map(str, inferred))
        want = ", ".join(map(str, declared))
        raise PassError(f"after binding {_show(bindings)}, {node.op} infers ({got}) where its "
                        f"results were ({want})", loc=node.loc, node=node.describe())


def _show(bindings: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in bindings.items())
