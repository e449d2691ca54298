"""Converters for elementwise ATen ops, comparisons, casts, reductions, softmax and cumsum.

Python scalars become rank-0 constants of the dtype torch would use for them; the importer
casts every result to torch's dtype afterwards, so promotion corner cases cannot drift.
"""

from __future__ import annotations

from typing import Any

from archir.frontends.torch.context import ImportContext, archir_dtype, axes, axis, rank
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.types import DType

Scalar = int | float | bool
Operand = Value | Scalar


def scalar_dtype(x: Value, s: Scalar) -> DType:
    """The dtype torch gives a Python scalar next to tensor x (a wrapped number)."""
    dt = x.tensor_type.dtype
    if isinstance(s, float) and not dt.is_float:
        return DType.f32
    if isinstance(s, int) and not isinstance(s, bool) and dt == DType.bool:
        return DType.i64
    return dt


def pair(cx: ImportContext, a: Operand, b: Operand) -> tuple[Value, Value]:
    """Both operands as Values; a scalar takes its dtype from the tensor beside it."""
    if isinstance(a, Value) and not isinstance(b, Value):
        return a, cx.const(b, scalar_dtype(a, b))
    if isinstance(b, Value) and not isinstance(a, Value):
        return cx.const(a, scalar_dtype(b, a)), b
    if not isinstance(a, Value):
        raise Unsupported("an op on two Python scalars")
    return a, b


def scaled(cx: ImportContext, x: Value, alpha: Scalar) -> Value:
    return x if alpha == 1 else cx.b.mul(x, cx.const(alpha, scalar_dtype(x, alpha)))


# -- arithmetic ---------------------------------------------------------------------------------
@converter("aten.add.Tensor", "aten.add.Scalar")
def add(cx: ImportContext, x: Operand, other: Operand, *, alpha: Scalar = 1) -> Value:
    a, b = pair(cx, x, other)
    return cx.b.add(a, scaled(cx, b, alpha))


@converter("aten.sub.Tensor", "aten.sub.Scalar")
def sub(cx: ImportContext, x: Operand, other: Operand, *, alpha: Scalar = 1) -> Value:
    a, b = pair(cx, x, other)
    return cx.b.sub(a, scaled(cx, b, alpha))


@converter("aten.rsub.Tensor", "aten.rsub.Scalar")
def rsub(cx: ImportContext, x: Operand, other: Operand, *, alpha: Scalar = 1) -> Value:
    a, b = pair(cx, x, other)
    return cx.b.sub(b, scaled(cx, a, alpha))


@converter("aten.mul.Tensor", "aten.mul.Scalar")
def mul(cx: ImportContext, x: Operand, other: Operand) -> Value:
    return cx.b.mul(*pair(cx, x, other))


@converter("aten.div.Tensor", "aten.div.Scalar", "aten.true_divide.Tensor")
def div(cx: ImportContext, x: Operand, other: Operand) -> Value:
    a, b = pair(cx, x, other)
    if not a.tensor_type.dtype.is_float and not b.tensor_type.dtype.is_float:
        a = cx.cast(a, DType.f32)  # true division of integers, as torch does
    return cx.b.div(a, b)


@converter("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def div_mode(cx: ImportContext, x: Operand, other: Operand, *, rounding_mode: str | None = None) -> Value:
    q = div(cx, x, other)
    if rounding_mode is None:
        return q
    if rounding_mode == "floor":
        return cx.b.floor(q)
    # trunc: floor towards zero on both sides
    zero = cx.const(0, q.tensor_type.dtype)
    return cx.b.where(cx.b.lt(q, zero), cx.b.neg(cx.b.floor(cx.b.neg(q))), cx.b.floor(q))


@converter("aten.floor_divide.default")
def floor_divide(cx: ImportContext, x: Operand, other: Operand) -> Value:
    return div_mode(cx, x, other, rounding_mode="floor")


@converter("aten.pow.Tensor_Scalar", "aten.pow.Tensor_Tensor", "aten.pow.Scalar")
def pow_(cx: ImportContext, x: Operand, exponent: Operand) -> Value:
    if isinstance(x, Value) and exponent == 2:
        return cx.b.mul(x, x)
    if isinstance(x, Value) and exponent == 0.5:
        return cx.b.sqrt(x)
    a, b = pair(cx, x, exponent)
    return cx.b.pow(a, b)


@converter("aten.maximum.default")
def maximum(cx: ImportContext, x: Value, other: Value) -> Value:
    return cx.b.maximum(x, other)


@converter("aten.minimum.default")
def minimum(cx: ImportContext, x: Value, other: Value) -> Value:
    return cx.b.minimum(x, other)


@converter("aten.clamp.default", "aten.clip.default")
def clamp(cx: ImportContext, x: Value, min: Scalar | None = None, max: Scalar | None = None) -> Value:
    return cx.b.clamp(x, min=min, max=max)


@converter("aten.clamp_min.default")
def clamp_min(cx: ImportContext, x: Value, min: Scalar) -> Value:
    return cx.b.clamp(x, min=min)


@converter("aten.clamp_max.default")
def clamp_max(cx: ImportContext, x: Value, max: Scalar) -> Value:
    return cx.b.clamp(x, max=max)


# -- unary --------------------------------------------------------------------------------------
_UNARY = {"neg": "neg", "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
          "reciprocal": "reciprocal", "tanh": "tanh", "sigmoid": "sigmoid", "silu": "silu",
          "erf": "erf", "sin": "sin", "cos": "cos", "floor": "floor", "relu": "relu"}


def _unary(op: str) -> Any:
    def convert(cx: ImportContext, x: Value) -> Value:
        if op in ("exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "erf", "sin", "cos"):
            x = cx.cast(x, cx.out_dtype)  # integer inputs compute in the default float dtype
        return cx.b.op(op, x)

    convert.__name__ = op
    return convert


for _aten, _op in _UNARY.items():
    converter(f"aten.{_aten}.default")(_unary(_op))


@converter("aten.gelu.default")
def gelu(cx: ImportContext, x: Value, *, approximate: str = "none") -> Value:
    return cx.b.gelu(x, approximate=approximate)


@converter("aten.log1p.default")
def log1p(cx: ImportContext, x: Value) -> Value:
    return cx.b.log(cx.b.add(x, cx.const(1, x.tensor_type.dtype)))


@converter("aten.leaky_relu.default")
def leaky_relu(cx: ImportContext, x: Value, negative_slope: float = 0.01) -> Value:
    zero = cx.const(0, x.tensor_type.dtype)
    return cx.b.where(cx.b.gt(x, zero), x, cx.b.mul(x, cx.const(negative_slope, x.tensor_type.dtype)))


@converter("aten.hardtanh.default")
def hardtanh(cx: ImportContext, x: Value, min_val: float = -1.0, max_val: float = 1.0) -> Value:
    return cx.b.clamp(x, min=min_val, max=max_val)


# -- comparisons and logic ----------------------------------------------------------------------
for _cmp in ("eq", "ne", "lt", "le", "gt", "ge"):
    def _compare(cx: ImportContext, x: Operand, other: Operand, _op: str = _cmp) -> Value:
        return cx.b.op(_op, *pair(cx, x, other))

    converter(f"aten.{_cmp}.Tensor", f"aten.{_cmp}.Scalar")(_compare)


def _bool_only(x: Value, what: str) -> Value:
    if x.tensor_type.dtype != DType.bool:
        raise Unsupported(f"bitwise {what} of {x.tensor_type.dtype} tensors (archir has logical ops)")
    return x


@converter("aten.logical_and.default", "aten.bitwise_and.Tensor", "aten.__and__.Tensor")
def logical_and(cx: ImportContext, x: Value, other: Value) -> Value:
    return cx.b.logical_and(_bool_only(x, "and"), _bool_only(other, "and"))


@converter("aten.logical_or.default", "aten.bitwise_or.Tensor", "aten.__or__.Tensor")
def logical_or(cx: ImportContext, x: Value, other: Value) -> Value:
    return cx.b.logical_or(_bool_only(x, "or"), _bool_only(other, "or"))


@converter("aten.logical_not.default", "aten.bitwise_not.default")
def logical_not(cx: ImportContext, x: Value) -> Value:
    return cx.b.logical_not(_bool_only(x, "not"))


@converter("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def where(cx: ImportContext, condition: Value, x: Operand, other: Operand) -> Value:
    if not isinstance(x, Value) and not isinstance(other, Value):
        x, other = cx.const(x, cx.out_dtype), cx.const(other, cx.out_dtype)
    a, b = pair(cx, x, other)
    return cx.b.where(condition, a, b)


@converter("aten.masked_fill.Scalar", "aten.masked_fill.Tensor")
def masked_fill(cx: ImportContext, x: Value, mask: Value, value: Operand) -> Value:
    fill = value if isinstance(value, Value) else cx.const(value, x.tensor_type.dtype)
    return cx.b.where(mask, fill, x)


# -- casts and copies ---------------------------------------------------------------------------
@converter("aten.clone.default", "aten.contiguous.default", "aten.alias.default",
           "aten.detach.default", "aten.lift_fresh_copy.default",
           "aten._to_copy.default", "aten.to.dtype", "aten.to.dtype_layout", "aten.to.device",
           "aten.to.other", "aten.type_as.default", "aten.view_as.default",
           "aten.lift_fresh.default", "aten.positive.default")
def copy_or_cast(cx: ImportContext, x: Value, *args: Any, **kwargs: Any) -> Value:
    """Copies, aliases and device moves are no-ops on SSA values; dtype changes are casts."""
    return cx.cast(x, cx.out_dtype)


@converter("aten.copy.default")
def copy(cx: ImportContext, dst: Value, src: Value, non_blocking: bool = False) -> Value:
    """The functional form of dst.copy_(src): src's values in dst's shape and dtype."""
    src = cx.cast(src, cx.out_dtype)
    if src.tensor_type.shape != cx.out_shape:
        src = cx.b.expand(src, shape=list(cx.out_shape))
    return src


@converter("aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default")
def dropout(cx: ImportContext, x: Value, p: float, train: bool) -> Value:
    if train and p > 0:
        raise Unsupported("dropout in training mode (archir graphs are for inference)",
                          hint="export the module after .eval()")
    return x


@converter("aten.native_dropout.default")
def native_dropout(cx: ImportContext, x: Value, p: float, train: bool | None) -> tuple[Value, None]:
    return dropout(cx, x, p, bool(train)), None


# -- reductions ---------------------------------------------------------------------------------
def _reduce(cx: ImportContext, op: str, x: Value, dim: Any, keepdim: bool,
            dtype: Any = None) -> Value:
    if dtype is not None:
        x = cx.cast(x, archir_dtype(dtype))
    elif op == "mean":
        x = cx.cast(x, cx.out_dtype)
    return cx.b.op(op, x, axes=axes(dim, rank(x)), keepdims=keepdim)


@converter("aten.sum.dim_IntList", "aten.sum.default")
def sum_(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Value:
    return _reduce(cx, "sum", x, dim, keepdim, dtype)


@converter("aten.mean.dim", "aten.mean.default")
def mean(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Value:
    return _reduce(cx, "mean", x, dim, keepdim, dtype)


@converter("aten.prod.dim_int", "aten.prod.default")
def prod(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Value:
    return _reduce(cx, "prod", x, dim, keepdim, dtype)


@converter("aten.amax.default", "aten.max.default")
def amax(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False) -> Value:
    return _reduce(cx, "max", x, dim, keepdim)


@converter("aten.amin.default", "aten.min.default")
def amin(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False) -> Value:
    return _reduce(cx, "min", x, dim, keepdim)


@converter("aten.max.dim")
def max_dim(cx: ImportContext, x: Value, dim: int, keepdim: bool = False) -> tuple[Value, Value]:
    ax = axis(dim, rank(x))
    return cx.b.max(x, axes=[ax], keepdims=keepdim), cx.b.argmax(x, axis=ax, keepdims=keepdim)


@converter("aten.min.dim")
def min_dim(cx: ImportContext, x: Value, dim: int, keepdim: bool = False) -> tuple[Value, Value]:
    ax = axis(dim, rank(x))
    return cx.b.min(x, axes=[ax], keepdims=keepdim), cx.b.argmin(x, axis=ax, keepdims=keepdim)


@converter("aten.argmax.default")
def argmax(cx: ImportContext, x: Value, dim: int | None = None, keepdim: bool = False) -> Value:
    if dim is None:
        x, dim = cx.b.reshape(x, shape=[-1]), 0
    return cx.b.argmax(x, axis=axis(dim, rank(x)), keepdims=keepdim)


@converter("aten.argmin.default")
def argmin(cx: ImportContext, x: Value, dim: int | None = None, keepdim: bool = False) -> Value:
    if dim is None:
        x, dim = cx.b.reshape(x, shape=[-1]), 0
    return cx.b.argmin(x, axis=axis(dim, rank(x)), keepdims=keepdim)


# -- softmax and cumsum -------------------------------------------------------------------------
@converter("aten._softmax.default", "aten.softmax.int")
def softmax(cx: ImportContext, x: Value, dim: int, half_to_float: Any = None) -> Value:
    x = cx.cast(x, cx.out_dtype)
    return cx.b.softmax(x, axis=axis(dim, rank(x)))


@converter("aten._log_softmax.default", "aten.log_softmax.int")
def log_softmax(cx: ImportContext, x: Value, dim: int, half_to_float: Any = None) -> Value:
    x = cx.cast(x, cx.out_dtype)
    return cx.b.log_softmax(x, axis=axis(dim, rank(x)))


@converter("aten.cumsum.default")
def cumsum(cx: ImportContext, x: Value, dim: int, *, dtype: Any = None) -> Value:
    """A scan along `dim` carrying the running sum (the per-step output is the carry)."""
    x = cx.cast(x, cx.out_dtype)
    t = x.tensor_type
    ax = axis(dim, t.rank)
    if t.rank == 0:
        return x
    carry_shape = [d for i, d in enumerate(t.shape) if i != ax]
    init = cx.b.full(shape=carry_shape, value=0.0, dtype=t.dtype)

    def body(total: Value, step: Value) -> list[Value]:
        new = cx.b.add(total, step)
        return [new, new]

    _, out = cx.b.scan(init, x, regions=[body], num_carry=1, axis=ax)
    return out
