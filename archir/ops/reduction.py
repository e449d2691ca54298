"""Reductions: sum, mean, max, min and prod over a set of axes, and argmax / argmin along one.

`axes = none` reduces every axis. Like torch, sum and prod of int or bool tensors give i64, and
mean needs a float tensor (an integer mean has no exact result type).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from archir.errors import TypeInferenceError
from archir.ops.rules import axes_in, axis_in, reduced_shape, tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.types import DType, TensorType, Type

_REDUCE_ATTRS = {
    "axes": attr(AttrKind.INTS, optional=True, doc="axes to reduce; none means all of them"),
    "keepdims": attr(AttrKind.BOOL, False, doc="keep reduced axes as size 1"),
}
_ARG_ATTRS = {
    "axis": attr(AttrKind.INT, -1, doc="the axis to search along"),
    "keepdims": attr(AttrKind.BOOL, False, doc="keep the searched axis as size 1"),
}


def _reduced(t: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    norm = tuple(range(t.rank)) if axes is None else axes_in(axes, t)
    return t.with_shape(reduced_shape(t.shape, norm, keepdims))


def _infer_accumulate(x: Type, *, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    """sum and prod: integers and bools accumulate in i64, as torch does."""
    t = tensor(x, "x")
    out = _reduced(t, axes, keepdims)
    return out if t.dtype.is_float else out.with_dtype(DType.i64)


def _infer_mean(x: Type, *, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    t = tensor(x, "x")
    if not t.dtype.is_float:
        raise TypeInferenceError(f"mean needs a float x, got {t}",
                                 hint="cast x to a float dtype first")
    return _reduced(t, axes, keepdims)


def _infer_extreme(x: Type, *, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    return _reduced(tensor(x, "x"), axes, keepdims)


def _infer_arg(x: Type, *, axis: int, keepdims: bool) -> TensorType:
    t = tensor(x, "x")
    ax = axis_in(axis, t)
    return TensorType(reduced_shape(t.shape, (ax,), keepdims), DType.i64)


def _reducer(fn: Callable[..., np.ndarray], accumulate: bool) -> Callable[..., np.ndarray]:
    def impl(x: np.ndarray, *, axes: tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
        if accumulate and x.dtype.kind in "biu":
            return fn(x, axis=axes, keepdims=keepdims, dtype=np.int64)
        return fn(x, axis=axes, keepdims=keepdims)

    return impl


def _arg_reducer(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def impl(x: np.ndarray, *, axis: int, keepdims: bool) -> np.ndarray:
        return fn(x, axis=axis, keepdims=keepdims).astype(np.int64)

    return impl


_REDUCTIONS: dict[str, tuple[Callable[..., TensorType], Callable[..., np.ndarray], str]] = {
    "sum": (_infer_accumulate, _reducer(np.sum, True), "sum (int and bool inputs give i64)"),
    "mean": (_infer_mean, _reducer(np.mean, False), "arithmetic mean of a float tensor"),
    "max": (_infer_extreme, _reducer(np.max, False), "largest element (nan wins)"),
    "min": (_infer_extreme, _reducer(np.min, False), "smallest element (nan wins)"),
    "prod": (_infer_accumulate, _reducer(np.prod, True), "product (int and bool inputs give i64)"),
}

for _name, (_infer, _impl, _doc) in _REDUCTIONS.items():
    define_op(_name, operands=("x",), infer=_infer, impl=_impl, attrs=_REDUCE_ATTRS,
              traits=(Trait.REDUCTION,), doc=f"{_doc} over `axes`")

define_op("argmax", operands=("x",), infer=_infer_arg, impl=_arg_reducer(np.argmax),
          attrs=_ARG_ATTRS, traits=(Trait.REDUCTION,),
          doc="index (i64) of the largest element along `axis`; the first one on ties")
define_op("argmin", operands=("x",), infer=_infer_arg, impl=_arg_reducer(np.argmin),
          attrs=_ARG_ATTRS, traits=(Trait.REDUCTION,),
          doc="index (i64) of the smallest element along `axis`; the first one on ties")
