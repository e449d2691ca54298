"""fuse-elementwise: chains of elementwise and broadcasting ops become one `fused` group.

Rules, per block (a group never spans a region boundary; inside a scan body it forms there):
- a producer joins a consumer's group when both are elementwise (or elementwise groups) with
  the same result shape; chains and diamonds grow to one group while it stays convex and within
  the cost model's size limit;
- a producer with several consumers joins the first consumer's group; a consumer that cannot join
  reads the value the group writes out (once, as an extra result): nothing is recomputed;
- smaller-shaped producers that a consumer broadcasts (a bias transformed on the fly), sources
  (`full`, `iota`) and cheap ops read by several groups are copied into each reading group when
  the cost model allows (fusion_cost.may_copy);
- a lone elementwise op stays as it is: it is one kernel already.
"""

from __future__ import annotations

from archir.passes import fusion_cost as cost
from archir.passes.fusion_graph import Block, Partition, for_each_block
from archir.passes.fusion_group import apply_partition

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op
from archir.types import TensorType

RULE = "fuse-elementwise"


@register_pass(RULE)
def fuse_elementwise(graph: Graph, /) -> Graph:
    """Group chains of elementwise and broadcast ops into fused groups of kind elementwise."""
    for_each_block(graph, _plan)
    return graph


def is_elementwise(node: Node) -> bool:
    """An elementwise op, or a group that is nothing but elementwise ops."""
    if node.op == "fused":
        return node.attrs["kind"] == "elementwise"
    op = get_op(node.op)
    return (op.has(Trait.ELEMENTWISE) and not op.has(Trait.RANDOM) and not op.has(Trait.SIDE_EFFECT)
            and len(node.outputs) == 1)


def result_shape(node: Node) -> tuple | None:
    t = node.outputs[0].type
    return tuple(t.shape) if isinstance(t, TensorType) else None


def _plan(block: Block) -> list[Node]:
    partition = Partition(block)
    for node in block.nodes:
        if not is_elementwise(node):
            continue
        cluster = partition.cluster_of.get(node) or partition.new(node, "elementwise", RULE)
        for v in node.inputs:
            producer = block.producer(v)
            if producer is None or not is_elementwise(producer):
                continue
            if result_shape(producer) != result_shape(node):
                continue  # a broadcast producer: only copied in, by the cost model's leave
            other = partition.cluster_of.get(producer)
            if other is not None and partition.try_merge(other, cluster):
                cluster = other
    partition.drop_small(2)
    partition.plan_copies(cost.may_copy)
    partition.drop_lone()
    return apply_partition(block, partition)
