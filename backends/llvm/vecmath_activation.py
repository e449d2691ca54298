"""Branch-free tanh, sigmoid, silu and tanh-approximated gelu bodies for the LLVM backend.

All are built on exp/expm1 of a non-positive argument, so nothing overflows and no large terms
cancel: tanh uses expm1 (exact leading term near 0), the logistic family takes e/(1+e) or
1/(1+e) by sign and keeps subnormal results exact by working 2^k higher and rounding once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from archir.backends.llvm.math_builder import MathBuilder, Operand, mangled
from archir.backends.llvm.target import host_target
from archir.backends.llvm.vecmath_exp import LOG2E, constants, expm1
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


def _logistic_guard(mb: MathBuilder) -> tuple[float, int]:
    """(lowest, guard): below `lowest` every logistic product here rounds to 0 (and is set to 0);
    2^guard lifts e^lowest into the normal range with one power of two."""
    c = constants(mb)
    lowest = c.exp_lo - c.subnormal_guard * 0.69
    n_min = round(lowest * LOG2E) - 1
    return lowest, -(mb.exp_bias - 1) - n_min


def _estrin(mb: MathBuilder, x: ir.Value, coeffs: Sequence[float]) -> ir.Value:
    """coeffs[0] + x coeffs[1] + ... in pairs (Estrin): a shorter dependency chain than Horner."""
    pairs = [mb.fma(x, coeffs[i + 1], coeffs[i]) if i + 1 < len(coeffs) else mb.const(coeffs[i])
             for i in range(0, len(coeffs), 2)]
    x2 = mb.mul(x, x)
    acc = pairs[-1]
    for pair in reversed(pairs[:-1]):
        acc = mb.fma(acc, x2, pair)
    return acc


def _exp_nonpositive_scaled(mb: MathBuilder, hi: ir.Value, lo: ir.Value | None) -> ir.Value:
    """e^(hi + lo) 2^guard for hi <= 0: exp_split without its clamps, as the caller only uses
    lanes with hi >= lowest (others are set to 0 here, NaN stays NaN through the arithmetic)."""
    c = constants(mb)
    lowest, guard = _logistic_guard(mb)
    shifter = 1.5 * 2.0**mb.mant_bits
    t = mb.fma(hi, LOG2E, shifter)  # round(hi log2 e) in the low mantissa bits
    n = mb.sub(t, shifter)
    # Cody-Waite as in vecmath_exp._reduce; the small terms are summed off the critical path.
    r = mb.add(mb.fma(n, -c.ln2_hi, hi), mb.fma(n, -c.ln2_lo, 0.0 if lo is None else lo))
    u = mb.fma(mb.mul(r, r), _estrin(mb, r, c.exp_poly), r)
    n_int = mb.b.sub(mb.to_bits(t), mb.to_bits(mb.const(shifter)))
    scaled = mb.mul(mb.add(u, 1.0), mb.pow2(mb.b.add(n_int, mb.iconst(guard))))
    return mb.select(mb.cmp("<", hi, lowest), 0.0, scaled)


def _scaled_product(mb: MathBuilder, factor: ir.Value | None, positive: ir.Value, neg_hi: ir.Value,
                    neg_lo: ir.Value | None = None) -> ir.Value:
    """factor * sigmoid(z) (sigmoid alone when factor is None), given positive = (z >= 0) and
    -|z| = neg_hi + neg_lo.

    sigmoid = 1/(1+e) for z >= 0, e/(1+e) for z < 0, e = exp(-|z|) <= 1. e is computed 2^guard
    too large, so e and the product stay normal; on the negative side the denominator carries
    the 2^guard, so the one division rounds the (maybe subnormal) result exactly once.
    """
    _, guard = _logistic_guard(mb)
    e_scaled = _exp_nonpositive_scaled(mb, neg_hi, neg_lo)
    if factor is None:
        numerator = mb.select(positive, 1.0, e_scaled)
    else:
        numerator = mb.select(positive, factor, mb.mul(factor, e_scaled))
    denominator = mb.select(positive, mb.fma(e_scaled, 2.0**-guard, 1.0), mb.add(e_scaled, 2.0**guard))
    return mb.div(numerator, denominator)


def _negative_abs(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return mb.neg(mb.fabs(x))


def sigmoid(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return _scaled_product(mb, None, mb.cmp(">=", x, 0.0), _negative_abs(mb, x))


def silu(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return _scaled_product(mb, x, mb.cmp(">=", x, 0.0), _negative_abs(mb, x))


def _host_has_fma() -> bool:
    return "+fma" in host_target().features.split(",")


def fma_exact(mb: MathBuilder, a: ir.Value, b: Operand, c: Operand) -> ir.Value:
    """a*b + c rounded once (llvm.fma, not fmuladd): the error-free transformations rely on it."""
    ty = a.type
    module = mb.b.module
    symbol = f"llvm.fma.{mangled(ty)}"
    fn = module.globals.get(symbol) or ir.Function(module, ir.FunctionType(ty, [ty] * 3), symbol)
    operands = [a, *(mb.const(v) if isinstance(v, float) else v for v in (b, c))]
    return mb.b.call(fn, operands)


def _split(value: float) -> tuple[float, float]:
    """value as an f32 head plus an f32 tail (value - head)."""
    head = float(np.float32(value))
    return head, float(np.float32(value - head))


def _neg_two_u_pair(mb: MathBuilder, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """2u(y) = y (K0 + K1 y^2) as an unevaluated f32 pair head + tail, good to ~2^-40 relative.

    Products are split exactly with fma (p + fma(a, b, -p) = a b), the sum K0 + K1 y^2 of two
    non-negative terms by Fast2Sum on (larger, smaller); the constants carry f32 tails.
    """
    k0, k0_lo = _split(GELU_TANH_K0)
    k1, k1_lo = _split(GELU_TANH_K1)
    y2 = mb.mul(y, y)
    y2_err = fma_exact(mb, y, y, mb.neg(y2))
    p = mb.mul(y2, k1)
    p_err = fma_exact(mb, y2, k1, mb.neg(p))
    q = mb.add(p, k0)
    q_err = mb.sub(mb.minnum(p, k0), mb.sub(q, mb.maxnum(p, k0)))
    # Tail of q: the sum's error, the product's error, and what the f32 y^2 and constants lost.
    q_lo = fma_exact(mb, y2_err, k1, p_err)
    q_lo = fma_exact(mb, y2, k1_lo, q_lo)
    q_lo = mb.add(q_lo, mb.add(q_err, k0_lo))
    head = mb.mul(y, q)
    # An infinite head has a NaN tail: _scaled_product sets such lanes (head < lowest) to 0.
    tail = fma_exact(mb, y, q_lo, fma_exact(mb, y, q, mb.neg(head)))
    return head, tail


def gelu_tanh(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as x sigmoid(2u) so the negative
    tail (1 + tanh(u) -> 0) keeps relative accuracy instead of cancelling. 2u is odd in x, so
    -|2u| = 2u(-|x|). For f32 it goes to exp as head + tail (its rounding would otherwise cost
    |2u| ulp): an f32 pair built with fma where the host has it (full vector width), else f64."""
    positive = mb.cmp(">=", x, 0.0)
    y = _negative_abs(mb, x)
    if mb.is_f64:
        return _scaled_product(mb, x, positive, mb.mul(y, mb.fma(mb.mul(y, y), GELU_TANH_K1, GELU_TANH_K0)))
    if _host_has_fma():
        return _scaled_product(mb, x, positive, *_neg_two_u_pair(mb, y))
    wide = mb.with_type(ir.DoubleType())
    yd = mb.convert(y, wide)
    two_u = wide.mul(yd, wide.fma(wide.mul(yd, yd), GELU_TANH_K1, GELU_TANH_K0))
    head = wide.convert(two_u, mb)
    tail = wide.convert(wide.sub(two_u, mb.convert(head, wide)), mb)
    return _scaled_product(mb, x, positive, head, tail)
