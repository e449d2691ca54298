"""Branch-free erf and exact (erf-based) gelu bodies for the LLVM backend, on f32 or f64 lanes.

|z| < 1: erf(z) = z P(z^2). |z| >= 1/2: erfc(z) = exp(-z^2) R(z), R piecewise polynomial,
the piece picked per lane by selecting coefficients; exp(-z^2) gets z^2 as an exact head plus
a tail, so erfc keeps relative accuracy deep into the tail. gelu uses erfc directly once
x/sqrt 2 < -1/2, so 1 + erf never cancels badly. Coefficients: weighted minimax fits (see vecmath_exp.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from archir.backends.llvm.math_builder import MathBuilder
from archir.backends.llvm.vecmath_exp import constants, exp_split
from llvmlite import ir

SQRT_HALF = 0.7071067811865476
TAIL_START = 0.5  # erfc pieces cover [TAIL_START, cap]
SMALL_END = 1.0  # erf(z) = z P(z^2) is used for |z| < SMALL_END


@dataclass(frozen=True, slots=True)
class ErfcPiece:
    """erfc(a) = exp(-a^2) R(t) [/ a] for a >= start, t the piece's variable mapped to [-1, 1].

    The variable is a itself, or w = 1/a^2 (then R(t) approximates a*erfc(a)*exp(a^2) and the
    result is divided by a): the asymptotic form covers the whole tail with one polynomial.
    """

    start: float
    on_inverse_square: bool
    lo: float
    hi: float
    coeffs: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ErfConstants:
    small: tuple[float, ...]  # erf(z)/z as a polynomial in z^2 on |z| < 1
    pieces: tuple[ErfcPiece, ...]  # ascending start; pieces on 1/a^2 come last
    cap: float  # erfc(cap) underflows to 0: larger |z| are clamped here
    head_zero_bits: int  # clearing these mantissa bits leaves a head whose square is exact


def _inverse_square_piece(start: float, coeffs: tuple[float, ...]) -> ErfcPiece:
    return ErfcPiece(start, True, 0.0, 1.0 / (start * start), coeffs)


# Relative errors of the fits: small 1.2e-9, pieces 5.8e-10, 2.9e-9, 4.0e-9, 9.6e-10.
F32 = ErfConstants(
    small=(1.1283791065216064, -0.3761262595653534, 0.1128358542919159, -0.026853810995817184,
           0.00518832728266716, -0.000801019137725234, 7.85385345807299e-05),
    pieces=(
        ErfcPiece(0.5, False, 0.5, 1.0, (
            0.5069376230239868, -0.09199317544698715, 0.014434892684221268, -0.002028687857091427,
            0.00026085347053594887, -3.114797800662927e-05, 3.5637710880109807e-06,
            -3.7496701565942203e-07)),
        ErfcPiece(1.0, False, 1.0, 1.75, (
            0.3432959020137787, -0.06911829859018326, 0.01263689249753952, -0.002135919639840722,
            0.0003377003886271268, -5.044984209234826e-05, 7.422350336128147e-06,
            -9.993410685638082e-07)),
        ErfcPiece(1.75, False, 1.75, 2.75, (
            0.23108725249767303, -0.04424325004220009, 0.00799818616360426, -0.0013752589002251625,
            0.00022603932302445173, -3.57265817001462e-05, 5.680960839526961e-06,
            -8.319222501995682e-07)),
        _inverse_square_piece(2.75, (
            0.5471377372741699, -0.01565997675061226, 0.0012191341957077384, -0.000145087979035452,
            2.228901576017961e-05, -4.095479198440444e-06, 9.954299002856715e-07,
            -2.4890579197744955e-07)),
    ),
    cap=11.0,
    head_zero_bits=12,
)

# Relative errors of the fits: small 7.3e-18, pieces <= 1.4e-17 (the 1/a^2 one; others <= 8e-18).
F64 = ErfConstants(
    small=(1.1283791670955126, -0.3761263890318352, 0.11283791670944185, -0.02686617064311158,
           0.005223977606120629, -0.0008548325929463506, 0.00012055293582436886,
           -1.492471242489535e-05, 1.6447133251159506e-06, -1.6206327633985157e-07,
           1.3711043949007396e-08, -7.779592454875642e-10),
    pieces=(
        ErfcPiece(0.5, False, 0.5, 1.0, (
            0.5069376502931449, -0.09199317291394885, 0.014434883221955939, -0.00202868846867008,
            0.0002609005567515977, -3.1149669960251104e-05, 3.4885738733258992e-06,
            -3.693562199393799e-07, 3.7195450691649896e-08, -3.5801401869765707e-09,
            3.306045377232268e-10, -2.940640319620118e-11, 2.5855386388865283e-12,
            -2.137353464170644e-13)),
        ErfcPiece(1.0, False, 1.0, 1.5, (
            0.3678229164523611, -0.052205468991152464, 0.006674723218537403, -0.0007846605374360599,
            8.598189160525727e-05, -8.868776985266891e-06, 8.674584703879258e-07,
            -8.091936827390552e-08, 7.232218930411323e-09, -6.216432674496139e-10,
            5.154125819554118e-11, -4.1347350117449034e-12, 3.2792340000495326e-13,
            -2.468763994445149e-14)),
        ErfcPiece(1.5, False, 1.5, 2.0, (
            0.2849722347374364, -0.0327440863786213, 0.0034852268804429517, -0.00034781242564669294,
            3.282937190367249e-05, -2.950170558031201e-06, 2.5371204134737335e-07,
            -2.0967611902672025e-08, 1.6709188554211925e-09, -1.2876648790231144e-10,
            9.61830094062891e-12, -6.980205496429637e-13, 5.010607485920188e-14,
            -3.441072773045451e-15)),
        ErfcPiece(2.0, False, 2.0, 2.5, (
            0.23108725873039188, -0.02212162570218729, 0.001999539213169141, -0.00017190719931937576,
            1.413670060296792e-05, -1.1169223473180745e-06, 8.509165573282637e-08,
            -6.269597237706919e-09, 4.478951241756951e-10, -3.109086758313971e-11,
            2.1007978688667745e-12, -1.3842569648908784e-13, 9.028539948761755e-15,
            -5.670227401519337e-16)),
        ErfcPiece(2.5, False, 2.5, 3.0, (
            0.1936620962790687, -0.01580940939015871, 0.001234912061707679, -9.272402964059338e-05,
            6.7171167394121665e-06, -4.7089363767681957e-07, 3.2026806763087195e-08,
            -2.117835057044099e-09, 1.3641597542560742e-10, -8.57305007890489e-12,
            5.263757006166366e-13, -3.161899272992545e-14, 1.8816063819510547e-15,
            -1.0839615004317235e-16)),
        ErfcPiece(3.0, False, 3.0, 4.0, (
            0.1552936556088943, -0.020661788916626244, 0.002665283298127528, -0.00033413430495546006,
            4.0792895431788306e-05, -4.8584036946580175e-06, 5.653391195077126e-07,
            -6.435926931369934e-08, 7.176546827432308e-09, -7.846504972870384e-10,
            8.415244310853961e-11, -8.8712033728757e-12, 9.53276067072619e-13,
            -9.690205709695054e-14)),
        _inverse_square_piece(4.0, (
            0.5557581685752836, -0.00807380516851602, 0.0003335970130792931, -2.1861074881227124e-05,
            1.9147125761919177e-06, -2.0641936622585405e-07, 2.6102628999678796e-08,
            -3.751895036868958e-09, 5.998421876277799e-10, -1.0493303651524319e-10,
            1.9542423223818767e-11, -3.914242057472193e-12, 1.04820740511327e-12,
            -2.495751422930165e-13)),
    ),
    cap=28.0,
    head_zero_bits=27,
)


def _constants(mb: MathBuilder) -> ErfConstants:
    return F64 if mb.is_f64 else F32


def _piece_polynomial(mb: MathBuilder, a: ir.Value) -> ir.Value:
    """R of the lane's piece at a (a in [1/2, cap]), divided by a on the 1/a^2 pieces."""
    pieces = _constants(mb).pieces
    inverse = mb.div(1.0, a)
    inverse_square = mb.mul(inverse, inverse)
    first = pieces[0]
    variable: ir.Value = inverse_square if first.on_inverse_square else a
    scale: ir.Value | float = 2.0 / (first.hi - first.lo)
    offset: ir.Value | float = -(first.hi + first.lo) / (first.hi - first.lo)
    coeffs: list[ir.Value | float] = list(first.coeffs)
    for piece in pieces[1:]:
        chosen = mb.cmp(">=", a, piece.start)
        variable = mb.select(chosen, inverse_square if piece.on_inverse_square else a, variable)
        scale = mb.select(chosen, 2.0 / (piece.hi - piece.lo), scale)
        offset = mb.select(chosen, -(piece.hi + piece.lo) / (piece.hi - piece.lo), offset)
        coeffs = [mb.select(chosen, new, old) for new, old in zip(piece.coeffs, coeffs, strict=True)]
    poly = mb.horner(mb.fma(variable, scale, offset), coeffs)
    first_inverse = next(p.start for p in pieces if p.on_inverse_square)
    return mb.mul(poly, mb.select(mb.cmp(">=", a, first_inverse), inverse, 1.0))


def _erfc_tail(mb: MathBuilder, a: ir.Value, v: ir.Value, square_scale: float, pow2: int = 0) -> ir.Value:
    """erfc(a) for a in [1/2, cap], where a^2 = square_scale * v^2 and v is the exact input.

    v^2 = h^2 + l (v + h) with h the head of v: h^2 is exact, so exp(-a^2) sees the argument
    to better than working precision (gelu passes v = |x|, a = |x|/sqrt 2). The result is
    scaled by 2^pow2 (see exp_split).
    """
    head = mb.mask_low_bits(v, _constants(mb).head_zero_bits)
    tail = mb.sub(v, head)
    hi = mb.mul(mb.mul(head, head), -square_scale)
    lo = mb.mul(mb.mul(tail, mb.add(v, head)), -square_scale)
    return mb.mul(exp_split(mb, hi, lo, pow2), _piece_polynomial(mb, a))


def _clamp_tail(mb: MathBuilder, a: ir.Value) -> ir.Value:
    # maxnum/minnum also map NaN to a finite value: callers restore NaN at the end.
    return mb.minnum(mb.maxnum(a, TAIL_START), _constants(mb).cap)


def erf(mb: MathBuilder, x: ir.Value) -> ir.Value:
    c = _constants(mb)
    a = mb.fabs(x)
    small = mb.mul(a, mb.horner(mb.mul(a, a), c.small))
    clamped = _clamp_tail(mb, a)
    tail = _erfc_tail(mb, clamped, clamped, 1.0)
    erf_abs = mb.select(mb.cmp("<", a, SMALL_END), small, mb.sub(1.0, tail))
    return mb.select(mb.isnan(x), x, mb.copysign(erf_abs, x))


def gelu(mb: MathBuilder, x: ir.Value) -> ir.Value:
    """0.5 x (1 + erf(x / sqrt 2)), with 1 + erf(z) = erfc(-z) taken directly for z <= -1/2."""
    c = _constants(mb)
    ax = mb.fabs(x)
    a = mb.mul(ax, SQRT_HALF)
    small = mb.mul(a, mb.horner(mb.mul(a, a), c.small))
    clamped = _clamp_tail(mb, a)
    clamped_x = mb.minnum(mb.maxnum(ax, TAIL_START / SQRT_HALF), c.cap / SQRT_HALF)
    # The negative tail works 2^guard higher and rounds once at the end, so a subnormal result
    # is not the product of an already-subnormal erfc (as in vecmath_activation).
    guard = constants(mb).subnormal_guard
    erfc_scaled = _erfc_tail(mb, clamped, clamped_x, 0.5, guard)
    erfc_a = mb.mul(erfc_scaled, 2.0**-guard)
    positive = mb.select(mb.cmp("<", a, SMALL_END), mb.add(1.0, small), mb.sub(2.0, erfc_a))
    in_tail = mb.both(mb.cmp("<", x, 0.0), mb.cmp(">=", a, TAIL_START))
    near_zero = mb.select(mb.cmp("<", x, 0.0), mb.sub(1.0, small), positive)
    one_plus_erf = mb.select(in_tail, erfc_scaled, near_zero)
    return mb.mul(mb.mul(mb.mul(x, 0.5), one_plus_erf), mb.select(in_tail, 2.0**-guard, 1.0))
