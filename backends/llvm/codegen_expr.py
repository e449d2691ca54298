"""Scalar expressions of the loop IR as llvmlite instructions: loads and stores with storage
conversion (bool as i8, f16 via half, bf16 via bit shifts), arithmetic with numpy semantics
(nan-propagating max, floor division), and math functions from vecmath.
"""

from __future__ import annotations

from archir.backends.llvm.loops import (
    Binary,
    Buffer,
    Cast,
    Const,
    Expr,
    Load,
    Ptr,
    Select,
    Unary,
    Var,
)
from archir.backends.llvm.vecmath import math_function
from llvmlite import ir

from archir.types import DType

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
_STORAGE = {DType.f64: F64, DType.f32: F32, DType.f16: F16, DType.bf16: I16, DType.i64: I64,
            DType.i32: I32, DType.i8: I8, DType.bool: I8}
_COMPUTE = {DType.f64: F64, DType.f32: F32, DType.i64: I64, DType.i32: I32, DType.i8: I8,
            DType.bool: I1}
_FCMP = {"lt": "<", "le": "<=", "eq": "==", "gt": ">", "ge": ">="}
_ICMP = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}
FAST = ("reassoc", "nsz", "contract")


def i64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def i32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def storage_type(dtype: DType) -> ir.Type:
    return _STORAGE[dtype]


def compute_type(dtype: DType) -> ir.Type:
    return _COMPUTE[DType.f32 if dtype in (DType.f16, DType.bf16) else dtype]


def intrinsic(module: ir.Module, name: str, ty: ir.Type, nargs: int = 1) -> ir.Function:
    suffix = "f32" if ty == F32 else "f64" if ty == F64 else f"i{ty.width}"
    full = f"llvm.{name}.{suffix}"
    if full in module.globals:
        return module.globals[full]
    return ir.Function(module, ir.FunctionType(ty, [ty] * nargs), full)


class ExprBuilder:
    """Expression codegen shared by the entry function builder."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder) -> None:
        self.module = module
        self.b = builder
        self.dims: dict[str, ir.Value] = {}
        self.buffers: dict[str, ir.Value] = {}
        self.locals: dict[str, ir.AllocaInstr] = {}

    def local(self, var: Var) -> ir.AllocaInstr:
        raise NotImplementedError

    # -- memory ----------------------------------------------------------------------------------
    def address(self, buffer: Buffer, index: Expr) -> ir.Value:
        return self.b.gep(self.buffers[buffer.name], [self.expr(index)], inbounds=True)

    def store(self, buffer: Buffer, index: Expr, value: Expr) -> None:
        v = self.expr(value)
        self.b.store(self.to_storage(v, buffer.dtype), self.address(buffer, index))

    def to_storage(self, v: ir.Value, dtype: DType) -> ir.Value:
        b = self.b
        if dtype == DType.bool:
            return b.zext(v, I8)
        if dtype == DType.f16:
            return b.fptrunc(v, F16)
        if dtype == DType.bf16:
            bits = b.bitcast(v, I32)
            odd = b.and_(b.lshr(bits, i32(16)), i32(1))
            rounded = b.lshr(b.add(bits, b.add(odd, i32(0x7FFF))), i32(16))
            is_nan = b.fcmp_unordered("uno", v, v)
            return b.trunc(b.select(is_nan, i32(0x7FC0), rounded), I16)
        return v

    def from_storage(self, v: ir.Value, dtype: DType) -> ir.Value:
        b = self.b
        if dtype == DType.bool:
            return b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        if dtype == DType.f16:
            return b.fpext(v, F32)
        if dtype == DType.bf16:
            return b.bitcast(b.shl(b.zext(v, I32), i32(16)), F32)
        return v

    # -- expressions -----------------------------------------------------------------------------
    def expr(self, e: Expr, fast: bool = False) -> ir.Value:
        if isinstance(e, Const):
            return self.constant(e)
        if isinstance(e, Var):
            if e.kind == "dim":
                return self.dims[e.name]
            return self.b.load(self.local(e))
        if isinstance(e, Load):
            return self.from_storage(self.b.load(self.address(e.buffer, e.index)), e.buffer.dtype)
        if isinstance(e, Ptr):
            return self.address(e.buffer, e.offset)
        if isinstance(e, Unary):
            return self.unary(e.op, self.expr(e.x), e.dtype)
        if isinstance(e, Binary):
            return self.binary(e.op, self.expr(e.a), self.expr(e.b), e.a.dtype, fast)
        if isinstance(e, Select):
            return self.b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, Cast):
            return self.cast(self.expr(e.x), e.x.dtype, e.dtype)
        raise TypeError(f"unknown loop-IR expression {e!r}")

    def constant(self, e: Const) -> ir.Constant:
        ty = compute_type(e.dtype)
        if e.dtype.is_float:
            return ir.Constant(ty, float(e.value))
        return ir.Constant(ty, int(e.value))

    def unary(self, op: str, x: ir.Value, dtype: DType) -> ir.Value:
        b = self.b
        ty = x.type
        is_float = isinstance(ty, ir.FloatType | ir.DoubleType)
        if op == "neg":
            return b.fneg(x) if is_float else b.sub(ir.Constant(ty, 0), x)
        if op == "abs":
            if is_float:
                return b.call(intrinsic(self.module, "fabs", ty), [x])
            return b.select(b.icmp_signed("<", x, ir.Constant(ty, 0)), b.neg(x), x)
        if op == "not":
            return b.xor(x, ir.Constant(I1, 1))
        if op in ("sqrt", "floor"):
            return b.call(intrinsic(self.module, op, ty), [x])
        if op == "isnan":
            return b.fcmp_unordered("uno", x, x)
        return b.call(math_function(self.module, op, ty), [x])

    def binary(self, op: str, x: ir.Value, y: ir.Value, dtype: DType, fast: bool = False) -> ir.Value:
        b = self.b
        if isinstance(x.type, ir.FloatType | ir.DoubleType):
            return self.float_binary(op, x, y, fast)
        if op in _ICMP:
            return b.icmp_signed(_ICMP[op], x, y) if x.type != I1 else b.icmp_unsigned(_ICMP[op], x, y)
        simple = {"add": b.add, "sub": b.sub, "mul": b.mul, "and": b.and_, "or": b.or_}
        if op in simple:
            return simple[op](x, y)
        if op in ("max", "min"):
            return b.select(b.icmp_signed(">" if op == "max" else "<", x, y), x, y)
        if op == "floordiv":
            q = b.sdiv(x, y)
            r = b.srem(x, y)
            # sdiv truncates; floor needs q - 1 when the remainder and divisor differ in sign.
            fix = b.and_(b.icmp_signed("!=", r, ir.Constant(x.type, 0)),
                         b.icmp_signed("<", b.xor(r, y), ir.Constant(x.type, 0)))
            return b.sub(q, b.zext(fix, x.type))
        if op == "mod":
            return b.srem(x, y)
        if op == "pow":
            return b.call(self.integer_power(x.type), [x, y])
        raise TypeError(f"unknown integer op {op}")

    def float_binary(self, op: str, x: ir.Value, y: ir.Value, fast: bool) -> ir.Value:
        b = self.b
        if op in _FCMP:
            return b.fcmp_ordered(_FCMP[op], x, y)
        if op == "ne":
            return b.fcmp_unordered("!=", x, y)
        simple = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
        if op in simple:
            instr = simple[op](x, y)
            if fast:
                instr.flags.extend(FAST)
            return instr
        if op in ("fmax", "fmin", "max", "min"):
            name = "maximum" if op.endswith("max") else "minimum"
            return b.call(intrinsic(self.module, name, x.type, 2), [x, y])
        if op == "pow":
            return b.call(math_function(self.module, "pow", x.type), [x, y])
        raise TypeError(f"unknown float op {op}")

    def cast(self, v: ir.Value, src: DType, dst: DType) -> ir.Value:
        b = self.b
        to = compute_type(dst)
        if v.type == to:
            return v
        s_float = isinstance(v.type, ir.FloatType | ir.DoubleType)
        d_float = isinstance(to, ir.FloatType | ir.DoubleType)
        if s_float and d_float:
            return b.fpext(v, to) if to == F64 else b.fptrunc(v, to)
        if s_float:
            if to == I1:
                return b.fcmp_unordered("!=", v, ir.Constant(v.type, 0.0))
            return b.fptosi(v, to)
        if d_float:
            return b.uitofp(v, to) if v.type == I1 else b.sitofp(v, to)
        if to == I1:
            return b.icmp_signed("!=", v, ir.Constant(v.type, 0))
        if v.type == I1:
            return b.zext(v, to)
        return b.sext(v, to) if to.width > v.type.width else b.trunc(v, to)

    def integer_power(self, ty: ir.IntType) -> ir.Function:
        """x ** n by squaring (numpy semantics for n >= 0); a negative n gives 1 / x**|n| truncated
        as torch does: 0 unless |x| == 1 (then 1, or -1 for x == -1 and odd n)."""
        name = f"archir_ipow_i{ty.width}"
        if name in self.module.globals:
            return self.module.globals[name]
        fn = ir.Function(self.module, ir.FunctionType(ty, [ty, ty]), name)
        fn.linkage = "internal"
        x, n = fn.args
        entry, head, body, done = (fn.append_basic_block(s) for s in ("entry", "head", "body", "done"))
        b = ir.IRBuilder(entry)
        b.branch(head)
        b.position_at_end(head)
        acc = b.phi(ty)
        base = b.phi(ty)
        exp = b.phi(ty)
        acc.add_incoming(ir.Constant(ty, 1), entry)
        base.add_incoming(x, entry)
        exp.add_incoming(n, entry)
        b.cbranch(b.icmp_signed(">", exp, ir.Constant(ty, 0)), body, done)
        b.position_at_end(body)
        odd = b.trunc(exp, I1)
        acc.add_incoming(b.select(odd, b.mul(acc, base), acc), body)
        base.add_incoming(b.mul(base, base), body)
        exp.add_incoming(b.ashr(exp, ir.Constant(ty, 1)), body)
        b.branch(head)
        b.position_at_end(done)
        one, minus_one = ir.Constant(ty, 1), ir.Constant(ty, -1)
        odd_n = b.trunc(n, I1)
        of_minus_one = b.select(odd_n, minus_one, one)
        reciprocal = b.select(b.icmp_signed("==", x, one), one,
                              b.select(b.icmp_signed("==", x, minus_one), of_minus_one, ir.Constant(ty, 0)))
        negative = b.icmp_signed("<", n, ir.Constant(ty, 0))
        b.ret(b.select(negative, reciprocal, acc))
        return fn
