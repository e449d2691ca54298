"""Common subexpression elimination: one node for each (op, inputs, attributes) computation.

Scoped like SSA visibility: a node in a region may reuse an equal node of an enclosing scope
defined before it, never one from inside another region; a fused body is closed, so nothing
outside it. Random and side-effecting ops, and nodes with regions, are never merged.
"""

from __future__ import annotations

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, attr_equal, get_op
from archir.rewrite import Substitution

_Key = tuple[str, tuple[int, ...]]
_Scope = dict[_Key, list[Node]]


@register_pass("cse")
def cse(graph: Graph, /) -> Graph:
    """Merge nodes with the same op, the same inputs and equal attributes."""
    subst = Substitution()
    graph.nodes = _block(graph.nodes, [{}], subst)
    graph.outputs = subst.resolve_all(graph.outputs)
    return graph


def _block(nodes: list[Node], scopes: list[_Scope], subst: Substitution) -> list[Node]:
    kept: list[Node] = []
    for node in nodes:
        subst.apply_to_inputs(node)
        for region in node.regions:
            # a fused body is closed (it reads only its arguments): no reuse from outside it
            inner = [] if node.op == "fused" else scopes
            inner.append({})
            region.nodes = _block(region.nodes, inner, subst)
            subst.apply_to_yield(region)
            inner.pop()
        if not _mergeable(node):
            kept.append(node)
            continue
        key = _key(node)
        earlier = _lookup(scopes, key, node)
        if earlier is None:
            scopes[-1].setdefault(key, []).append(node)
            kept.append(node)
        else:
            subst.replace_results(node, earlier.outputs)
    return kept


def _mergeable(node: Node) -> bool:
    op = get_op(node.op)
    return not node.regions and not op.has(Trait.RANDOM) and not op.has(Trait.SIDE_EFFECT)


def _key(node: Node) -> _Key:
    ids = [id(v) for v in node.inputs]
    if get_op(node.op).has(Trait.COMMUTATIVE):
        ids.sort()
    return node.op, tuple(ids)


def _lookup(scopes: list[_Scope], key: _Key, node: Node) -> Node | None:
    for scope in reversed(scopes):
        for candidate in scope.get(key, ()):
            if _same_attrs(candidate, node):
                return candidate
    return None


def _same_attrs(a: Node, b: Node) -> bool:
    if a.attrs.keys() != b.attrs.keys():
        return False
    return all(attr_equal(a.attrs[k], b.attrs[k]) for k in a.attrs)
