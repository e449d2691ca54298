"""fold-layout: views feeding a kernel are folded into that kernel's group, so no copy is made.

Rules, per block:
- the views are `transpose`, `reshape`, `expand`, `squeeze` and `unsqueeze`: each only remaps
  indices, so inside a group it costs nothing but the indexing of the read;
- a view whose every reader is a fused group is copied into each of them (chains of views fold
  one after the other, from the consumer back); the group keeps its kind and adds `fold-layout`
  to its rules;
- a view read by a lone kernel op (elementwise, reduction, normalization, contraction, attention)
  makes a new group of kind `layout` holding the views and that op;
- a view read by anything else (a control-flow op, a graph output, a concat) stays, since its
  result is materialised anyway; sources (`full`, `iota`) read only by groups are copied too.
"""

from __future__ import annotations

from archir.passes import fusion_cost as cost
from archir.passes.fusion_graph import Block, Partition, for_each_block
from archir.passes.fusion_group import apply_partition

from archir.ir import Graph, Node
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op

RULE = "fold-layout"
_KERNEL_TRAITS = (Trait.ELEMENTWISE, Trait.REDUCTION, Trait.NORMALIZATION, Trait.CONTRACTION)


@register_pass(RULE)
def fold_layout(graph: Graph, /) -> Graph:
    """Fold transpose/reshape/expand/squeeze/unsqueeze into the groups that read them."""
    for_each_block(graph, _plan)
    return graph


def is_kernel(node: Node) -> bool:
    """A lone op that a backend runs as a kernel of its own and could index through a view."""
    if node.regions or cost.is_view(node):
        return False
    op = get_op(node.op)
    return node.op == "attention" or any(op.has(t) for t in _KERNEL_TRAITS)


def _plan(block: Block) -> list[Node]:
    skip: set[Node] = set()
    while True:
        partition = _partition(block, skip)
        # a lone op whose views could not all be folded gains nothing: plan again without it
        idle = [c.members[0] for c in partition.clusters
                if c.kind == "layout" and c.rule == RULE and c.members[0].op != "fused"
                and not any(cost.is_view(n) for n in c.copies)]
        if not idle:
            return apply_partition(block, partition)
        skip.update(idle)


def _partition(block: Block, skip: set[Node]) -> Partition:
    partition = Partition(block)
    for node in block.nodes:
        if node.op == "fused":
            partition.new(node, node.attrs["kind"], RULE, anchor=node)
    for node in block.nodes:
        if not cost.is_view(node):
            continue
        for reader in block.readers(node):
            if reader not in partition.cluster_of and reader not in skip and is_kernel(reader):
                partition.new(reader, "layout", RULE, anchor=reader)
    partition.plan_copies(lambda node, groups: cost.may_fold_view(node))
    return partition
