"""Algebraic simplification: identities (x*1, x+0, neg(neg(x)), ...) and layout no-ops.

A rewrite applies only when its replacement has exactly the type of the value it replaces, so
`x + zeros` that broadcasts x to a larger shape stays. Constants are `full` nodes. Nodes left
without readers are for `dce` to remove.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archir.errors import ArchirError
from archir.ir import Graph, Node, Value
from archir.pass_manager import register_pass
from archir.rewrite import Emit, make_node, producer, rewrite_graph

Rule = Callable[[Node, Emit], Value | None]
_MAX_SWEEPS = 16  # each sweep finishes whole chains; more than two is already rare


@register_pass("simplify")
def simplify(graph: Graph, /) -> Graph:
    """Rewrite algebraic identities and no-op layout changes away."""
    for _ in range(_MAX_SWEEPS):
        if not rewrite_graph(graph, _apply):
            break
    return graph


def _apply(node: Node, emit: Emit) -> Sequence[Value] | None:
    rule = _RULES.get(node.op)
    if rule is None or len(node.outputs) != 1:
        return None
    value = rule(node, emit)
    return None if value is None else [value]


def _pick(node: Node, *candidates: Value | None) -> Value | None:
    """The first candidate of exactly the node's result type."""
    want = node.outputs[0].type
    for v in candidates:
        if v is not None and v.type == want:
            return v
    return None


def _constant(v: Value, value: float) -> bool:
    full = producer(v, "full")
    return full is not None and full.attrs["value"] == value


def _unless_const(keep: Value, other: Value, value: float) -> Value | None:
    return keep if _constant(other, value) else None


# -- arithmetic identities --------------------------------------------------------------------
def _add(node: Node, _: Emit) -> Value | None:
    a, b = node.inputs
    return _pick(node, _unless_const(a, b, 0.0), _unless_const(b, a, 0.0))


def _mul(node: Node, _: Emit) -> Value | None:
    a, b = node.inputs
    return _pick(node, _unless_const(a, b, 1.0), _unless_const(b, a, 1.0))


def _right_identity(value: float) -> Rule:
    """`x op c -> x` for a right identity c (x - 0, x / 1, x ** 1)."""

    def rule(node: Node, _: Emit) -> Value | None:
        a, b = node.inputs
        return _pick(node, _unless_const(a, b, value))

    return rule


def _neg(node: Node, _: Emit) -> Value | None:
    inner = producer(node.inputs[0], "neg")
    return _pick(node, inner.inputs[0]) if inner is not None else None


def _same_type(node: Node, _: Emit) -> Value | None:
    """reshape, expand, cast, squeeze or unsqueeze to the type it already has."""
    return _pick(node, node.inputs[0])


# -- layout -----------------------------------------------------------------------------------
def _perm(node: Node) -> tuple[int, ...]:
    rank = len(node.attrs["perm"])
    return tuple(p % rank for p in node.attrs["perm"])


def _transpose(node: Node, emit: Emit) -> Value | None:
    x, perm = node.inputs[0], _perm(node)
    inner = producer(x, "transpose")
    if inner is not None:
        # transpose(transpose(x, p), q)[i] reads x along p[q[i]].
        inner_perm = _perm(inner)
        x, perm = inner.inputs[0], tuple(inner_perm[q] for q in perm)
    if perm == tuple(range(len(perm))):
        return _pick(node, x)
    if inner is None:
        return None
    return _emit_if_same(node, emit, "transpose", x, {"perm": perm})


def _reshape(node: Node, emit: Emit) -> Value | None:
    x = node.inputs[0]
    inner = producer(x, "reshape")
    if inner is None or x.type == node.outputs[0].type:
        return _pick(node, x)
    source = inner.inputs[0]
    if source.type == node.outputs[0].type:
        return source
    return _emit_if_same(node, emit, "reshape", source, {"shape": node.attrs["shape"]})


def _squeeze_pair(other: str) -> Rule:
    """squeeze(unsqueeze(x)) or unsqueeze(squeeze(x)) back to x's type: both only reshape."""

    def rule(node: Node, _: Emit) -> Value | None:
        x = node.inputs[0]
        inner = producer(x, other)
        return _pick(node, x, inner.inputs[0] if inner is not None else None)

    return rule


def _emit_if_same(node: Node, emit: Emit, op: str, x: Value, attrs: dict) -> Value | None:
    try:
        new = make_node(op, [x], attrs, node.name, node.loc)
    except ArchirError:
        return None
    if new.outputs[0].type != node.outputs[0].type:
        return None
    new.outputs[0].name = node.outputs[0].name  # the printer keeps the name readers know
    emit(new)
    return new.outputs[0]


_RULES: dict[str, Rule] = {
    "add": _add,
    "mul": _mul,
    "sub": _right_identity(0.0),
    "div": _right_identity(1.0),
    "pow": _right_identity(1.0),
    "neg": _neg,
    "transpose": _transpose,
    "reshape": _reshape,
    "expand": _same_type,
    "cast": _same_type,
    "squeeze": _squeeze_pair("unsqueeze"),
    "unsqueeze": _squeeze_pair("squeeze"),
}
