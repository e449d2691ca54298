"""Branch-free exp, expm1, log, log1p and pow bodies for the LLVM backend, on f32 or f64 lanes.

Each function takes a MathBuilder and IR values and returns the result value; vecmath.py wraps them
into module functions. Polynomial coefficients are weighted minimax fits (Lawson iteration in
mpmath, 40 digits) of the stated remainder functions, rounded to the working precision.
"""

from __future__ import annotations

from dataclasses import dataclass

from archir.backends.llvm.math_builder import MathBuilder
from llvmlite import ir


@dataclass(frozen=True, slots=True)
class ExpLogConstants:
    """Per-precision constants of the exp/log family."""

    ln2_hi: float  # ln 2 with trailing zero bits, so n*ln2_hi is exact for every exponent n
    ln2_lo: float  # ln 2 - ln2_hi
    exp_lo: float  # below this exp underflows to +0 (after correct subnormal rounding)
    exp_hi: float  # above this exp overflows to +inf
    expm1_lo: float  # below this expm1 rounds to -1
    subnormal_guard: int  # 2^this lifts exp's smallest result (at exp_lo) into the normal range
    exp_poly: tuple[float, ...]  # q(r) = (e^r - 1 - r) / r^2 on |r| <= ln2/2
    log_poly: tuple[float, ...]  # P(z) = 2 (atanh(s)/s - 1) / z, z = s^2 <= 0.0295
    sqrt_half_bits: int  # bit pattern of sqrt(1/2): the mantissa split point of log
    min_normal: float


F32 = ExpLogConstants(
    ln2_hi=0.693145751953125,
    ln2_lo=1.428606765330187e-06,
    exp_lo=-104.0,
    exp_hi=89.0,
    expm1_lo=-20.0,
    subnormal_guard=24,
    # relative error of e^r from the fit: 3.1e-9
    exp_poly=(0.4999999403953552, 0.1666651964187622, 0.04166839271783829, 0.008368761278688908,
              0.0013814453268423676),
    # error contributed to log1p(f), relative: 8.4e-10
    log_poly=(0.6666678190231323, 0.39977073669433594, 0.29885342717170715),
    sqrt_half_bits=0x3F3504F3,
    min_normal=2.0**-126,
)

F64 = ExpLogConstants(
    ln2_hi=0.6931471803691238,
    ln2_lo=1.9082149292705877e-10,
    exp_lo=-746.0,
    exp_hi=710.0,
    expm1_lo=-40.0,
    subnormal_guard=54,
    # relative error of e^r from the fit: 3.6e-18
    exp_poly=(0.5000000000000011, 0.1666666666666641, 0.041666666666529545, 0.00833333333349476,
              0.0013888888943814268, 0.00019841269506404112, 2.4801492888666745e-05,
              2.7557586100707352e-06, 2.7630329478710414e-07, 2.5000284874628887e-08),
    # error contributed to log1p(f), relative: 1.3e-18
    log_poly=(0.666666666666674, 0.39999999999376873, 0.28571428751526395, 0.22222197565781973,
              0.18183620064416842, 0.15312543080642918, 0.14811803526776163),
    sqrt_half_bits=0x3FE6A09E667F3BCD,
    min_normal=2.0**-1022,
)

LOG2E = 1.4426950408889634


def constants(mb: MathBuilder) -> ExpLogConstants:
    return F64 if mb.is_f64 else F32


def _reduce(mb: MathBuilder, x: ir.Value, lo: ir.Value | None = None) -> tuple[ir.Value, ir.Value]:
    """(n, u) with x + lo = n ln2 + r and u = e^r - 1, for x already clamped to a finite range.

    Cody-Waite: n*ln2_hi is exact and x - n*ln2_hi is exact (Sterbenz), so r keeps full precision.
    """
    c = constants(mb)
    n_float, n_int = mb.round_to_int(mb.mul(x, LOG2E))
    r = mb.fma(n_float, -c.ln2_hi, x)
    r = mb.fma(n_float, -c.ln2_lo, r)
    if lo is not None:
        r = mb.add(r, lo)
    # e^r - 1 = r + r^2 q(r): the leading r is exact, the polynomial only adds a small correction.
    u = mb.fma(mb.mul(r, r), mb.horner(r, c.exp_poly), r)
    return n_int, u


def exp_split(mb: MathBuilder, hi: ir.Value, lo: ir.Value | None = None, pow2: int = 0) -> ir.Value:
    """e^(hi + lo) * 2^pow2 for a small correction lo, keeping relative accuracy when hi is large.

    pow2 > 0 lets a caller keep a would-be subnormal result normal and round once at its end.
    """
    c = constants(mb)
    lowest = c.exp_lo - pow2 * 0.69  # 2^pow2 moves the underflow point down by pow2 ln 2
    clamped = mb.minnum(mb.maxnum(hi, lowest), c.exp_hi)  # also turns NaN into a finite value
    in_range = mb.cmp("==", clamped, hi)
    if lo is not None:
        lo = mb.select(in_range, lo, 0.0)  # a clamped head makes the tail meaningless
    n, u = _reduce(mb, clamped, lo)
    if pow2:
        n = mb.b.add(n, mb.iconst(pow2))
    result = mb.scale_by_pow2(mb.add(u, 1.0), n)
    if pow2:
        # Lifted by 2^pow2, the clamped underflow value is no longer 0 by itself.
        result = mb.select(mb.cmp("<", hi, lowest), 0.0, result)
    return mb.select(mb.isnan(hi), hi, result)


def exp(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return exp_split(mb, x)


def expm1(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """e^x - 1 = 2^n u + (2^n - 1): exact 2^n - 1 avoids the cancellation of exp(x) - 1."""
    c = constants(mb)
    clamped = mb.minnum(mb.maxnum(x, c.expm1_lo), c.exp_hi)
    n, u = _reduce(mb, clamped)
    # For n beyond the mantissa width the -1 no longer matters: use the overflow-safe exp form.
    large = mb.b.icmp_signed(">", n, mb.iconst(mb.mant_bits))
    big_result = mb.scale_by_pow2(mb.add(u, 1.0), n)
    scale = mb.pow2(n)
    small_result = mb.fma(scale, u, mb.sub(scale, 1.0))
    result = mb.select(large, big_result, small_result)
    keep_input = mb.either(mb.isnan(x), mb.cmp("==", x, 0.0))  # NaN, and the sign of -0
    return mb.select(keep_input, x, result)


def _log_parts(mb: MathBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(k, f, c) with x = m 2^k, m in [sqrt(1/2), sqrt(2)), f = m - 1, log(m) = f - c.

    Meaningful for finite positive x; other inputs give garbage that log() replaces.
    """
    c = constants(mb)
    # Subnormals: scale into the normal range first so the exponent field tells the truth.
    subnormal = mb.cmp("<", x, c.min_normal)
    scaled = mb.select(subnormal, mb.mul(x, 2.0**mb.mant_bits), x)
    k_bias = mb.select(subnormal, -float(mb.mant_bits), 0.0)
    # Subtracting sqrt(1/2)'s bits moves the binade boundary to sqrt(1/2): the arithmetic shift
    # gives k, and adding the bits back to the mantissa field gives m in [sqrt(1/2), sqrt(2)).
    split = mb.iconst(c.sqrt_half_bits)
    shifted = mb.b.sub(mb.to_bits(scaled), split)
    k_int = mb.b.ashr(shifted, mb.iconst(mb.mant_bits))
    mant = mb.b.and_(shifted, mb.iconst((1 << mb.mant_bits) - 1))
    m = mb.from_bits(mb.b.add(mant, split))
    k = mb.add(mb.int_to_float(k_int), k_bias)
    # log(1+f) = 2 atanh(s) with s = f/(2+f), and 2 atanh(s) = f - s (f - R), R = z P(z),
    # z = s^2 (as 2s = f - s f): f is exact, the rest is a correction of size f^2/2.
    f = mb.sub(m, 1.0)
    s = mb.div(f, mb.add(f, 2.0))
    z = mb.mul(s, s)
    big_r = mb.mul(z, mb.horner(z, c.log_poly))
    correction = mb.mul(s, mb.sub(f, big_r))
    return k, f, correction


def log(mb: MathBuilder, x: ir.Value) -> ir.Value:
    c = constants(mb)
    k, f, correction = _log_parts(mb, x)
    # k ln2_hi + f rounds once; the small terms join afterwards.
    result = mb.add(mb.fma(k, c.ln2_hi, f), mb.fma(k, c.ln2_lo, mb.neg(correction)))
    inf = float("inf")
    result = mb.select(mb.cmp("==", x, inf), inf, result)
    result = mb.select(mb.cmp("==", x, 0.0), -inf, result)
    result = mb.select(mb.cmp("<", x, 0.0), float("nan"), result)
    return mb.select(mb.isnan(x), x, result)


def log1p(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """log(1 + x) as log(u) + (x - (u - 1)) / u with u = 1 + x rounded: the quotient restores
    what the rounding of u lost."""
    u = mb.add(x, 1.0)
    lost = mb.div(mb.sub(x, mb.sub(u, 1.0)), u)
    finite_positive = mb.both(mb.cmp(">", u, 0.0), mb.cmp("<", u, float("inf")))
    result = mb.add(log(mb, u), mb.select(finite_positive, lost, 0.0))
    return mb.select(mb.cmp("==", x, 0.0), x, result)  # keeps the sign of -0


def _small_integer_power(mb: MathBuilder, ax: ir.Value, y: ir.Value, general: ir.Value) -> ir.Value:
    """|x|^y by multiplication for y in +-{1, 2, 3, 4}: exact where the result is representable
    (f64 exp(y log x) is off by |y log x| ulp-ish, and x**2, x**3 are common in models)."""
    square = mb.mul(ax, ax)
    powers = {1.0: ax, 2.0: square, 3.0: mb.mul(square, ax), 4.0: mb.mul(square, square)}
    ay = mb.fabs(y)
    result = general
    for exponent, power in powers.items():
        result = mb.select(mb.cmp("==", ay, exponent), power, result)
    small = mb.cmp("<=", ay, 4.0)
    reciprocal = mb.select(mb.both(small, mb.cmp("<", y, 0.0)), mb.div(1.0, result), result)
    return mb.select(mb.cmp("==", mb.floor(ay), ay), reciprocal, general)


def pow_(mb: MathBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """x^y = exp(y log|x|) with C99/numpy special cases; f32 runs the core in f64 for accuracy."""
    wide = mb.with_type(ir.DoubleType())
    ax = mb.convert(mb.fabs(x), wide)
    magnitude = exp(wide, wide.mul(mb.convert(y, wide), log(wide, ax)))
    magnitude = wide.convert(magnitude, mb)
    if mb.is_f64:
        magnitude = _small_integer_power(mb, mb.fabs(x), y, magnitude)

    y_integer = mb.cmp("==", mb.floor(y), y)  # true for +-inf, false for NaN
    half_y = mb.mul(y, 0.5)
    y_odd = mb.both(y_integer, mb.cmp("!=", mb.floor(half_y), half_y))
    negative_base = mb.b.icmp_signed("<", mb.to_bits(x), mb.iconst(0))  # sign bit, so -0 too
    result = mb.select(mb.both(negative_base, y_odd), mb.neg(magnitude), magnitude)
    # A finite negative base with a non-integer finite exponent has no real power.
    finite_negative = mb.both(mb.cmp("<", x, 0.0), mb.cmp(">", x, float("-inf")))
    no_real = mb.both(finite_negative, mb.invert(y_integer))
    result = mb.select(no_real, float("nan"), result)
    # x^0 = 1 (even for NaN x), 1^y = 1 (even for NaN y), (-1)^(+-inf) = 1.
    unit_base_inf = mb.both(mb.cmp("==", mb.fabs(x), 1.0), mb.cmp("==", mb.fabs(y), float("inf")))
    is_one = mb.either(mb.either(mb.cmp("==", y, 0.0), mb.cmp("==", x, 1.0)), unit_base_inf)
    return mb.select(is_one, 1.0, result)
