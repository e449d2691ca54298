"""Convolution as GEMM per (image, group): W[out, taps] @ cols[taps, positions] into the output,
the GEMM's epilogue applying bias / batch norm / activation / residual in its store. For f32 images
of static size the GEMM packs cols straight from x through the window (implicit GEMM, gemm_conv.py);
otherwise cols is an im2col buffer filled row by row over the thread pool, each output row split
into a zero border and a branch-free (vectorised) interior copy. A 1x1 stride-1 unpadded conv reads
x directly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from archir.backends.llvm.gemm_conv import ConvGeometry
from archir.backends.llvm.loops import Binary, Const, Expr, If, Loop, dim_expr, iadd, imul, unravel
from archir.backends.llvm.lower import Lowerer, View, compute_dtype, row_major, rule
from archir.backends.llvm.lower_epilogue import GridOperand, OutputEpilogue
from archir.backends.llvm.lower_linalg import (
    Operand,
    _cast_copy,
    _inside,
    _spatial,
    _window_position,
    add_bias,
    gemm,
    with_bias,
)

from archir.ir import Node
from archir.symbolic import Dim, mul, product
from archir.types import DType

IMPLICIT_GEMM = True  # False: every conv through an im2col buffer (for A/B comparisons)


@rule("conv1d", "conv2d")
def _conv(lw: Lowerer, node: Node) -> None:
    lower_conv(lw, node, lw.result(node.outputs[0]), None)


def _spatial_stride(v: View) -> Dim | None:
    """The one stride that walks v's spatial dims (axes 2..) as a flat run, or None."""
    dims = [(d, s) for d, s in zip(v.shape[2:], v.strides[2:], strict=True) if d != 1]
    for (_, outer), (inner_dim, inner) in itertools.pairwise(dims):
        if outer != mul(inner, inner_dim):
            return None
    return dims[-1][1] if dims else 1


def _fits(v: View) -> bool:
    return _spatial_stride(v) in (0, 1)


def lower_conv(lw: Lowerer, node: Node, out: View, epilogue: OutputEpilogue | None) -> None:
    x, w = lw.view(node.inputs[0]), lw.materialize(lw.view(node.inputs[1]))
    if x.dtype != out.dtype:
        x = _cast_copy(lw, x, out.dtype)
    if w.dtype != out.dtype:
        w = _cast_copy(lw, w, out.dtype)
    nd = x.rank - 2
    stride, padding, dilation = _spatial(node, nd)
    groups = node.attrs["groups"]
    channels, out_channels = x.shape[1], w.shape[0]
    per_group = channels // groups if isinstance(channels, int) else w.shape[1]
    out_per_group = out_channels // groups
    kernel, positions = list(w.shape[2:]), list(out.shape[2:])
    taps = mul(per_group, math.prod(kernel))
    count = product(positions)
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    epilogue = with_bias(lw, out, bias, 1, epilogue)
    if epilogue is not None:
        epilogue = epilogue.prepare(lw, _fits)
    direct = all(k == 1 for k in kernel) and all(s == 1 for s in stride) and not any(padding) \
        and _spatial_stride(x) == 1
    geometry = None if direct else _implicit_geometry(x, per_group, kernel, (stride, padding, dilation))
    cols = None if direct or geometry else lw.temp(out.dtype, (taps, count))
    with lw.loop(x.shape[0]) as n, lw.loop(groups) as g:
        first = imul(g, Const(per_group))
        if geometry is not None:  # the GEMM packs B from x through the window: no im2col buffer
            b = Operand(x.buffer, x.index([n, first] + [Const(0)] * nd), Const(0), Const(0))
        elif cols is None:
            b = Operand(x.buffer, x.index([n, first] + [Const(0)] * nd), dim_expr(x.strides[1]), Const(1))
        else:
            _im2col(lw, x, cols, n, first, per_group, kernel, positions, (stride, padding, dilation))
            b = Operand(cols.buffer, Const(0), dim_expr(count), Const(1))
        head: list[Expr] = [n, imul(g, Const(out_per_group))] + [Const(0)] * nd
        epi = None
        if epilogue is not None:
            epi = epilogue.on_grid(lambda v, head=head: GridOperand(  # type: ignore[misc]
                v, v.index(head), dim_expr(v.strides[1]), dim_expr(_spatial_stride(v))))  # type: ignore[arg-type]
        w_off = imul(g, dim_expr(mul(out_per_group, taps)))
        gemm(lw, out_per_group, count, taps,
             Operand(w.buffer, iadd(w.offset, w_off), dim_expr(taps), Const(1)), b,
             Operand(out.buffer, out.index(head), dim_expr(count), Const(1)), epi,
             conv_key=geometry.key if geometry else None)
    if bias is not None and out.dtype != DType.f32:
        add_bias(lw, out, lw.view(bias), 1)


def _implicit_geometry(x: View, per_group: Dim, kernel: Sequence[Dim],
                       window: tuple[list[int], list[int], list[int]]) -> ConvGeometry | None:
    """The geometry for an implicit-GEMM conv (gemm_conv.py), or None when x is not f32 with static,
    dense [C, H, W] images (then im2col + GEMM)."""
    if not IMPLICIT_GEMM:
        return None
    stride, padding, dilation = window
    sizes = [per_group, *x.shape[2:], *kernel]
    if x.dtype != DType.f32 or not all(isinstance(d, int) for d in sizes) or _spatial_stride(x) != 1:
        return None
    spatial = [int(d) for d in x.shape[2:]]  # type: ignore[arg-type]
    if x.strides[1] != math.prod(spatial) or len(spatial) not in (1, 2):
        return None
    if len(spatial) == 1:  # conv1d: one row of width L
        return ConvGeometry(int(per_group), 1, spatial[0], 1, int(kernel[0]), 1, stride[0], 0, padding[0],
                            1, dilation[0])
    return ConvGeometry(int(per_group), spatial[0], spatial[1], int(kernel[0]), int(kernel[1]), stride[0],
                        stride[1], padding[0], padding[1], dilation[0], dilation[1])


def _ceil_div(a: Expr, s: int) -> Expr:
    return a if s == 1 else Binary("floordiv", iadd(a, Const(s - 1)), Const(s), DType.i64)


def _clamp(e: Expr, low: Expr, high: Expr) -> Expr:
    return Binary("min", Binary("max", e, low, DType.i64), high, DType.i64)


def _im2col(lw: Lowerer, x: View, cols: View, n: Expr, first: Expr, per_group: Dim, kernel: Sequence[Dim],
            positions: Sequence[Dim], window: tuple[list[int], list[int], list[int]]) -> None:
    """cols[(c, k...), (o...)] = x[n, first + c, o * stride - pad + k * dilation] or 0 outside.

    One parallel loop over the rows of cols; per output row of the last spatial axis, the valid
    range [lo, hi) of its positions is computed once, so the copy loop has no branch."""
    stride, padding, dilation = window
    dt = compute_dtype(cols.dtype)
    zero = Const(0.0, dt) if dt.is_float else Const(0, dt)
    count = dim_expr(cols.shape[1])
    r = lw.fresh("r")
    with lw.block() as body:
        ks, rest = unravel(r, kernel)
        channel = iadd(first, rest)
        pos_strides = row_major(positions)
        with lw.loops(positions[:-1]) as outer:
            pos = [_window_position(o, k, s, p, d)
                   for o, k, s, p, d in zip(outer, ks, stride, padding, dilation, strict=False)]
            base = imul(r, count)
            for o, ps in zip(outer, pos_strides, strict=False):
                base = iadd(base, imul(o, dim_expr(ps)))
            s, p, d = stride[-1], padding[-1], dilation[-1]
            shift = iadd(Const(p), imul(ks[-1], Const(-d)))  # o * s >= shift keeps the input index >= 0
            width, size = dim_expr(positions[-1]), dim_expr(x.shape[-1])
            lo = _clamp(_ceil_div(shift, s), Const(0), width)
            hi = _clamp(_ceil_div(iadd(size, shift), s), lo, width)
            with lw.block() as row:
                for start, stop in ((Const(0), lo), (hi, width)):
                    with lw.loop(stop, start) as o:
                        lw.emit(cols.store([Const(0), iadd(base, o)], zero))
                with lw.loop(hi, lo) as o:
                    value = x.load([n, channel, *pos, _window_position(o, ks[-1], s, p, d)])
                    lw.emit(cols.store([Const(0), iadd(base, o)], value))
            inside = _inside(pos, x.shape[2:-1], padding[:-1])
            if inside is None:
                for stmt in row:
                    lw.emit(stmt)
            else:
                with lw.block() as blank, lw.loop(width) as o:
                    lw.emit(cols.store([Const(0), iadd(base, o)], zero))
                lw.emit(If(inside, row, blank))
    lw.emit(Loop(r, Const(0), dim_expr(mul(per_group, math.prod(kernel))), body, parallel=count))
