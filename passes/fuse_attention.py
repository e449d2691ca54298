"""fuse-attention: attention as one flash-style group, from the `attention` op or its pattern.

Rules, per block:
- an `attention` node becomes a group of kind `attention` with `flash = true`;
- the decomposed pattern `matmul(softmax(matmul(q, kT) * s + mask), v)` is recognised from each
  last-axis softmax: the first matmul is found walking back through elementwise ops of the score
  shape, the second walking forward from the softmax to a matmul that reads the probabilities as
  its left operand. Every node on a path between the two matmuls joins (scale, mask add or
  where, the row max of a fully-masked-row guard, the softmax);
- the pattern is taken only when nothing outside it reads any value it makes but the final
  product: the [Tq, Tk] scores and probabilities are internal to the group, which is what lets a
  backend run it with key tiles and an online softmax and never store the score matrix;
- cheap mask and scale producers (`iota`, comparisons, `full`) are copied in by the cost model.
"""

from __future__ import annotations

from archir.passes import fusion_cost as cost
from archir.passes.fuse_elementwise import is_elementwise, result_shape
from archir.passes.fusion_graph import Block, Partition, for_each_block
from archir.passes.fusion_group import apply_partition

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op
from archir.types import TensorType

RULE = "fuse-attention"


@register_pass(RULE)
def fuse_attention(graph: Graph, /) -> Graph:
    """Turn attention ops and softmax(QK^T*s + mask)V patterns into flash attention groups."""
    for_each_block(graph, _plan)
    return graph


def _plan(block: Block) -> list[Node]:
    partition = Partition(block)
    for node in block.nodes:
        if node in partition.cluster_of:
            continue
        if node.op == "attention":
            partition.new(node, "attention", RULE, anchor=node, flash=True)
        elif node.op == "softmax":
            pattern = match_pattern(block, node)
            if pattern is not None:
                _claim(partition, pattern, node)
    partition.plan_copies(cost.may_copy)
    return apply_partition(block, partition)


def _claim(partition: Partition, pattern: list[Node], softmax: Node) -> None:
    if any(node in partition.cluster_of for node in pattern):
        return
    cluster = partition.new(pattern[0], "attention", RULE, anchor=softmax, flash=True)
    for node in pattern[1:]:
        if not partition.try_add(cluster, node):
            partition.dissolve(cluster)
            return


def _is_matmul(node: Node | None) -> bool:
    return node is not None and node.op == "matmul"


def _last_axis(softmax: Node) -> bool:
    t = softmax.inputs[0].type
    return isinstance(t, TensorType) and softmax.attrs["axis"] in (-1, t.rank - 1)


def match_pattern(block: Block, softmax: Node) -> list[Node] | None:
    """The nodes of `matmul(softmax(matmul(q, kT) ...), v)` around `softmax`, in schedule order."""
    if not _last_axis(softmax):
        return None
    first = _score_matmul(block, softmax)
    second = _value_matmul(block, softmax)
    if first is None or second is None:
        return None
    lo, hi = block.index[first], block.index[second]
    after = _reachable(block, first, lo, hi, forward=True)
    before = _reachable(block, second, lo, hi, forward=False)
    pattern = sorted(after & before | {first, second}, key=block.index.__getitem__)
    return pattern if _well_formed(block, pattern, softmax, second) else None


def _score_matmul(block: Block, softmax: Node) -> Node | None:
    """The one matmul that makes the scores, through elementwise ops of the score shape."""
    space = tuple(softmax.inputs[0].type.shape)  # type: ignore[union-attr]
    found: set[Node] = set()
    frontier, seen = [softmax], {softmax}
    while frontier:
        node = frontier.pop()
        for v in node.inputs:
            producer = block.producer(v)
            if producer is None or producer in seen or result_shape(producer) != space:
                continue
            seen.add(producer)
            if _is_matmul(producer):
                found.add(producer)
            elif is_elementwise(producer) and producer.op != "fused":
                frontier.append(producer)
    return found.pop() if len(found) == 1 else None


def _value_matmul(block: Block, softmax: Node) -> Node | None:
    """The matmul reading the probabilities (left operand), through elementwise ops."""
    current = softmax
    while True:
        readers = block.readers(current)
        if len(readers) != 1 or block.escapes(current):
            return None
        reader = readers[0]
        if _is_matmul(reader):
            return reader if reader.inputs[0] is current.outputs[0] else None
        if not is_elementwise(reader) or reader.op == "fused":
            return None
        current = reader


def _reachable(block: Block, start: Node, lo: int, hi: int, *, forward: bool) -> set[Node]:
    """Nodes with schedule index in [lo, hi] reachable from `start` along (or against) reads."""
    found: set[Node] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if forward:
            nexts = block.readers(node)
        else:
            nexts = [p for v in node.inputs if (p := block.producer(v)) is not None]
        for n in nexts:
            if n not in found and lo <= block.index[n] <= hi:
                found.add(n)
                stack.append(n)
    return found


def _well_formed(block: Block, pattern: list[Node], softmax: Node, second: Node) -> bool:
    """Primitive ops only, one softmax, and nothing but the final product read outside."""
    inside = set(pattern)
    for node in pattern[1:-1]:
        op = get_op(node.op)
        if node.regions or not (op.has(Trait.ELEMENTWISE) or op.has(Trait.REDUCTION)
                                or node is softmax):
            return False
    for node in pattern:
        if node is second:
            continue
        if block.escapes(node) or any(r not in inside for r in block.readers(node)):
            return False
    return True
