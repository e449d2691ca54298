"""Lowering of layout ops: most are free (a new view of the same buffer); concat and pad copy
(a concat read only as attention keys / values stays as its pieces and copies nothing).

reshape copies only when its operand is not contiguous; slice and split become offsets and
strides, so a scan over a sliced sequence never copies it.
"""

from __future__ import annotations

from archir.backends.llvm.loops import Binary, Const, Expr, If, dim_expr, iadd, imul, isub
from archir.backends.llvm.lower import Lowerer, View, row_major, rule
from archir.backends.llvm.lower_attention import read_only_as_keys
from archir.backends.llvm.lower_elementwise import fill_const
from archir.backends.llvm.lower_pieces import Pieces, copy_pieces

from archir.ir import Node
from archir.ops.shape import OPEN_END
from archir.symbolic import Dim, add, mul
from archir.types import DType, TensorType


def _out_shape(node: Node, i: int = 0) -> tuple[Dim, ...]:
    t = node.outputs[i].type
    assert isinstance(t, TensorType)
    return t.shape


def bind_view(lw: Lowerer, node: Node, view: View, i: int = 0) -> None:
    """Bind a view as the result; a returned value is copied into its output buffer."""
    value = node.outputs[i]
    claimed = lw.take_claim(value)
    if claimed is None:
        lw.bind(value, view)
    else:
        lw.copy(view, claimed)
        lw.bind(value, claimed)


@rule("reshape")
def _reshape(lw: Lowerer, node: Node) -> None:
    x = lw.materialize(lw.view(node.inputs[0]))
    shape = _out_shape(node)
    bind_view(lw, node, x.with_layout(shape, row_major(shape)))


@rule("transpose")
def _transpose(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    perm = [p % x.rank for p in node.attrs["perm"]]
    bind_view(lw, node, x.with_layout([x.shape[p] for p in perm], [x.strides[p] for p in perm]))


@rule("expand")
def _expand(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    shape = _out_shape(node)
    new = len(shape) - x.rank
    strides: list[Dim] = [0] * new
    for axis in range(x.rank):
        grows = x.shape[axis] == 1 and shape[new + axis] != 1
        strides.append(0 if grows else x.strides[axis])
    bind_view(lw, node, x.with_layout(shape, strides))


@rule("squeeze", "unsqueeze")
def _squeeze(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    shape = _out_shape(node)
    if node.op == "squeeze":
        drop = {a % x.rank for a in node.attrs["axes"]}
        strides = [s for a, s in enumerate(x.strides) if a not in drop]
    else:
        added = {a % len(shape) for a in node.attrs["axes"]}
        rest = iter(x.strides)
        strides = [0 if a in added else next(rest) for a in range(len(shape))]
    bind_view(lw, node, x.with_layout(shape, strides))


def _slice_start(dim: Dim, start: int, end: int, step: int) -> Dim:
    if isinstance(dim, int):
        return range(*slice(start, end, step).indices(dim)).start
    return start if start >= 0 else add(dim, start)


@rule("slice")
def _slice(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    steps = node.attrs["steps"] or (1,) * len(node.attrs["axes"])
    offset = x.offset
    strides = list(x.strides)
    for a, s, e, k in zip(node.attrs["axes"], node.attrs["starts"], node.attrs["ends"], steps, strict=True):
        axis = a % x.rank
        first = _slice_start(x.shape[axis], s, min(e, OPEN_END) if isinstance(x.shape[axis], int) else e, k)
        offset = iadd(offset, imul(dim_expr(first), dim_expr(x.strides[axis])))
        strides[axis] = mul(x.strides[axis], k)
    bind_view(lw, node, x.with_layout(_out_shape(node), strides, offset))


@rule("split")
def _split(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    axis = node.attrs["axis"] % x.rank
    start: Dim = 0
    for i in range(len(node.outputs)):
        shape = _out_shape(node, i)
        offset = iadd(x.offset, imul(dim_expr(start), dim_expr(x.strides[axis])))
        bind_view(lw, node, x.with_layout(shape, x.strides, offset), i)
        start = add(start, shape[axis])


@rule("concat")
def _concat(lw: Lowerer, node: Node) -> None:
    value = node.outputs[0]
    rank = value.tensor_type.rank
    axis = node.attrs["axis"] % rank
    views = [lw.view(v) for v in node.inputs]
    # A decode step's past + new keys along the key axis: the flash kernel reads the pieces.
    if axis == rank - 2 and read_only_as_keys(lw, value):
        lw.pieces[value] = Pieces(axis, tuple(views))
        return
    copy_pieces(lw, views, lw.result(value), axis)


@rule("pad")
def _pad(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    out = lw.result(node.outputs[0])
    pads = node.attrs["pads"]
    fill = fill_const(node.attrs["value"], out.dtype)
    with lw.loops(out.shape) as idx:
        src: list[Expr] = []
        conds: list[Expr] = []
        for a, i in enumerate(idx):
            # out index o reads x[o - before]; negative pads crop with the same formula.
            j = isub(i, Const(pads[2 * a]))
            src.append(j)
            if pads[2 * a] > 0:
                conds.append(Binary("ge", j, Const(0), DType.bool))
            if pads[2 * a + 1] > 0:
                conds.append(Binary("lt", j, dim_expr(x.shape[a]), DType.bool))
        if not conds:
            lw.emit(out.store(idx, x.load(src)))
        else:
            cond = conds[0]
            for c in conds[1:]:
                cond = Binary("and", cond, c, DType.bool)
            # A branch, not a select: the load must not run outside x.
            lw.emit(If(cond, [out.store(idx, x.load(src))], [out.store(idx, fill)]))
