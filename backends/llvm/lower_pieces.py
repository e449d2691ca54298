"""Concat results kept as their pieces: a concat read only as attention keys / values is never
written (the flash kernel walks the pieces as key segments); these helpers copy pieces into one
buffer (the concat itself, or a reader that needs a plain view after all) and cut views into segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archir.backends.llvm.loops import dim_expr, iadd, imul
from archir.backends.llvm.lower import Lowerer, View
from archir.backends.llvm.lower_copy import bulk_copy

from archir.ir import Value
from archir.symbolic import Dim, add


@dataclass(frozen=True, slots=True)
class Pieces:
    """A concat's operands along `axis`, in order."""

    axis: int
    views: tuple[View, ...]

    @property
    def lengths(self) -> tuple[Dim, ...]:
        return tuple(v.shape[self.axis] for v in self.views)


def copy_pieces(lw: Lowerer, views: Sequence[View], out: View, axis: int) -> None:
    """out = concat(views) along axis."""
    start: Dim = 0
    for piece in views:
        offset = iadd(out.offset, imul(dim_expr(start), dim_expr(out.strides[axis])))
        # Contiguous runs split over the threads: a cache append is all copy.
        bulk_copy(lw, piece, out.with_layout(piece.shape, out.strides, offset))
        start = add(start, piece.shape[axis])


def plain_view(lw: Lowerer, value: Value) -> View:
    """The view of `value`; a concat kept as pieces is copied into a buffer now (once)."""
    pieces: Pieces | None = lw.pieces.pop(value, None)
    if pieces is None:
        return lw.view(value)
    t = value.tensor_type
    out = lw.temp(t.dtype, t.shape)
    copy_pieces(lw, pieces.views, out, pieces.axis)
    lw.bind(value, out)
    return out


def split(view: View, axis: int, lengths: Sequence[Dim]) -> list[View]:
    """`view` cut along axis into consecutive views of `lengths`."""
    out: list[View] = []
    start: Dim = 0
    for length in lengths:
        shape = list(view.shape)
        shape[axis] = length
        offset = iadd(view.offset, imul(dim_expr(start), dim_expr(view.strides[axis])))
        out.append(view.with_layout(shape, view.strides, offset))
        start = add(start, length)
    return out


def key_segments(lw: Lowerer, keys: Value, values: Value) -> tuple[list[View], list[View]]:
    """Keys and values as matching segments along axis -2: the pieces of whichever is a kept concat
    (both when their lengths agree; otherwise the values are copied and cut like the keys)."""
    kp, vp = (_key_pieces(lw, x) for x in (keys, values))
    if kp is not None and vp is not None and kp.lengths == vp.lengths:
        return list(kp.views), list(vp.views)
    if kp is not None:
        return list(kp.views), split(plain_view(lw, values), -2, kp.lengths)
    if vp is not None:
        return split(plain_view(lw, keys), -2, vp.lengths), list(vp.views)
    return [lw.view(keys)], [lw.view(values)]


def _key_pieces(lw: Lowerer, value: Value) -> Pieces | None:
    """The pieces of `value` when it is a kept concat along axis -2 (else it becomes plain)."""
    pieces: Pieces | None = lw.pieces.get(value)
    if pieces is None or pieces.axis == value.tensor_type.rank - 2:
        return pieces
    plain_view(lw, value)
    return None
