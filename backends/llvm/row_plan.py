"""Row plans: whether a group of nodes (elementwise ops, last-axis reductions and row ops, layout
views of the arguments) can run as one row kernel (lower_rows), and over which data shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from archir.backends.llvm.lower import RULES

from archir.ir import Node, Value
from archir.symbolic import Dim
from archir.types import TensorType

VIEW_OPS = ("reshape", "transpose", "expand", "squeeze", "unsqueeze", "slice")
REDUCTIONS = ("sum", "mean", "max", "min")
ROW_OPS = ("softmax", "log_softmax", "layer_norm", "rms_norm")


def shape_of(v: Value) -> tuple[Dim, ...]:
    t = v.type
    return t.shape if isinstance(t, TensorType) else ()


def is_elementwise_rule(op: str) -> bool:
    fn = RULES.get(op)
    return fn is not None and fn.__module__.endswith("lower_elementwise")


@dataclass(slots=True)
class RowPlan:
    """The data shape `full` (rows = all but the last axis) and how each body node is run."""

    full: tuple[Dim, ...]
    views: list[Node] = field(default_factory=list)  # layout ops over arguments: strided views
    nodes: list[Node] = field(default_factory=list)  # everything else, in order


def _fits(shape: Sequence[Dim], full: Sequence[Dim]) -> bool:
    """`shape` broadcasts to `full` (right-aligned; each dim 1 or equal)."""
    if len(shape) > len(full):
        return False
    lead = len(full) - len(shape)
    return all(d == 1 or d == full[lead + k] for k, d in enumerate(shape))


def _row_axis_ok(node: Node) -> bool:
    """A reduction or row op over the last axis only (keepdims results only for reductions read
    inside the group; see `plan_rows`)."""
    rank = len(shape_of(node.inputs[0]))
    if rank == 0:
        return False
    if node.op in REDUCTIONS:
        axes = node.attrs.get("axes")
        return axes is not None and [a % rank for a in axes] == [rank - 1]
    if node.op in ("softmax", "log_softmax"):
        return node.attrs["axis"] % rank == rank - 1
    return node.attrs["begin_axis"] % rank == rank - 1


def _full_shape(nodes: Sequence[Node], results: Sequence[Value]) -> tuple[Dim, ...] | None:
    for node in nodes:
        if node.op in REDUCTIONS or node.op in ROW_OPS:
            return shape_of(node.inputs[0])
    ranked = [shape_of(v) for v in results]
    return max(ranked, key=len) if ranked else None


def plan_rows(nodes: Sequence[Node], args: Sequence[Value], results: Sequence[Value]) -> RowPlan | None:
    """How to run `nodes` as a row kernel, or None when some op or shape does not fit one."""
    full = _full_shape(nodes, results)
    if not full:
        return None
    plan = RowPlan(tuple(full))
    viewed: set[Value] = set(args)
    readers: dict[Value, int] = {}
    for node in nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    for node in nodes:
        out = node.outputs[0] if len(node.outputs) == 1 else None
        if out is None or not isinstance(out.type, TensorType):
            return None
        if node.op in VIEW_OPS and all(v in viewed for v in node.inputs):
            viewed.add(out)
            plan.views.append(node)
            if not _fits(shape_of(out), full):
                return None
            continue
        if node.op in REDUCTIONS or node.op in ROW_OPS:
            x = shape_of(node.inputs[0])
            if not _row_axis_ok(node) or x[-1] != full[-1] or not _fits(x, full) \
                    or not out.type.dtype.is_float:
                return None
            if node.op in REDUCTIONS and not node.attrs["keepdims"] and (readers.get(out) or x != full):
                return None  # a rank-dropping result can only be stored, once per row
        elif not is_elementwise_rule(node.op) or not _fits(shape_of(out), full):
            return None
        plan.nodes.append(node)
    for v in results:
        if not _result_ok(v, full):
            return None
    return plan


def _result_ok(v: Value, full: tuple[Dim, ...]) -> bool:
    s = shape_of(v)
    node = v.producer
    dropped = node is not None and node.op in REDUCTIONS and not node.attrs["keepdims"]
    return s == full or s == (*full[:-1], 1) or (dropped and s == full[:-1])
