"""fuse-reductions: a normalization or reduction with its elementwise producers and consumers.

Rules, per block:
- anchors are `softmax`, `log_softmax`, `layer_norm`, `rms_norm`, `batch_norm` and the plain
  reductions (`sum`, `mean`, `max`, ...); a group holds one anchor, so it stays one or two passes
  over the data (statistics, then normalise-and-apply);
- producers join when they are elementwise (or elementwise groups) with the shape of the anchor's
  data operand, transitively (a residual add before a layer norm, a mask before a softmax);
- consumers join when they are elementwise with the anchor's result shape, transitively (the
  scale, bias, activation and residual add after a layer norm), except one read by another
  anchor: it joins that anchor as a producer, so its result need not be stored at all;
- a joined value that is also read elsewhere becomes a result of the group (written once);
- cheap side operands are copied in by the cost model; a lone anchor stays as it is.
"""

from __future__ import annotations

from archir.passes import fusion_cost as cost
from archir.passes.fuse_elementwise import is_elementwise, result_shape
from archir.passes.fusion_graph import Block, Cluster, Partition, for_each_block
from archir.passes.fusion_group import apply_partition

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op
from archir.types import TensorType

RULE = "fuse-reductions"


@register_pass(RULE)
def fuse_reductions(graph: Graph, /) -> Graph:
    """Fuse softmax, norms and reductions with their elementwise producers and consumers."""
    for_each_block(graph, _plan)
    return graph


def is_reduction_anchor(node: Node) -> bool:
    if node.op == "fused" or len(node.outputs) != 1 or not node.inputs:
        return False
    op = get_op(node.op)
    return op.has(Trait.NORMALIZATION) or op.has(Trait.REDUCTION)


def _data_shape(node: Node) -> tuple | None:
    t = node.inputs[0].type
    return tuple(t.shape) if isinstance(t, TensorType) else None


def _plan(block: Block) -> list[Node]:
    partition = Partition(block)
    for node in block.nodes:
        if is_reduction_anchor(node) and node not in partition.cluster_of:
            cluster = partition.new(node, "reduction", RULE, anchor=node)
            _grow_producers(block, partition, cluster, node)
            _grow_consumers(block, partition, cluster, node)
    partition.drop_small(2)
    partition.plan_copies(cost.may_copy)
    partition.drop_lone()
    return apply_partition(block, partition)


def _grow_producers(block: Block, partition: Partition, cluster: Cluster, anchor: Node) -> None:
    space = _data_shape(anchor)
    frontier = [anchor]
    while frontier:
        node = frontier.pop()
        for v in node.inputs:
            producer = block.producer(v)
            if (producer is not None and is_elementwise(producer)
                    and result_shape(producer) == space and partition.try_add(cluster, producer)):
                frontier.append(producer)


def _grow_consumers(block: Block, partition: Partition, cluster: Cluster, anchor: Node) -> None:
    space = result_shape(anchor)
    frontier = [anchor]
    while frontier:
        node = frontier.pop(0)
        if len(node.outputs) != 1:
            continue
        for reader in block.readers(node):
            if _feeds_anchor(block, reader):
                continue  # better as the producer of that anchor: its result need not be stored
            if (is_elementwise(reader) and result_shape(reader) == space
                    and partition.try_add(cluster, reader)):
                frontier.append(reader)


def _feeds_anchor(block: Block, node: Node) -> bool:
    return any(is_reduction_anchor(r) for r in block.readers(node))
