"""Lowering of contractions and windowed ops: matmul and linear as GEMM calls (strided operands,
so transposes are free; bias and a fused group's elementwise tail applied in the GEMM's store),
conv1d/conv2d through lower_conv, and max/avg pooling as direct loops. Non-f32 contractions use a
plain loop nest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from archir.backends.llvm.gemm_epilogue import EpilogueProgram
from archir.backends.llvm.loops import (
    Assign,
    Binary,
    Buffer,
    Call,
    Const,
    Expr,
    If,
    Load,
    Ptr,
    Store,
    Var,
    dim_expr,
    iadd,
    imul,
)
from archir.backends.llvm.lower import Lowerer, View, compute_dtype, row_major, rule
from archir.backends.llvm.lower_elementwise import broadcast_index, convert
from archir.backends.llvm.lower_epilogue import ACC, GridOperand, OutputEpilogue, along_axis

from archir.errors import BackendError
from archir.ir import Node, Value
from archir.symbolic import Dim, mul, product
from archir.types import DType, broadcast_shapes


@dataclass(frozen=True, slots=True)
class Operand:
    """A strided matrix inside a buffer: element (i, j) at offset + i * rows + j * cols."""

    buffer: Buffer
    offset: Expr
    rows: Expr
    cols: Expr

    def at(self, i: Expr, j: Expr) -> Expr:
        return iadd(self.offset, iadd(imul(i, self.rows), imul(j, self.cols)))


def _param_b_key(n: Dim, k: Dim, b: Operand) -> str | None:
    """A name for b when it is a fixed matrix of a graph parameter (packed once per module), else None."""
    if b.buffer.kind != "param" or not isinstance(n, int) or not isinstance(k, int):
        return None
    parts = [b.offset, b.rows, b.cols]
    if not all(isinstance(e, Const) and isinstance(e.value, int) for e in parts):
        return None
    offset, rows, cols = (e.value for e in parts)  # type: ignore[union-attr]
    return f"p{b.buffer.index}_o{offset}_r{rows}_c{cols}_n{n}_k{k}".replace("-", "m")


def gemm(lw: Lowerer, m: Dim, n: Dim, k: Dim, a: Operand, b: Operand, c: Operand,
         epilogue: tuple[EpilogueProgram, list[Expr]] | None = None, conv_key: str | None = None) -> None:
    """c = a @ b; f32 goes to the packed GEMM kernel (B packed once when it is a parameter's matrix),
    other dtypes to a loop nest. `epilogue` (f32 only): the program applied in the GEMM's store and
    its extra arguments; the callee's name carries the program (`gemm{col;acc o0 add}`). `conv_key`:
    b is an image read through that convolution window (`gemm_conv.<key>`, implicit GEMM)."""
    dtype = c.buffer.dtype
    if dtype == DType.f32 and a.buffer.dtype == b.buffer.dtype == DType.f32:
        key = None if conv_key else _param_b_key(n, k, b)
        name = f"gemm_conv.{conv_key}" if conv_key else "gemm" if key is None else f"gemm_param.{key}"
        extra: list[Expr] = []
        if epilogue is not None:
            name += "{" + epilogue[0].text + "}"
            extra = epilogue[1]
        lw.emit(Call(name, [dim_expr(m), dim_expr(n), dim_expr(k), Ptr(a.buffer, a.offset), a.rows, a.cols,
                            Ptr(b.buffer, b.offset), b.rows, b.cols, Ptr(c.buffer, c.offset), c.rows,
                            Const(0), *extra]))
        return
    if epilogue is not None:
        raise BackendError("llvm backend: an in-store GEMM epilogue needs f32 operands")
    acc_dtype = compute_dtype(dtype)
    with lw.loop(m) as i, lw.loop(n) as j:
        acc = lw.fresh("acc", acc_dtype, "local")
        lw.emit(Assign(acc, Const(0.0 if acc_dtype.is_float else 0, acc_dtype)))
        with lw.loop(k) as p:
            x = convert(Load(a.buffer, a.at(i, p), compute_dtype(a.buffer.dtype)), acc_dtype)
            y = convert(Load(b.buffer, b.at(p, j), compute_dtype(b.buffer.dtype)), acc_dtype)
            lw.emit(Assign(acc, Binary("add", acc, Binary("mul", x, y, acc_dtype), acc_dtype),
                           reduction=acc_dtype.is_float))
        lw.emit(Store(c.buffer, c.at(i, j), acc))


def matmul_into(lw: Lowerer, a: View, b: View, out: View, epilogue: OutputEpilogue | None = None) -> None:
    """out = epilogue(a @ b) with numpy semantics (1-D operands, broadcast batch dims); epilogue
    operands have out's shape (2-D operands only)."""
    if a.rank == 1:
        a = a.with_layout((1, a.shape[0]), (0, a.strides[0]))
    if b.rank == 1:
        b = b.with_layout((b.shape[0], 1), (b.strides[0], 0))
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    folded = _fold_rows(a) if batch and b.rank == 2 else None
    if folded is not None:  # x[..., m, k] @ w[k, n]: one GEMM over all rows, B read (or packed) once
        rows, row_stride = folded
        epi = None
        if epilogue is not None:
            epi = epilogue.prepare(lw, lambda v: _folded_grid(v) is not None).on_grid(
                lambda v: _folded_grid(v))  # type: ignore[arg-type, return-value]
        gemm(lw, rows, n, k, Operand(a.buffer, a.offset, dim_expr(row_stride), dim_expr(a.strides[-1])),
             Operand(b.buffer, b.offset, dim_expr(b.strides[-2]), dim_expr(b.strides[-1])),
             Operand(out.buffer, out.offset, dim_expr(n), Const(1)), epi)
        return
    full = out.with_layout((*batch, m, n), row_major((*batch, m, n)))
    if epilogue is not None:
        epilogue = epilogue.prepare(lw, lambda v: _unit_or_zero(v.strides[-1]))
    with lw.loops(batch) as idx:
        zero: list[Expr] = [Const(0), Const(0)]
        a_batch = a.with_layout(a.shape[:-2], a.strides[:-2])
        b_batch = b.with_layout(b.shape[:-2], b.strides[:-2])
        a_off = a.index([*broadcast_index(a_batch, batch, idx), *zero])
        b_off = b.index([*broadcast_index(b_batch, batch, idx), *zero])
        c_off = full.index([*idx, *zero])
        epi = None
        if epilogue is not None:
            epi = epilogue.on_grid(lambda v, idx=idx, zero=zero: GridOperand(  # type: ignore[misc]
                v, v.index([*idx, *zero]), dim_expr(v.strides[-2]), dim_expr(v.strides[-1])))
        gemm(lw, m, n, k,
             Operand(a.buffer, a_off, dim_expr(a.strides[-2]), dim_expr(a.strides[-1])),
             Operand(b.buffer, b_off, dim_expr(b.strides[-2]), dim_expr(b.strides[-1])),
             Operand(full.buffer, c_off, dim_expr(n), Const(1)), epi)


def _unit_or_zero(stride: Dim) -> bool:
    return stride in (0, 1)


def _folded_grid(v: View) -> GridOperand | None:
    """v (with the output's shape) on the grid of one GEMM over all folded rows, if it fits."""
    folded = _fold_rows(v)
    if folded is None or not _unit_or_zero(v.strides[-1]):
        return None
    return GridOperand(v, v.offset, dim_expr(folded[1]), dim_expr(v.strides[-1]))


def _fold_rows(a: View) -> tuple[Dim, Dim] | None:
    """(rows, row stride) when a's leading dims and row dim walk one evenly strided run of rows."""
    dims = [(d, s) for d, s in zip(a.shape[:-1], a.strides[:-1], strict=True) if d != 1]
    for (_, outer), (inner_dim, inner) in itertools.pairwise(dims):
        if outer != mul(inner, inner_dim):
            return None
    rows = product([d for d, _ in dims])
    return rows, dims[-1][1] if dims else a.strides[-2]


@rule("matmul", "linear")
def _contraction(lw: Lowerer, node: Node) -> None:
    lower_contraction(lw, node, lw.result(node.outputs[0]), None)


def lower_contraction(lw: Lowerer, node: Node, out: View, epilogue: OutputEpilogue | None) -> None:
    """matmul / linear / conv1d / conv2d into `out`, `epilogue` (f32 only) applied in the GEMM's store;
    a bias operand joins the epilogue as its first step."""
    if node.op in ("conv1d", "conv2d"):
        from archir.backends.llvm.lower_conv import lower_conv

        lower_conv(lw, node, out, epilogue)
        return
    a, b = lw.view(node.inputs[0]), lw.view(node.inputs[1])
    if a.dtype != out.dtype:
        a = _cast_copy(lw, a, out.dtype)
    if b.dtype != out.dtype:
        b = _cast_copy(lw, b, out.dtype)
    if node.op == "linear":
        b = b.with_layout((b.shape[1], b.shape[0]), (b.strides[1], b.strides[0]))
    bias = node.inputs[2] if node.op == "linear" and len(node.inputs) > 2 else None
    in_store = a.rank > 1 and b.rank > 1 and out.dtype == DType.f32
    if epilogue is not None and not in_store:
        raise BackendError("llvm backend: GEMM epilogue on a vector or non-f32 product")
    if in_store:
        epilogue = with_bias(lw, out, bias, out.rank - 1, epilogue)
    matmul_into(lw, a, b, out, epilogue)
    if bias is not None and not in_store:
        add_bias(lw, out, lw.view(bias), out.rank - 1)


def epilogue_fits(node: Node) -> bool:
    """Whether `lower_contraction` can take an epilogue for this contraction: f32, no 1-D operand."""
    values = [v for v in node.inputs if v is not None]
    if any(v.tensor_type.dtype != DType.f32 for v in values):
        return False
    return node.op not in ("matmul", "linear") or all(v.tensor_type.rank > 1 for v in values[:2])


def with_bias(lw: Lowerer, out: View, bias: Value | None, axis: int,
              epilogue: OutputEpilogue | None) -> OutputEpilogue | None:
    """`epilogue` after `acc + bias` (bias along `axis`) when out is f32, else unchanged."""
    if bias is None or out.dtype != DType.f32:
        return epilogue
    add = OutputEpilogue(Binary("add", ACC, Var("o0", DType.f32, "local"), DType.f32),
                         (along_axis(lw.view(bias), out.shape, axis),))
    return add if epilogue is None else epilogue.after(add)


def _cast_copy(lw: Lowerer, view: View, dtype: DType) -> View:
    out = lw.temp(dtype, view.shape)
    with lw.loops(view.shape) as idx:
        lw.emit(out.store(idx, convert(view.load(idx), compute_dtype(dtype))))
    return out


def add_bias(lw: Lowerer, out: View, bias: View, axis: int) -> None:
    """out[..., c, ...] += bias[c] along `axis`, in place."""
    dt = compute_dtype(out.dtype)
    with lw.loops(out.shape) as idx:
        value = Binary("add", out.load(idx), convert(bias.load([idx[axis]]), dt), dt)
        lw.emit(out.store(idx, value))


# -- convolution -------------------------------------------------------------------------------
def _spatial(node: Node, nd: int) -> tuple[list[int], list[int], list[int]]:
    stride = list(node.attrs.get("stride") or node.attrs.get("kernel"))
    padding = list(node.attrs["padding"])
    dilation = list(node.attrs.get("dilation", (1,) * nd))
    return stride, padding, dilation


def _window_position(o: Expr, k: Expr, stride: int, pad: int, dilation: int) -> Expr:
    return iadd(iadd(imul(o, Const(stride)), Const(-pad)), imul(k, Const(dilation)))


def _inside(positions: Sequence[Expr], sizes: Sequence[Dim], padding: Sequence[int]) -> Expr | None:
    conds: list[Expr] = []
    for pos, size, pad in zip(positions, sizes, padding, strict=True):
        if pad:
            conds.append(Binary("ge", pos, Const(0), DType.bool))
            conds.append(Binary("lt", pos, dim_expr(size), DType.bool))
    if not conds:
        return None
    cond = conds[0]
    for c in conds[1:]:
        cond = Binary("and", cond, c, DType.bool)
    return cond


# -- pooling -----------------------------------------------------------------------------------
@rule("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    out = lw.result(node.outputs[0])
    nd = x.rank - 2
    kernel = list(node.attrs["kernel"])
    stride, padding, _ = _spatial(node, nd)
    is_max = node.op.startswith("max")
    dt = compute_dtype(out.dtype)
    with lw.loops(out.shape) as idx:
        acc = lw.fresh("acc", dt, "local")
        lw.emit(Assign(acc, Const(-math.inf if is_max else 0.0, dt)))
        with lw.loops(kernel) as ks:
            pos = [_window_position(o, k, s, p, 1)
                   for o, k, s, p in zip(idx[2:], ks, stride, padding, strict=True)]
            value = x.load([idx[0], idx[1], *pos])
            update = Assign(acc, Binary("fmax" if is_max else "add", acc, value, dt))
            inside = _inside(pos, x.shape[2:], padding)
            lw.emit(update if inside is None else If(inside, [update]))
        result: Expr = acc if is_max else Binary("div", acc, Const(float(math.prod(kernel)), dt), dt)
        lw.emit(out.store(idx, result))


from archir.backends.llvm import lower_conv as _lower_conv  # noqa: E402, F401  # registers conv1d / conv2d
