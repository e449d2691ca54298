"""GEMM epilogues written as text: a postfix program over the accumulator vector and operands that
broadcast along the rows or columns of C, turned into the `Epilogue` the micro-kernel applies in
registers at its final store (bias, activation, batch-norm affine, residual, scale).

Text: `<kinds>;<tokens>`, kinds comma-separated per operand (`col`: vector over columns, one value
per column; `row`: one value per row; `mat`: a matrix with C's shape; `one`: a single value),
tokens space-separated (`acc`, `o<i>`, `#<f64 bits hex>`, unary and binary op names, `select`).
The program text is part of the GEMM function's name, so equal epilogues share one function.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from archir.backends.llvm.gemm_kernel import masked_load
from archir.backends.llvm.ir_loops import F32, F32_PTR, I64, splat
from archir.backends.llvm.vecmath import FUNCTIONS, math_function
from llvmlite import ir

KINDS = ("col", "row", "mat", "one")
UNARY = ("neg", "abs", "sqrt", "floor", *(name for name, (_, arity) in FUNCTIONS.items() if arity == 1))
BINARY = ("add", "sub", "mul", "div", "fmax", "fmin", "pow")
COMPARE = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}
LOGIC = ("and", "or")


def const_token(value: float) -> str:
    return "#" + struct.pack(">d", float(value)).hex()


def _const_value(token: str) -> float:
    return struct.unpack(">d", bytes.fromhex(token[1:]))[0]


@dataclass(frozen=True, slots=True)
class EpilogueProgram:
    """Operand kinds and the postfix program; `text` is its canonical form."""

    kinds: tuple[str, ...]
    tokens: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{','.join(self.kinds)};{' '.join(self.tokens)}"

    @staticmethod
    def parse(text: str) -> EpilogueProgram:
        kinds, _, tokens = text.partition(";")
        return EpilogueProgram(tuple(k for k in kinds.split(",") if k), tuple(tokens.split()))

    def symbol(self, base: str) -> str:
        """An LLVM-friendly function name for this epilogue on top of `base`."""
        return f"{base}.e{hashlib.sha1(self.text.encode()).hexdigest()[:12]}"

    def arg_types(self) -> tuple[ir.Type, ...]:
        """Per operand: its pointer, then its row stride for `row` and `mat`."""
        types: list[ir.Type] = []
        for kind in self.kinds:
            types.append(F32_PTR)
            if kind in ("row", "mat"):
                types.append(I64)
        return tuple(types)

    def emit(self, b: ir.IRBuilder, acc: ir.Value, row: ir.Value, col: ir.Value, lanes: ir.Value,
             extra: Sequence[ir.Value]) -> ir.Value:
        """The vector to store for accumulator `acc` (the micro-kernel's epilogue callback)."""
        vw = acc.type.count
        full = isinstance(lanes, ir.Constant) and lanes.constant == vw
        operands = self._operand_loaders(b, row, col, lanes, extra, vw, full)
        stack: list[ir.Value] = []
        for token in self.tokens:
            stack.append(self._step(b, token, stack, acc, operands, vw))
        return stack[-1]

    def _operand_loaders(self, b: ir.IRBuilder, row: ir.Value, col: ir.Value, lanes: ir.Value,
                         extra: Sequence[ir.Value], vw: int, full: bool) -> list[ir.Value]:
        values: list[ir.Value] = []
        at = 0
        for kind in self.kinds:
            ptr = extra[at]
            at += 1
            if kind in ("row", "mat"):
                ptr = b.gep(ptr, [b.mul(row, extra[at])])
                at += 1
            if kind in ("row", "one"):
                values.append(splat(b, b.load(ptr, align=4), vw))
                continue
            ptr = b.gep(ptr, [col])
            if full:
                values.append(b.load(b.bitcast(ptr, ir.VectorType(F32, vw).as_pointer()), align=4))
            else:
                values.append(masked_load(b, ptr, lanes, vw))
        return values

    def _step(self, b: ir.IRBuilder, token: str, stack: list[ir.Value], acc: ir.Value,
              operands: list[ir.Value], vw: int) -> ir.Value:
        vec = ir.VectorType(F32, vw)
        if token == "acc":
            return acc
        if token.startswith("o"):
            return operands[int(token[1:])]
        if token.startswith("#"):
            return ir.Constant(vec, [_const_value(token)] * vw)
        if token in UNARY:
            return _unary(b, token, stack.pop())
        if token == "select":
            y, x, cond = stack.pop(), stack.pop(), stack.pop()
            return b.select(cond, x, y)
        y, x = stack.pop(), stack.pop()
        if token in COMPARE:
            return b.fcmp_ordered(COMPARE[token], x, y) if token != "ne" else b.fcmp_unordered("!=", x, y)
        if token in LOGIC:
            return b.and_(x, y) if token == "and" else b.or_(x, y)
        return _binary(b, token, x, y)


def _intrinsic(b: ir.IRBuilder, name: str, ty: ir.Type, nargs: int) -> ir.Function:
    full = f"llvm.{name}.v{ty.count}f32"
    existing = b.module.globals.get(full)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(b.module, ir.FunctionType(ty, [ty] * nargs), full)


def _unary(b: ir.IRBuilder, op: str, x: ir.Value) -> ir.Value:
    if op == "neg":
        return b.fneg(x)
    if op in ("abs", "sqrt", "floor"):
        return b.call(_intrinsic(b, "fabs" if op == "abs" else op, x.type, 1), [x])
    return b.call(math_function(b.module, op, x.type), [x])


def _binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
    simple = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
    if op in simple:
        return simple[op](x, y)
    if op in ("fmax", "fmin"):  # nan-propagating, as numpy's maximum / minimum
        return b.call(_intrinsic(b, "maximum" if op == "fmax" else "minimum", x.type, 2), [x, y])
    if op == "pow":
        return b.call(math_function(b.module, "pow", x.type), [x, y])
    raise ValueError(f"unknown epilogue token {op!r}")


def is_token(token: str) -> bool:
    return token in UNARY or token in BINARY or token in COMPARE or token in LOGIC or token == "select"


def epilogue_gemm(module: ir.Module, name: str) -> ir.Function:
    """The runtime function a loop-IR call `gemm{<program>}` or `gemm_param.<key>{<program>}` names:
    a GEMM (prepacked for a parameter's B) whose store applies the program; one per program."""
    from archir.backends.llvm.gemm import Epilogue, gemm_function
    from archir.backends.llvm.gemm_conv import ConvGeometry
    from archir.backends.llvm.gemm_prepack import param_gemm_function

    base, _, text = name[:-1].partition("{")
    program = EpilogueProgram.parse(text)
    param = base.startswith("gemm_param.")
    conv = ConvGeometry.parse(base.removeprefix("gemm_conv.")) if base.startswith("gemm_conv.") else None
    stem = "archir_gemm_prepacked" if param else f"archir_gemm_conv.{conv.key}" if conv else "archir_gemm"
    symbol = program.symbol(stem)
    gemm = module.globals.get(symbol)
    if not isinstance(gemm, ir.Function):
        gemm = gemm_function(module, symbol, epilogue=Epilogue(program.emit, program.arg_types()),
                             prepacked_b=param, conv=conv)
        gemm.linkage = "internal"
    if not param:
        return gemm
    tag = symbol.removeprefix("archir_gemm_prepacked")
    return param_gemm_function(module, base.removeprefix("gemm_param."), gemm=gemm, tag=tag)
