"""Branch-free sin and cos bodies for the LLVM backend, on f32 or f64 lanes.

The argument is reduced by pi/2 in f64 with a three-part Cody-Waite split (exact products for
|n| < 2^27, so accurate for |x| <= 2e8); +-inf and NaN give NaN. Finite lanes beyond 2e8 are rare:
when a vector holds one, a cold branch recomputes those lanes with libm's f64 sin/cos (which reduces
exactly), so the hot path stays branch-free. f32 evaluates its short polynomials in f32.
Coefficients: weighted minimax fits (see vecmath_exp.py) of (sin r - r) / r^3 and
(cos r - 1 + r^2/2) / r^4 on |r| <= 1.01 pi/4.
"""

from __future__ import annotations

from archir.backends.llvm.math_builder import MathBuilder
from llvmlite import ir

REDUCTION_LIMIT = 2.0e8  # < 2^27 * pi/2: n * PIO2_1 and n * PIO2_2 stay exact in f64
TWO_OVER_PI = 0.6366197723675814
# pi/2 = PIO2_1 + PIO2_2 + PIO2_3; the first two carry 26 significant bits each.
PIO2_1 = 1.5707963109016418
PIO2_2 = 1.5893254712295857e-08
PIO2_3 = 6.123233995736766e-17

# relative error of the fits: sin 4.1e-9, cos 1.3e-10
SIN_F32 = (-0.16666653752326965, 0.008332112804055214, -0.0001950873847818002)
COS_F32 = (0.04166664555668831, -0.0013887251261621714, 2.442567711113952e-05)
# relative error of the fits: sin 4.2e-18, cos 6.5e-20
SIN_F64 = (-0.16666666666666627, 0.008333333333320928, -0.00019841269828611092,
           2.7557313273782883e-06, -2.5050692172680896e-08, 1.5892946246076754e-10)
COS_F64 = (0.04166666666666658, -0.0013888888888871367, 2.4801587287778425e-05,
           -2.7557313864370806e-07, 2.0875657426410828e-09, -1.1356259642222797e-11)


def _reduce(mb: MathBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(r, q, in_range): x = q pi/2 + r with |r| <= pi/4, r in mb's type, q as mb's integer."""
    wide = mb.with_type(ir.DoubleType())
    xd = mb.convert(x, wide)
    in_range = wide.cmp("<=", wide.fabs(xd), REDUCTION_LIMIT)  # false for +-inf and NaN
    xd = wide.select(in_range, xd, 0.0)
    n_float, n_int = wide.round_to_int(wide.mul(xd, TWO_OVER_PI))
    r = wide.fma(n_float, -PIO2_1, xd)  # exact: n*PIO2_1 is exact and close to x
    r = wide.fma(n_float, -PIO2_2, r)
    r = wide.fma(n_float, -PIO2_3, r)
    quadrant = n_int if mb.is_f64 else mb.b.trunc(n_int, mb.ity)
    return wide.convert(r, mb), quadrant, in_range  # an i1 lane mask serves both widths


def _sin_cos_of_quadrant(mb: MathBuilder, x: ir.Value, offset: int) -> ir.Value:
    """sin(x + offset * pi/2): quadrant q picks sin r / cos r and the sign."""
    sin_poly, cos_poly = (SIN_F64, COS_F64) if mb.is_f64 else (SIN_F32, COS_F32)
    r, quadrant, in_range = _reduce(mb, x)
    if offset:
        quadrant = mb.b.add(quadrant, mb.iconst(offset))
    z = mb.mul(r, r)
    sin_r = mb.fma(mb.mul(r, z), mb.horner(z, sin_poly), r)
    cos_r = mb.fma(mb.mul(z, z), mb.horner(z, cos_poly), mb.fma(z, -0.5, 1.0))
    odd = mb.b.icmp_signed("!=", mb.b.and_(quadrant, mb.iconst(1)), mb.iconst(0))
    value = mb.select(odd, cos_r, sin_r)
    # Quadrants 2 and 3 negate: move bit 1 of q onto the sign bit.
    sign = mb.b.shl(mb.b.and_(quadrant, mb.iconst(2)), mb.iconst(mb.bits - 2))
    value = mb.from_bits(mb.b.xor(mb.to_bits(value), sign))
    value = mb.select(in_range, value, float("nan"))
    return _huge_lanes_by_libm(mb, x, value, "llvm.cos" if offset else "llvm.sin")


def _huge_lanes_by_libm(mb: MathBuilder, x: ir.Value, value: ir.Value, intrinsic: str) -> ir.Value:
    """`value`, with finite lanes beyond REDUCTION_LIMIT recomputed by libm in a cold branch."""
    b = mb.b
    absx = mb.fabs(x)
    huge = mb.both(mb.cmp(">", absx, REDUCTION_LIMIT), mb.cmp("<", absx, float("inf")))
    any_huge = b.icmp_unsigned("!=", b.bitcast(huge, ir.IntType(mb.lanes)), ir.Constant(
        ir.IntType(mb.lanes), 0)) if mb.lanes else huge
    entry = b.block
    cold = b.append_basic_block("huge_argument")
    done = b.append_basic_block("reduced")
    b.cbranch(any_huge, cold, done)
    b.position_at_end(cold)
    double = ir.DoubleType()
    fn = b.module.declare_intrinsic(intrinsic, [double])
    elem = double if mb.is_f64 else ir.FloatType()
    slow = value
    for lane in range(mb.lanes or 1):
        xi = b.extract_element(x, ir.Constant(ir.IntType(32), lane)) if mb.lanes else x
        yi = b.call(fn, [xi if mb.is_f64 else b.fpext(xi, double)])
        yi = yi if mb.is_f64 else b.fptrunc(yi, elem)
        slow = b.insert_element(slow, yi, ir.Constant(ir.IntType(32), lane)) if mb.lanes else yi
    slow = mb.select(huge, slow, value)
    b.branch(done)
    cold_end = b.block
    b.position_at_end(done)
    merged = b.phi(mb.ty)
    merged.add_incoming(value, entry)
    merged.add_incoming(slow, cold_end)
    return merged


def sin(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return mb.select(mb.cmp("==", x, 0.0), x, _sin_cos_of_quadrant(mb, x, 0))  # sin(-0) = -0


def cos(mb: MathBuilder, x: ir.Value) -> ir.Value:
    return _sin_cos_of_quadrant(mb, x, 1)
