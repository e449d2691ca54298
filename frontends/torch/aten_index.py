"""Converters for ATen ops that pick, join or cut: slice, select, cat, split, chunk, unbind,
index (advanced indexing), index_select, gather, scatter_add, topk, slice_scatter and diff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archir.frontends.torch.aten_shape import reshape_to
from archir.frontends.torch.context import ImportContext, axis, rank
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.ops.shape import OPEN_END
from archir.symbolic import Dim, SymExpr, exact_div, mul
from archir.types import DType


def _bound(value: Any, size: Dim, default: int) -> int:
    """A slice start or end as an int attribute; the size itself (even symbolic) means the end."""
    if value is None:
        return default
    if isinstance(value, int):
        return min(value, OPEN_END)
    if value == size:
        return OPEN_END
    raise Unsupported(f"a slice bound that is the symbolic size {value}",
                      hint="archir slices take constant bounds (or the full symbolic length)")


@converter("aten.slice.Tensor")
def slice_(cx: ImportContext, x: Value, dim: int = 0, start: Any = None, end: Any = None,
           step: int = 1) -> Value:
    ax = axis(dim, rank(x))
    size = x.tensor_type.shape[ax]
    if isinstance(end, SymExpr) and end != size and isinstance(start or 0, int) and step == 1:
        return _slice_to_symbolic_end(cx, x, ax, start or 0, end)
    begin, stop = _bound(start, size, 0), _bound(end, size, OPEN_END)
    if begin == 0 and stop >= OPEN_END and step == 1:
        return x
    return cx.b.slice(x, axes=[ax], starts=[begin], ends=[stop], steps=[step])


def _slice_to_symbolic_end(cx: ImportContext, x: Value, ax: int, start: int, end: SymExpr) -> Value:
    """x[start:end] with `end` a size of another tensor (HF position ids under dynamic shapes):
    archir slices take constant bounds, so it is index_select(x, iota(end - start) + start)."""
    index = cx.b.iota(shape=[end - start if start else end], axis=0, dtype=DType.i64)
    if start:
        index = cx.b.add(index, cx.const(start, DType.i64))
    return cx.b.index_select(x, index, axis=ax)


@converter("aten.select.int")
def select(cx: ImportContext, x: Value, dim: int, index: int) -> Value:
    if not isinstance(index, int):
        raise Unsupported("select at a symbolic index")
    ax = axis(dim, rank(x))
    end = index + 1 if index + 1 != 0 else OPEN_END
    picked = cx.b.slice(x, axes=[ax], starts=[index], ends=[end])
    return cx.b.squeeze(picked, axes=[ax])


@converter("aten.cat.default", "aten.concat.default")
def cat(cx: ImportContext, tensors: Sequence[Value], dim: int = 0) -> Value:
    parts = [cx.cast(t, cx.out_dtype) for t in tensors]
    if len(parts) == 1:
        return parts[0]
    return cx.b.concat(*parts, axis=axis(dim, rank(parts[0])))


def _piece_sizes(cx: ImportContext, ax: int) -> list[int]:
    """Piece lengths along `ax` from torch's result types; one symbolic length becomes -1."""
    sizes: list[int] = []
    for i in range(len(cx.node.meta["val"])):  # type: ignore[union-attr]
        d = cx.out(i).shape[ax]
        sizes.append(d if isinstance(d, int) else -1)
    if sizes.count(-1) > 1:
        raise Unsupported("a split into several pieces of symbolic length")
    return sizes


def _split(cx: ImportContext, x: Value, dim: int) -> tuple[Value, ...]:
    ax = axis(dim, rank(x))
    sizes = _piece_sizes(cx, ax)
    if len(sizes) == 1:
        return (x,)
    pieces = cx.b.split(x, axis=ax, sizes=sizes)
    return pieces if isinstance(pieces, tuple) else (pieces,)


@converter("aten.split_with_sizes.default", "aten.split.Tensor", "aten.split.sizes",
           "aten.chunk.default", "aten.tensor_split.sections")
def split(cx: ImportContext, x: Value, sizes: Any, dim: int = 0) -> tuple[Value, ...]:
    return _split(cx, x, dim)


@converter("aten.unbind.int")
def unbind(cx: ImportContext, x: Value, dim: int = 0) -> tuple[Value, ...]:
    ax = axis(dim, rank(x))
    count = x.tensor_type.shape[ax]
    if not isinstance(count, int):
        raise Unsupported("unbind along a symbolic axis (its piece count depends on the input)")
    pieces = cx.b.split(x, axis=ax, sizes=[1] * count) if count > 1 else x
    pieces = pieces if isinstance(pieces, tuple) else (pieces,)
    return tuple(cx.b.squeeze(p, axes=[ax]) for p in pieces)


@converter("aten.index_select.default")
def index_select(cx: ImportContext, x: Value, dim: int, index: Value) -> Value:
    return cx.b.index_select(x, index, axis=axis(dim, rank(x)))


@converter("aten.gather.default")
def gather(cx: ImportContext, x: Value, dim: int, index: Value, *, sparse_grad: bool = False) -> Value:
    return cx.b.gather(x, index, axis=axis(dim, rank(x)))


@converter("aten.scatter_add.default")
def scatter_add(cx: ImportContext, x: Value, dim: int, index: Value, src: Value) -> Value:
    return cx.b.scatter_add(x, index, cx.cast(src, x.tensor_type.dtype), axis=axis(dim, rank(x)))


@converter("aten.topk.default")
def topk(cx: ImportContext, x: Value, k: int, dim: int = -1, largest: bool = True,
         sorted: bool = True) -> tuple[Value, Value]:
    values, indices = cx.b.topk(x, k=k, axis=axis(dim, rank(x)), largest=largest, sorted=sorted)
    return values, indices


@converter("aten.index.Tensor")
def index(cx: ImportContext, x: Value, indices: Sequence[Value | None]) -> Value:
    """x[i0, i1, ...] with adjacent integer index tensors, as one embedding lookup: the indexed
    axes move to the front and flatten into rows, and the broadcast indices into one row index."""
    used = [i for i, ix in enumerate(indices) if ix is not None]
    if not used or used != list(range(used[0], used[-1] + 1)):
        raise Unsupported("indexing with separated index tensors")
    if any(indices[i].tensor_type.dtype == DType.bool for i in used):
        raise Unsupported("boolean mask indexing (its result size depends on the data)")
    shape = list(x.tensor_type.shape)
    r, first, last = rank(x), used[0], used[-1] + 1
    perm = list(range(first, last)) + [a for a in range(r) if not first <= a < last]
    moved = cx.b.transpose(x, perm=perm) if perm != list(range(r)) else x
    rest = [shape[a] for a in perm[last - first:]]
    row = _row_index(cx, [indices[i] for i in used], shape[first:last])
    table = reshape_to(cx, moved, [_product(shape[first:last]), _product(rest)])
    picked = cx.b.embedding(row, table)
    out = reshape_to(cx, picked, [*row.tensor_type.shape, *rest])
    # torch puts the broadcast index dims where the indexed axes were
    lead, idx_rank = first, rank(row)
    if lead:
        order = list(range(idx_rank, idx_rank + lead)) + list(range(idx_rank)) + \
            list(range(idx_rank + lead, rank(out)))
        out = cx.b.transpose(out, perm=order)
    return out


def _row_index(cx: ImportContext, idx: list[Value], sizes: list[Dim]) -> Value:
    """sum_j idx_j * stride_j over the indexed axes, broadcast, in i64."""
    row: Value | None = None
    stride: Dim = 1
    for ix, size in zip(reversed(idx), reversed(sizes), strict=True):
        term = cx.cast(ix, DType.i64)
        if stride != 1:
            term = cx.b.mul(term, _size_value(cx, stride))
        row = term if row is None else cx.b.add(row, term)
        stride = mul(stride, size)
    assert row is not None
    return row


def _size_value(cx: ImportContext, size: Dim) -> Value:
    """An i64 scalar holding `size`; a symbolic size is counted as the sum of that many ones."""
    if isinstance(size, int):
        return cx.const(size, DType.i64)
    return cx.b.sum(cx.b.full(shape=[size], value=1.0, dtype=DType.i64))


def _product(dims: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in dims:
        total = mul(total, d)
    return total


@converter("aten.slice_scatter.default")
def slice_scatter(cx: ImportContext, x: Value, src: Value, dim: int = 0, start: Any = None,
                  end: Any = None, step: int = 1) -> Value:
    """x with x[start:end:step] along dim replaced by src."""
    ax = axis(dim, rank(x))
    size = x.tensor_type.shape[ax]
    if isinstance(end, SymExpr) and end != size and isinstance(start or 0, int) and step == 1:
        return _slice_to_symbolic_end(cx, x, ax, start or 0, end)
    begin, stop = _bound(start, size, 0), _bound(end, size, OPEN_END)
    src = cx.cast(src, x.tensor_type.dtype)
    if step == 1:
        return _replace_span(cx, x, src, ax, begin, stop)
    return _replace_strided(cx, x, src, ax, begin, stop, step)


def _replace_span(cx: ImportContext, x: Value, src: Value, ax: int, begin: int, stop: int) -> Value:
    size = x.tensor_type.shape[ax]
    if begin < 0 or (stop < 0) or (isinstance(size, SymExpr) and stop < OPEN_END):
        raise Unsupported("slice_scatter with negative or symbolic-relative bounds")
    parts = []
    if begin > 0:
        parts.append(cx.b.slice(x, axes=[ax], starts=[0], ends=[begin]))
    parts.append(src)
    if stop < OPEN_END and (not isinstance(size, int) or stop < size):
        parts.append(cx.b.slice(x, axes=[ax], starts=[stop], ends=[OPEN_END]))
    return parts[0] if len(parts) == 1 else cx.b.concat(*parts, axis=ax)


def _replace_strided(cx: ImportContext, x: Value, src: Value, ax: int, begin: int, stop: int,
                     step: int) -> Value:
    """x[begin::step] = src when the stride tiles the axis: view the axis as [size/step, step]
    and replace column `begin` of the second axis."""
    shape = list(x.tensor_type.shape)
    rows = exact_div(shape[ax], step)
    if rows is None or not 0 <= begin < step or (stop < OPEN_END and stop != shape[ax]):
        raise Unsupported(f"slice_scatter with step {step} that does not tile axis {ax}")
    tiled = reshape_to(cx, x, [*shape[:ax], rows, step, *shape[ax + 1:]])
    column = cx.b.unsqueeze(src, axes=[ax + 1])
    merged = _replace_span(cx, tiled, column, ax + 1, begin, begin + 1 if begin + 1 < step else OPEN_END)
    return reshape_to(cx, merged, shape)


@converter("aten.select_scatter.default")
def select_scatter(cx: ImportContext, x: Value, src: Value, dim: int, index: int) -> Value:
    ax = axis(dim, rank(x))
    size = x.tensor_type.shape[ax]
    if index < 0:
        if not isinstance(size, int):
            raise Unsupported("select_scatter at a negative index of a symbolic axis")
        index += size
    src = cx.b.unsqueeze(cx.cast(src, x.tensor_type.dtype), axes=[ax])
    end = index + 1 if not (isinstance(size, int) and index + 1 == size) else OPEN_END
    return _replace_span(cx, x, src, ax, index, end)


@converter("aten.diff.default")
def diff(cx: ImportContext, x: Value, n: int = 1, dim: int = -1, prepend: Value | None = None,
         append: Value | None = None) -> Value:
    ax = axis(dim, rank(x))
    parts = [p for p in (prepend, x, append) if p is not None]
    x = parts[0] if len(parts) == 1 else cx.b.concat(*parts, axis=ax)
    for _ in range(n):
        later = cx.b.slice(x, axes=[ax], starts=[1], ends=[OPEN_END])
        earlier = cx.b.slice(x, axes=[ax], starts=[0], ends=[-1])
        x = cx.b.ne(later, earlier) if x.tensor_type.dtype == DType.bool else \
            cx.b.sub(later, earlier)
    return x
