"""Elementwise ops: unary math, binary arithmetic with broadcasting, comparisons, where, cast.

A table per family, tinygrad style: one line per op names it and gives its numpy semantics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from archir.ops.rules import broadcast, floating, tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.types import DType, TensorType, Type, promote_dtypes

EW = (Trait.ELEMENTWISE,)
EW_BCAST = (Trait.ELEMENTWISE, Trait.BROADCAST)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not (np.asarray(b).dtype.kind in "iu" and np.asarray(a).dtype.kind in "iu" and np.any(b < 0)):
        return np.power(a, b)
    # numpy refuses integer negative powers; torch gives 1 / a**|b| truncated: 0 unless |a| == 1
    powered = np.power(a, np.where(b < 0, 0, b))
    odd = np.where(b % 2 == 0, 1, -1)
    negative = np.where(a == 1, 1, np.where(a == -1, odd, 0))
    return np.where(b < 0, negative, powered).astype(powered.dtype)


def _promoted(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """Compare in the promoted dtype (i64 vs f32 compares in f32, as torch does), not numpy's f64."""

    def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        common = promote_dtypes(DType.from_numpy(a.dtype), DType.from_numpy(b.dtype)).numpy
        return fn(a.astype(common, copy=False), b.astype(common, copy=False))

    return compare


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + np.tanh(inner))
    return 0.5 * x * (1.0 + special.erf(x / math.sqrt(2.0)))


_FLOAT_UNARY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "exp": (np.exp, "e to the x"),
    "log": (np.log, "natural logarithm"),
    "sqrt": (np.sqrt, "square root"),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), "1 / sqrt(x)"),
    "reciprocal": (lambda x: 1.0 / x, "1 / x"),
    "tanh": (np.tanh, "hyperbolic tangent"),
    "sigmoid": (special.expit, "1 / (1 + exp(-x))"),
    "silu": (lambda x: x * special.expit(x), "x * sigmoid(x) (swish)"),
    "erf": (special.erf, "the error function"),
    "sin": (np.sin, "sine"),
    "cos": (np.cos, "cosine"),
    "floor": (np.floor, "round towards -inf"),
}

_NUMERIC_UNARY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "neg": (np.negative, "-x"),
    "abs": (np.abs, "|x|"),
    "relu": (lambda x: np.maximum(x, np.zeros((), x.dtype)), "max(x, 0)"),
}

_BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str, bool]] = {
    # name: (numpy semantics, doc, commutative)
    "add": (np.add, "a + b", True),
    "sub": (np.subtract, "a - b", False),
    "mul": (np.multiply, "a * b", True),
    "pow": (_pow, "a ** b", False),
    "maximum": (np.maximum, "elementwise max (nan wins)", True),
    "minimum": (np.minimum, "elementwise min (nan wins)", True),
}

_COMPARE: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str, bool]] = {
    "eq": (np.equal, "a == b", True),
    "ne": (np.not_equal, "a != b", True),
    "lt": (np.less, "a < b", False),
    "le": (np.less_equal, "a <= b", False),
    "gt": (np.greater, "a > b", False),
    "ge": (np.greater_equal, "a >= b", False),
    "logical_and": (np.logical_and, "a and b (bool)", True),
    "logical_or": (np.logical_or, "a or b (bool)", True),
}


def _same_float(x: Type, **_: object) -> TensorType:
    return floating(x, "x")


def _same_numeric(x: Type, **_: object) -> TensorType:
    tt = tensor(x, "x")
    if tt.dtype == DType.bool:
        from archir.errors import TypeInferenceError

        raise TypeInferenceError(f"x must be numeric, got {tt}")
    return tt


for _name, (_fn, _doc) in _FLOAT_UNARY.items():
    define_op(_name, operands=("x",), infer=_same_float, impl=_fn, traits=EW, doc=_doc)

for _name, (_fn, _doc) in _NUMERIC_UNARY.items():
    define_op(_name, operands=("x",), infer=_same_numeric, impl=_fn, traits=EW, doc=_doc)


def _no_bool_broadcast(a: Type, b: Type) -> TensorType:
    out = broadcast(a, b)
    if out.dtype == DType.bool:  # numpy and torch both refuse bool - bool and bool ** bool
        from archir.errors import TypeInferenceError

        raise TypeInferenceError(f"operands must be numeric, got {a} and {b}",
                                 hint="cast the bools to an integer or float dtype first")
    return out


for _name, (_fn, _doc, _comm) in _BINARY.items():
    define_op(_name, operands=("a", "b"),
              infer=_no_bool_broadcast if _name in ("sub", "pow") else lambda a, b: broadcast(a, b),
              impl=_fn,
              traits=EW_BCAST + ((Trait.COMMUTATIVE,) if _comm else ()), doc=_doc)

for _name, (_fn, _doc, _comm) in _COMPARE.items():
    define_op(_name, operands=("a", "b"),
              infer=lambda a, b: broadcast(a, b, dtype=DType.bool), impl=_promoted(_fn),
              traits=EW_BCAST + ((Trait.COMMUTATIVE,) if _comm else ()), doc=_doc)


def _infer_div(a: Type, b: Type) -> TensorType:
    out = broadcast(a, b)
    return out if out.dtype.is_float else out.with_dtype(DType.f32)


define_op("div", operands=("a", "b"), infer=_infer_div, impl=np.true_divide, traits=EW_BCAST,
          doc="a / b (true division: integer operands give f32)")

define_op("logical_not", operands=("x",),
          infer=lambda x: tensor(x, "x").with_dtype(DType.bool), impl=np.logical_not, traits=EW,
          doc="not x (bool)")

define_op("gelu", operands=("x",), infer=_same_float, impl=_gelu, traits=EW,
          attrs={"approximate": attr(AttrKind.STR, "none", choices=("none", "tanh"))},
          doc="Gaussian error linear unit, exact (erf) or the tanh approximation")

define_op("clamp", operands=("x",), infer=_same_numeric,
          impl=lambda x, min, max: np.clip(x, min, max),
          attrs={"min": attr(AttrKind.FLOAT, optional=True),
                 "max": attr(AttrKind.FLOAT, optional=True)},
          traits=EW, doc="clip x to [min, max]; an absent bound is open")


def _infer_where(cond: Type, a: Type, b: Type) -> TensorType:
    c = tensor(cond, "cond")
    if c.dtype != DType.bool:
        from archir.errors import TypeInferenceError

        raise TypeInferenceError(f"where's cond must be bool, got {c}")
    out = broadcast(a, b)
    return broadcast(c, out, dtype=out.dtype)


define_op("where", operands=("cond", "a", "b"), infer=_infer_where, impl=np.where,
          traits=EW_BCAST, doc="a where cond else b, with broadcasting")

define_op("cast", operands=("x",),
          infer=lambda x, dtype: tensor(x, "x").with_dtype(dtype),
          impl=lambda x, dtype: x.astype(dtype.numpy),
          attrs={"dtype": attr(AttrKind.DTYPE)}, traits=EW,
          doc="convert the element type (float to int truncates towards zero)")
