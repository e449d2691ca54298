"""An llvmlite IR builder for branch-free elementwise float math on one type (scalar or vector).

The vectorised transcendental functions (vecmath_*.py) are written against `MathBuilder` so that one
body serves f32, f64, <W x float> and <W x double>: constants splat, comparisons give lane masks.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from llvmlite import ir

Operand = ir.Value | float


class MathBuilder:
    """Emits float and matching-width integer arithmetic on `ty` through `builder`."""

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type) -> None:
        self.b = builder
        self.ty = ty
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else 0
        elem = ty.element if isinstance(ty, ir.VectorType) else ty
        self.is_f64 = isinstance(elem, ir.DoubleType)
        self.bits = 64 if self.is_f64 else 32
        self.mant_bits = 52 if self.is_f64 else 23
        self.exp_bias = 1023 if self.is_f64 else 127
        self.ity = self._shaped(ir.IntType(self.bits))

    def _shaped(self, elem: ir.Type) -> ir.Type:
        return ir.VectorType(elem, self.lanes) if self.lanes else elem

    def with_type(self, elem: ir.Type) -> MathBuilder:
        """A builder on the same insertion point for `elem` with this builder's lane count."""
        return MathBuilder(self.b, self._shaped(elem))

    # -- constants -------------------------------------------------------------------------------
    def const(self, value: float) -> ir.Constant:
        elem = ir.DoubleType() if self.is_f64 else ir.FloatType()
        scalar = value if self.is_f64 else struct.unpack("f", struct.pack("f", value))[0]
        if self.lanes:
            return ir.Constant(self.ty, [ir.Constant(elem, scalar)] * self.lanes)
        return ir.Constant(elem, scalar)

    def iconst(self, value: int) -> ir.Constant:
        elem = ir.IntType(self.bits)
        if self.lanes:
            return ir.Constant(self.ity, [ir.Constant(elem, value)] * self.lanes)
        return ir.Constant(elem, value)

    def _v(self, x: Operand) -> ir.Value:
        return self.const(x) if isinstance(x, float | int) else x

    # -- float arithmetic (no fast-math flags: the range reductions rely on exact IEEE steps) ----
    def add(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.fadd(self._v(a), self._v(b))

    def sub(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.fsub(self._v(a), self._v(b))

    def mul(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.fmul(self._v(a), self._v(b))

    def div(self, a: Operand, b: Operand) -> ir.Value:
        return self.b.fdiv(self._v(a), self._v(b))

    def neg(self, a: ir.Value) -> ir.Value:
        return self.b.fneg(a)

    def _intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        """Call the overloaded float intrinsic `name` (llvm.fabs, ...) at this builder's type."""
        ty = args[0].type
        symbol = f"{name}.{mangled(ty)}"
        module = self.b.module
        fn = module.globals.get(symbol) or ir.Function(module, ir.FunctionType(ty, [ty] * len(args)), symbol)
        return self.b.call(fn, list(args))

    def fma(self, a: Operand, b: Operand, c: Operand) -> ir.Value:
        """a*b + c; llvm.fmuladd fuses where the CPU has FMA and never becomes a libm call."""
        return self._intrinsic("llvm.fmuladd", self._v(a), self._v(b), self._v(c))

    def fabs(self, a: ir.Value) -> ir.Value:
        return self._intrinsic("llvm.fabs", a)

    def copysign(self, mag: ir.Value, sign: ir.Value) -> ir.Value:
        return self._intrinsic("llvm.copysign", mag, sign)

    def minnum(self, a: Operand, b: Operand) -> ir.Value:
        """min that returns the other operand for a NaN: used to keep NaN out of integer steps."""
        return self._intrinsic("llvm.minnum", self._v(a), self._v(b))

    def maxnum(self, a: Operand, b: Operand) -> ir.Value:
        return self._intrinsic("llvm.maxnum", self._v(a), self._v(b))

    def floor(self, a: ir.Value) -> ir.Value:
        return self._intrinsic("llvm.floor", a)

    def horner(self, x: ir.Value, coeffs: Sequence[Operand]) -> ir.Value:
        """coeffs[0] + x*coeffs[1] + ... evaluated from the highest degree down."""
        acc = self._v(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, c)
        return acc

    # -- comparisons and selection -----------------------------------------------------------------
    def cmp(self, op: str, a: Operand, b: Operand) -> ir.Value:
        """Ordered comparison: false when either side is NaN."""
        return self.b.fcmp_ordered(op, self._v(a), self._v(b))

    def cmp_unordered(self, op: str, a: Operand, b: Operand) -> ir.Value:
        """Unordered comparison: true when either side is NaN."""
        return self.b.fcmp_unordered(op, self._v(a), self._v(b))

    def isnan(self, a: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", a, a)

    def select(self, cond: ir.Value, a: Operand, b: Operand) -> ir.Value:
        return self.b.select(cond, self._v(a), self._v(b))

    def both(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.and_(a, b)

    def either(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.or_(a, b)

    def invert(self, a: ir.Value) -> ir.Value:
        return self.b.not_(a)

    # -- bit-level views ----------------------------------------------------------------------------
    def to_bits(self, a: ir.Value) -> ir.Value:
        return self.b.bitcast(a, self.ity)

    def from_bits(self, a: ir.Value) -> ir.Value:
        return self.b.bitcast(a, self.ty)

    def mask_low_bits(self, a: ir.Value, count: int) -> ir.Value:
        """`a` with its lowest `count` mantissa bits cleared (a short-mantissa head of `a`)."""
        mask = ((1 << self.bits) - 1) ^ ((1 << count) - 1)
        return self.from_bits(self.b.and_(self.to_bits(a), self.iconst(_signed(mask, self.bits))))

    def round_to_int(self, a: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(round(a) as float, as integer) for |a| < 2^(mantissa bits - 1), by the shifter trick.

        Adding 1.5*2^m pushes the fraction out of the mantissa; the integer is then the difference
        of the bit patterns, so no float-to-int conversion (and no poison for huge a) is involved.
        """
        shifter = 1.5 * 2.0**self.mant_bits
        t = self.add(a, shifter)
        n_float = self.sub(t, shifter)
        n_int = self.b.sub(self.to_bits(t), self.to_bits(self.const(shifter)))
        return n_float, n_int

    def pow2(self, n: ir.Value) -> ir.Value:
        """2^n for an integer n in the normal exponent range."""
        biased = self.b.add(n, self.iconst(self.exp_bias))
        return self.from_bits(self.b.shl(biased, self.iconst(self.mant_bits)))

    def scale_by_pow2(self, p: ir.Value, n: ir.Value) -> ir.Value:
        """p * 2^n for |n| up to twice the exponent range, in two exact-then-rounding steps.

        Splitting n keeps each factor a normal power of two, so overflow gives inf and the
        subnormal range is reached with a single correctly placed rounding.
        """
        half = self.b.ashr(n, self.iconst(1))
        rest = self.b.sub(n, half)
        return self.mul(self.mul(p, self.pow2(half)), self.pow2(rest))

    def int_to_float(self, n: ir.Value) -> ir.Value:
        return self.b.sitofp(n, self.ty)

    def convert(self, a: ir.Value, target: MathBuilder) -> ir.Value:
        """`a` converted to target's float type (exact widening or rounding narrowing)."""
        if target.is_f64 == self.is_f64:
            return a
        if target.is_f64:
            return self.b.fpext(a, target.ty)
        return self.b.fptrunc(a, target.ty)


def mangled(ty: ir.Type) -> str:
    """The type suffix of an overloaded intrinsic: f32, f64, v8f32, v4f64."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{mangled(ty.element)}"
    return "f64" if isinstance(ty, ir.DoubleType) else "f32"


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value
