"""Converters for ATen ops that make tensors from sizes: full, zeros, ones, empty (as zeros),
their *_like and new_* forms, scalar_tensor and arange. Shapes and dtypes come from torch's
result type, so size arguments (ints or symbolic) need no parsing.
"""

from __future__ import annotations

from typing import Any

from archir.frontends.torch.context import ImportContext
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.types import DType


def _filled(cx: ImportContext, value: Any) -> Value:
    if isinstance(value, Value):
        return cx.b.expand(cx.cast(value, cx.out_dtype), shape=list(cx.out_shape))
    return cx.b.full(shape=list(cx.out_shape), value=float(value), dtype=cx.out_dtype)


@converter("aten.full.default", "aten.new_full.default")
def full(cx: ImportContext, *args: Any, **kwargs: Any) -> Value:
    value = args[-1] if args else kwargs["fill_value"]
    return _filled(cx, value)


@converter("aten.full_like.default")
def full_like(cx: ImportContext, x: Value, fill_value: Any, **kwargs: Any) -> Value:
    return _filled(cx, fill_value)


@converter("aten.zeros.default", "aten.zeros_like.default", "aten.new_zeros.default",
           "aten.empty.memory_format", "aten.empty_like.default", "aten.new_empty.default")
def zeros(cx: ImportContext, *args: Any, **kwargs: Any) -> Value:
    # empty's contents are undefined; zeros is one valid choice and keeps graphs deterministic
    return _filled(cx, 0)


@converter("aten.ones.default", "aten.ones_like.default", "aten.new_ones.default")
def ones(cx: ImportContext, *args: Any, **kwargs: Any) -> Value:
    return _filled(cx, 1)


@converter("aten.scalar_tensor.default")
def scalar_tensor(cx: ImportContext, s: Any, **kwargs: Any) -> Value:
    return _filled(cx, s)


@converter("aten.fill.Scalar")
def fill(cx: ImportContext, x: Value, value: Any) -> Value:
    return _filled(cx, value)


@converter("aten.arange.default")
def arange(cx: ImportContext, end: Any, **kwargs: Any) -> Value:
    return arange_start_step(cx, 0, end)


@converter("aten.arange.start")
def arange_start(cx: ImportContext, start: Any, end: Any, **kwargs: Any) -> Value:
    return arange_start_step(cx, start, end)


@converter("aten.arange.start_step")
def arange_start_step(cx: ImportContext, start: Any, end: Any, step: Any = 1, **kwargs: Any) -> Value:
    """iota over torch's length, times step, plus start (in the result dtype)."""
    if not isinstance(start, int | float) or not isinstance(step, int | float):
        raise Unsupported("arange with a symbolic start or step")
    dtype = cx.out_dtype
    ramp = cx.b.iota(shape=list(cx.out_shape), axis=0, dtype=DType.i64)
    ramp = cx.cast(ramp, dtype)
    if step != 1:
        ramp = cx.b.mul(ramp, cx.const(step, dtype))
    if start != 0:
        ramp = cx.b.add(ramp, cx.const(start, dtype))
    return ramp
