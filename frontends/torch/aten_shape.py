"""Converters for ATen layout ops: views and reshapes, permutes, expands, (un)squeezes, repeats
and padding. Target shapes come from torch's own result type, so -1s and symbolic sizes are
already resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archir.frontends.torch.context import ImportContext, axes, axis, rank
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.symbolic import mul


def reshape_to(cx: ImportContext, x: Value, shape: Sequence[Any]) -> Value:
    if tuple(x.tensor_type.shape) == tuple(shape):
        return x
    return cx.b.reshape(x, shape=list(shape))


@converter("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default",
           "aten.flatten.using_ints", "aten.unflatten.int", "aten._reshape_alias.default",
           "aten.view.dtype")
def view(cx: ImportContext, x: Value, *args: Any) -> Value:
    if cx.out_dtype != x.tensor_type.dtype:
        raise Unsupported("a view that reinterprets the bytes as another dtype")
    return reshape_to(cx, x, cx.out_shape)


@converter("aten.permute.default")
def permute(cx: ImportContext, x: Value, dims: Sequence[int]) -> Value:
    perm = [axis(d, rank(x)) for d in dims]
    if perm == list(range(rank(x))):
        return x
    return cx.b.transpose(x, perm=perm)


@converter("aten.transpose.int", "aten.swapaxes.default")
def transpose(cx: ImportContext, x: Value, dim0: int, dim1: int) -> Value:
    r = rank(x)
    perm = list(range(r))
    a, b = axis(dim0, r), axis(dim1, r)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(cx, x, perm)


@converter("aten.t.default", "aten.numpy_T.default")
def t(cx: ImportContext, x: Value) -> Value:
    return x if rank(x) < 2 else permute(cx, x, list(reversed(range(rank(x)))))


@converter("aten.expand.default", "aten.expand_as.default", "aten.broadcast_to.default")
def expand(cx: ImportContext, x: Value, *args: Any, **kwargs: Any) -> Value:
    if tuple(x.tensor_type.shape) == tuple(cx.out_shape):
        return x
    return cx.b.expand(x, shape=list(cx.out_shape))


@converter("aten.unsqueeze.default")
def unsqueeze(cx: ImportContext, x: Value, dim: int) -> Value:
    return cx.b.unsqueeze(x, axes=[axis(dim, rank(x) + 1)])


@converter("aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default")
def squeeze(cx: ImportContext, x: Value, dim: Any = None) -> Value:
    shape = x.tensor_type.shape
    chosen = axes(dim, rank(x)) if rank(x) else []
    candidates = range(rank(x)) if chosen is None else chosen
    ones = [a for a in candidates if shape[a] == 1]  # torch leaves other sizes alone
    return cx.b.squeeze(x, axes=ones) if ones else x


@converter("aten.repeat.default")
def repeat(cx: ImportContext, x: Value, repeats: Sequence[int]) -> Value:
    """Tile: each axis a [d] becomes [r, d] by expand, then the pairs merge into r * d."""
    shape = list(x.tensor_type.shape)
    shape = [1] * (len(repeats) - len(shape)) + shape
    x = reshape_to(cx, x, shape)
    paired, grown, merged = [], [], []
    for r, d in zip(repeats, shape, strict=True):
        paired += [1, d]
        grown += [r, d]
        merged.append(mul(r, d))
    x = cx.b.expand(reshape_to(cx, x, paired), shape=grown)
    return reshape_to(cx, x, merged)


@converter("aten.constant_pad_nd.default")
def constant_pad_nd(cx: ImportContext, x: Value, pad: Sequence[int], value: float = 0.0) -> Value:
    """torch lists pads from the last axis backwards, (before, after) each."""
    r = rank(x)
    pads = [0] * (2 * r)
    for i in range(len(pad) // 2):
        ax = r - 1 - i
        pads[2 * ax], pads[2 * ax + 1] = pad[2 * i], pad[2 * i + 1]
    return cx.b.pad(x, pads=pads, value=float(value))


@converter("aten.triu.default")
def triu(cx: ImportContext, x: Value, diagonal: int = 0) -> Value:
    return cx.b.triu(x, diagonal=diagonal)


@converter("aten.tril.default")
def tril(cx: ImportContext, x: Value, diagonal: int = 0) -> Value:
    return cx.b.tril(x, diagonal=diagonal)
