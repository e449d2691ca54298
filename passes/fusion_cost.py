"""The fusion cost model: how big a group may grow, and which producers may be recomputed.

Fusion in archir partitions a block: each node lands in at most one group, and a value that a
group makes and something outside reads is written out once (an extra output), never recomputed.
The one exception is copying a producer into every group that reads it, which saves writing and
re-reading its result but repeats its work once per group. The rules:

1. A group holds at most MAX_GROUP_NODES primitive ops (bigger bodies give backends register
   pressure and long compile times for little extra saving).
2. A producer outside any group may be copied into the groups that read it only when everything
   that reads it is in a group (otherwise it is computed anyway), it is not a contraction's
   operand there (a contraction reads each element many times: a copy would be recomputed each
   time; views and sources excepted) and recomputing it is cheap:
   - sources (`full`, `iota`) read no memory, so copies are free;
   - a view (`reshape`, `transpose`, `expand`, `squeeze`, `unsqueeze`) is only indexing, once folded
     into its consumer (fold-layout copies these alone);
   - an elementwise op of at most CHEAP_FLOPS flops per element (add, mul, compare, where, cast ...)
     into at most MAX_COPIES groups, or any elementwise op whose result has at most SMALL_NUMEL
     elements (a bias or a per-channel scale: recomputing it is noise);
   - transcendental elementwise ops (exp, tanh, gelu, ...) on big tensors, reductions and
     contractions are never copied: they are grouped once and their result is shared.
"""

from __future__ import annotations

from archir.ir import Node
from archir.registry import Trait, get_op
from archir.types import TensorType

MAX_GROUP_NODES = 48
MAX_COPIES = 4
CHEAP_FLOPS = 1
SMALL_NUMEL = 4096
VIEW_OPS = frozenset({"reshape", "transpose", "expand", "squeeze", "unsqueeze"})

# Flops per element of elementwise ops costlier than one arithmetic instruction (the rest cost 1).
_FLOPS = {"exp": 8, "log": 8, "sqrt": 4, "rsqrt": 4, "reciprocal": 2, "tanh": 10, "sigmoid": 10,
          "silu": 11, "erf": 10, "gelu": 14, "sin": 10, "cos": 10, "pow": 12, "div": 2}


def flops_per_element(node: Node) -> int:
    """Estimated arithmetic per result element of an elementwise op."""
    return _FLOPS.get(node.op, 1)


def group_size(node: Node) -> int:
    """Primitive ops a node contributes to a group (a fused group counts its body)."""
    if node.op == "fused":
        return len(node.regions[0].nodes)
    return 1


def fits(size: int) -> bool:
    """Rule 1: may a group of `size` primitive ops be formed?"""
    return size <= MAX_GROUP_NODES


def is_view(node: Node) -> bool:
    return node.op in VIEW_OPS


def is_source(node: Node) -> bool:
    return get_op(node.op).has(Trait.SOURCE) and not node.inputs


def _small(node: Node) -> bool:
    t = node.outputs[0].type
    return isinstance(t, TensorType) and t.is_static() and t.numel() <= SMALL_NUMEL


def may_copy(node: Node, groups: int) -> bool:
    """Rule 2 (views excepted): may `node` be recomputed in each of `groups` groups?"""
    op = get_op(node.op)
    if node.regions or len(node.outputs) != 1 or op.has(Trait.RANDOM) or op.has(Trait.SIDE_EFFECT):
        return False
    if is_source(node):
        return True
    if not op.has(Trait.ELEMENTWISE):
        return False
    if _small(node):
        return True
    return flops_per_element(node) <= CHEAP_FLOPS and groups <= MAX_COPIES


def is_free(node: Node) -> bool:
    """Repeating it costs nothing: a source, or a view (indexing only)."""
    return is_source(node) or is_view(node)


def reads_into_contraction(reader: Node, producer: Node) -> bool:
    """Does `reader` pass a result of `producer` to a contraction (directly, through views, or
    inside its fused body)? A contraction reads each operand element many times."""
    if reader.op != "fused":
        return get_op(reader.op).has(Trait.CONTRACTION)
    body = reader.regions[0]
    seen = {arg for arg, v in zip(body.args, reader.inputs, strict=True) if v in producer.outputs}
    for inner in body.nodes:
        if not any(v in seen for v in inner.inputs):
            continue
        if get_op(inner.op).has(Trait.CONTRACTION):
            return True
        if is_view(inner):
            seen.update(inner.outputs)
    return False


def may_fold_view(node: Node) -> bool:
    """Views and sources are free to repeat inside any number of consumer groups."""
    return (is_view(node) or is_source(node)) and len(node.outputs) == 1 and not node.regions
