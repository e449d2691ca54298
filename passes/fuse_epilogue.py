"""fuse-epilogue: a contraction and the elementwise ops applied to its result become one group.

Rules, per block:
- anchors are contractions: `matmul`, `linear`, `conv1d`, `conv2d`;
- the epilogue is the chain that follows: while the last value has exactly one reader, that reader
  is elementwise (bias add, activation, residual add, scale) or, after a convolution, an inference
  `batch_norm` (a per-channel affine), and its result has the contraction's shape, it joins;
- a value in the chain with several readers ends it (it is the group's result, written once);
- small or cheap side operands (a scalar scale made by `full`) are copied in by the cost model;
- the group's kind is `gemm_epilogue` and its body starts with the contraction, so a backend can
  apply the epilogue to each output tile before it is stored. A contraction with no epilogue
  stays as it is.
"""

from __future__ import annotations

from archir.passes import fusion_cost as cost
from archir.passes.fuse_elementwise import is_elementwise, result_shape
from archir.passes.fusion_graph import Block, Partition, for_each_block
from archir.passes.fusion_group import apply_partition

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op

RULE = "fuse-epilogue"
CONVOLUTIONS = ("conv1d", "conv2d", "conv3d")


@register_pass(RULE)
def fuse_epilogue(graph: Graph, /) -> Graph:
    """Fuse matmul/linear/conv with the bias, activation, residual and scale ops that follow."""
    for_each_block(graph, _plan)
    return graph


def is_contraction(node: Node) -> bool:
    return node.op != "fused" and get_op(node.op).has(Trait.CONTRACTION) and len(node.outputs) == 1


def _joins(anchor: Node, node: Node) -> bool:
    if result_shape(node) != result_shape(anchor):
        return False
    if is_elementwise(node):
        return True
    return node.op == "batch_norm" and anchor.op in CONVOLUTIONS


def _plan(block: Block) -> list[Node]:
    partition = Partition(block)
    for node in block.nodes:
        if not is_contraction(node) or node in partition.cluster_of:
            continue
        cluster = partition.new(node, "gemm_epilogue", RULE, anchor=node)
        tail = node
        while len(tail.outputs) == 1 and not block.escapes(tail):
            readers = block.readers(tail)
            if len(readers) != 1:
                break
            reader = readers[0]
            if reader.inputs[0] is not tail.outputs[0] and reader.op == "batch_norm":
                break  # the chain must be batch_norm's data operand, not its statistics
            if not _joins(node, reader) or not partition.try_add(cluster, reader):
                break
            tail = reader
    partition.drop_small(2)
    partition.plan_copies(cost.may_copy)
    partition.drop_lone()
    return apply_partition(block, partition)
