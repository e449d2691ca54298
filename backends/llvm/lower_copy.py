"""Bulk copies between strided views as runs of contiguous elements split over the thread pool:
axes that are contiguous in both views merge into one run (a vectorised memcpy-speed inner loop),
the remaining outer index is one flat parallel loop, and a single long run is cut into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from archir.backends.llvm.loops import Binary, Const, Expr, Loop, Store, Var, dim_expr, iadd, imul, unravel
from archir.backends.llvm.lower import Lowerer, View

from archir.symbolic import Dim, mul
from archir.types import DType

CHUNK = 1 << 14  # elements per task when one run is cut up: 64 KiB of f32, well above a fork-join


@dataclass(frozen=True, slots=True)
class Axis:
    """One loop of a copy: `size` steps of `src` elements in the source and `dst` in the target."""

    size: Dim
    src: Dim
    dst: Dim


def copy_axes(src: View, dst: View) -> list[Axis]:
    """The axes of the copy, outermost first, without size-1 axes and with neighbours merged when
    the outer one steps exactly over the inner one in both views (so a run is as long as can be)."""
    axes: list[Axis] = []
    for size, s, d in zip(src.shape, src.strides, dst.strides, strict=True):
        if size == 1:
            continue
        if axes:
            inner = axes[-1]
            # Merge `inner` into this new innermost axis when `inner` is its outer continuation.
            if inner.src == mul(s, size) and inner.dst == mul(d, size):
                axes[-1] = Axis(mul(inner.size, size), s, d)
                continue
        axes.append(Axis(size, s, d))
    return axes


def _is_long(size: Dim) -> bool:
    """A run worth cutting up: symbolic (it may be large) or more than two chunks."""
    return not isinstance(size, int) or size > 2 * CHUNK


def bulk_copy(lw: Lowerer, src: View, dst: View) -> None:
    """dst[idx] = src[idx] for every index of src's shape (both views of one shape)."""
    axes = copy_axes(src, dst)
    if not axes:
        lw.emit(Store(dst.buffer, dst.offset, src.load([Const(0)] * src.rank)))
        return
    run = axes[-1]
    outer = axes[:-1]
    if not outer and _is_long(run.size):
        _chunked_run(lw, src, dst, run)
        return
    if not outer:
        lw.emit(_run_loop(lw, src, dst, run, src.offset, dst.offset, Const(0), dim_expr(run.size)))
        return
    flat = lw.fresh("o")
    count: Expr = Const(1)
    for axis in outer:
        count = imul(count, dim_expr(axis.size))
    s_base, d_base = _unflatten(flat, outer, src.offset, dst.offset)
    body = _run_loop(lw, src, dst, run, s_base, d_base, Const(0), dim_expr(run.size))
    lw.emit(Loop(flat, Const(0), count, [body], parallel=dim_expr(run.size)))


def _unflatten(flat: Var, outer: list[Axis], s_base: Expr, d_base: Expr) -> tuple[Expr, Expr]:
    """Source and target offsets of the flat outer index (innermost outer axis moves fastest)."""
    inner, first = unravel(flat, [axis.size for axis in outer[1:]])
    for i, axis in zip([first, *inner], outer, strict=True):
        s_base = iadd(s_base, imul(i, dim_expr(axis.src)))
        d_base = iadd(d_base, imul(i, dim_expr(axis.dst)))
    return s_base, d_base


def _run_loop(lw: Lowerer, src: View, dst: View, run: Axis, s_base: Expr, d_base: Expr, start: Expr,
              stop: Expr) -> Loop:
    i = lw.fresh("i")
    load = src.with_layout((), (), iadd(s_base, imul(i, dim_expr(run.src)))).load([])
    return Loop(i, start, stop, [Store(dst.buffer, iadd(d_base, imul(i, dim_expr(run.dst))), load)])


def _chunked_run(lw: Lowerer, src: View, dst: View, run: Axis) -> None:
    """One long run as a parallel loop over CHUNK-element pieces."""
    size = dim_expr(run.size)
    chunk = lw.fresh("c")
    chunks = Binary("floordiv", iadd(size, Const(CHUNK - 1)), Const(CHUNK), DType.i64)
    start = imul(chunk, Const(CHUNK))
    stop = Binary("min", iadd(start, Const(CHUNK)), size, DType.i64)
    body = _run_loop(lw, src, dst, run, src.offset, dst.offset, start, stop)
    lw.emit(Loop(chunk, Const(0), chunks, [body], parallel=Const(CHUNK)))
