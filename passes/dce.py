"""Dead code elimination: drop nodes whose results nobody reads, at every depth, and unused params.

Liveness is marked in one backward walk: SSA order puts every reader of a value after the node
that makes it (or inside a later node's region), so the walk reaches the fixed point at once.
"""

from __future__ import annotations

from archir.ir import Graph, Node, Value
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op


@register_pass("dce")
def dce(graph: Graph, /) -> Graph:
    """Remove nodes no output, node or region yield reads (keeping side effects) and unused params."""
    live: set[Value] = set(graph.outputs)
    graph.nodes = _sweep(graph.nodes, live)
    kept = [p for p in graph.params if p in live]
    for p in graph.params:
        if p not in live and p.name is not None:
            graph.param_data.pop(p.name, None)
    graph.params = kept
    return graph


def _sweep(nodes: list[Node], live: set[Value]) -> list[Node]:
    """Keep the live nodes of one block (last to first), marking what they read as live."""
    kept: list[Node] = []
    for node in reversed(nodes):
        if not _has_effect(node) and not any(v in live for v in node.outputs):
            continue
        for region in node.regions:
            live.update(region.results)
            region.nodes = _sweep(region.nodes, live)
        live.update(node.inputs)
        kept.append(node)
    kept.reverse()
    return kept


def _has_effect(node: Node) -> bool:
    if get_op(node.op).has(Trait.SIDE_EFFECT):
        return True
    return any(_has_effect(inner) for region in node.regions for inner in region.nodes)
