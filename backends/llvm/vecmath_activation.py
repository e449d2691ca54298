"""Branch-free tanh, sigmoid, silu and tanh-approximated gelu bodies for the LLVM backend.

All are built on exp/expm1 of a non-positive argument, so nothing overflows and no large terms
cancel: tanh uses expm1 (exact leading term near 0), the logistic family takes e/(1+e) or
1/(1+e) by sign and keeps subnormal results exact by working 2^k higher and rounding once.
"""

from __future__ import annotations

from archir.backends.llvm.math_builder import MathBuilder
from archir.backends.llvm.vecmath_exp import constants, exp_split, expm1
from llvmlite import ir

# gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u), 2u = x (K0 + K1 x^2)
GELU_TANH_K0 = 1.5957691216057308  # 2 sqrt(2/pi)
GELU_TANH_K1 = 1.5957691216057308 * 0.044715


def tanh(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """tanh|x| = -t / (2 + t), t = expm1(-2|x|) in (-1, 0]: for small |x|, t = -2|x| to within
    an ulp, so the quotient is |x| without the cancellation of (1 - e) / (1 + e); for large |x|,
    t = -1 and the quotient saturates at exactly 1."""
    t = expm1(mb, mb.mul(mb.fabs(x), -2.0))
    return mb.copysign(mb.div(mb.neg(t), mb.add(t, 2.0)), x)


def _scaled_product(mb: MathBuilder, factor: ir.Value | None, x: ir.Value,
                    x_lo: ir.Value | None = None) -> ir.Value:
    """factor * sigmoid(x + x_lo) (sigmoid alone when factor is None).

    sigmoid = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|) <= 1. On the negative side
    e is computed 2^k too large (k = the subnormal exponent span), so e, the product and the
    quotient stay normal; the final 2^-k scaling then rounds into the subnormals exactly once.
    """
    guard = constants(mb).subnormal_guard
    positive = mb.cmp(">=", x, 0.0)
    towards_zero = mb.select(positive, -1.0, 1.0)  # -|x| = x * towards_zero, NaN kept
    lo = mb.mul(x_lo, towards_zero) if x_lo is not None else None
    e_scaled = exp_split(mb, mb.mul(x, towards_zero), lo, pow2=guard)
    e = mb.mul(e_scaled, 2.0**-guard)
    numerator = mb.select(positive, 1.0, e_scaled)
    if factor is not None:
        numerator = mb.mul(factor, numerator)
    quotient = mb.div(numerator, mb.add(e, 1.0))
    return mb.mul(quotient, mb.select(positive, 1.0, 2.0**-guard))


def sigmoid(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return _scaled_product(mb, None, x)


def silu(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return _scaled_product(mb, x, x)


def gelu_tanh(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as x sigmoid(2u) so the negative
    tail (1 + tanh(u) -> 0) keeps relative accuracy instead of cancelling. For f32, 2u is formed
    in f64 and handed to exp as head + tail: its rounding would otherwise cost |2u| ulp."""
    if mb.is_f64:
        return _scaled_product(mb, x, mb.mul(x, mb.fma(mb.mul(x, x), GELU_TANH_K1, GELU_TANH_K0)))
    wide = mb.with_type(ir.DoubleType())
    xd = mb.convert(x, wide)
    two_u = wide.mul(xd, wide.fma(wide.mul(xd, xd), GELU_TANH_K1, GELU_TANH_K0))
    head = wide.convert(two_u, mb)
    tail = wide.convert(wide.sub(two_u, mb.convert(head, wide)), mb)
    tail = mb.select(mb.cmp("<", mb.fabs(head), float("inf")), tail, 0.0)  # inf - inf is no tail
    return _scaled_product(mb, x, head, tail)
