"""Lowering of elementwise ops (with numpy broadcasting), cast, where, clamp and the sources.

Each op is a function from operand expressions (already loaded in their compute dtypes) to
the result expression; numpy's semantics (nan-propagating max, true division) are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from archir.backends.llvm.loops import Binary, Cast, Const, Expr, Select, Unary
from archir.backends.llvm.lower import Lowerer, View, compute_dtype, rule

from archir.ir import Node
from archir.symbolic import Dim
from archir.types import DType

Compute = Callable[[list[Expr], DType], Expr]
MATH_COST = 8  # a vectorised exp / tanh / gelu against one add, for the parallel work estimate


def broadcast_index(view: View, out_shape: Sequence[Dim], idx: Sequence[Expr]) -> list[Expr]:
    """The index into `view` for output index `idx` under right-aligned broadcasting."""
    lead = len(out_shape) - view.rank
    out: list[Expr] = []
    for axis, d in enumerate(view.shape):
        out.append(Const(0) if d == 1 else idx[lead + axis])
    return out


def convert(x: Expr, dtype: DType) -> Expr:
    return x if x.dtype == dtype else Cast(x, dtype)


def elementwise(lw: Lowerer, node: Node, fn: Compute, cost: int = 1) -> None:
    """out[idx] = fn(operands[idx]) over the broadcast output shape, split over the thread pool
    when large; `cost` is one element's work in adds (a vecmath call: MATH_COST)."""
    out_value = node.outputs[0]
    views = [lw.view(v) for v in node.inputs]
    out = lw.result(out_value)
    dtype = compute_dtype(out.dtype)
    with lw.parallel_loops(out.shape, cost) as idx:
        args: list[Expr] = [v.load(broadcast_index(v, out.shape, idx)) for v in views]
        lw.emit(out.store(idx, convert(fn(args, dtype), dtype)))


def _is_float(dtype: DType) -> bool:
    return dtype.is_float


# -- unary -------------------------------------------------------------------------------------
_MATH = ("exp", "log", "tanh", "sigmoid", "silu", "erf", "sin", "cos")


@rule(*_MATH, "sqrt", "floor")
def _float_unary(lw: Lowerer, node: Node) -> None:
    cost = MATH_COST if node.op in _MATH else 1
    elementwise(lw, node, lambda a, dt: Unary(node.op, convert(a[0], dt), dt), cost)


@rule("rsqrt")
def _rsqrt(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Binary("div", Const(1.0, dt), Unary("sqrt", a[0], dt), dt))


@rule("reciprocal")
def _reciprocal(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Binary("div", Const(1.0, dt), a[0], dt))


@rule("gelu")
def _gelu(lw: Lowerer, node: Node) -> None:
    name = "gelu_tanh" if node.attrs["approximate"] == "tanh" else "gelu"
    elementwise(lw, node, lambda a, dt: Unary(name, a[0], dt), MATH_COST)


@rule("neg")
def _neg(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Unary("neg", a[0], dt))


@rule("abs")
def _abs(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Unary("abs", a[0], dt))


@rule("relu")
def _relu(lw: Lowerer, node: Node) -> None:
    def relu(a: list[Expr], dt: DType) -> Expr:
        return Binary("fmax" if dt.is_float else "max", a[0], Const(0, dt), dt)

    elementwise(lw, node, relu)


@rule("logical_not")
def _logical_not(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Unary("not", to_bool(a[0]), DType.bool))


def to_bool(x: Expr) -> Expr:
    if x.dtype == DType.bool:
        return x
    return Binary("ne", x, Const(0, x.dtype), DType.bool)


# -- binary ------------------------------------------------------------------------------------
def _arith(op: str) -> Compute:
    def compute(a: list[Expr], dt: DType) -> Expr:
        x, y = convert(a[0], dt), convert(a[1], dt)
        if dt == DType.bool:  # numpy: bool + bool is or, bool * bool is and
            return Binary({"add": "or", "mul": "and", "maximum": "or", "minimum": "and"}.get(op, op),
                          x, y, dt)
        if op in ("maximum", "minimum"):
            name = ("f" if dt.is_float else "") + op[:3]
            return Binary(name, x, y, dt)
        return Binary(op, x, y, dt)

    return compute


@rule("add", "sub", "mul", "maximum", "minimum", "pow")
def _binary(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, _arith(node.op))


@rule("div")
def _div(lw: Lowerer, node: Node) -> None:
    def div(a: list[Expr], dt: DType) -> Expr:
        # Integer operands divide in f64 as numpy does, then round to the f32 result.
        wide = dt if all(x.dtype.is_float for x in a) else DType.f64
        return Binary("div", convert(a[0], wide), convert(a[1], wide), wide)

    elementwise(lw, node, div)


_COMPARE = {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}


def promote(*dtypes: DType) -> DType:
    from archir.types import promote_dtypes

    return compute_dtype(promote_dtypes(*dtypes))


@rule(*_COMPARE)
def _compare(lw: Lowerer, node: Node) -> None:
    def compare(a: list[Expr], dt: DType) -> Expr:
        common = promote(a[0].dtype, a[1].dtype)
        return Binary(_COMPARE[node.op], convert(a[0], common), convert(a[1], common), DType.bool)

    elementwise(lw, node, compare)


@rule("logical_and", "logical_or")
def _logical(lw: Lowerer, node: Node) -> None:
    name = "and" if node.op == "logical_and" else "or"
    elementwise(lw, node, lambda a, dt: Binary(name, to_bool(a[0]), to_bool(a[1]), DType.bool))


@rule("where")
def _where(lw: Lowerer, node: Node) -> None:
    elementwise(lw, node, lambda a, dt: Select(a[0], convert(a[1], dt), convert(a[2], dt), dt))


@rule("cast")
def _cast(lw: Lowerer, node: Node) -> None:
    def cast(a: list[Expr], dt: DType) -> Expr:
        return to_bool(a[0]) if dt == DType.bool else convert(a[0], dt)

    elementwise(lw, node, cast)


@rule("clamp")
def _clamp(lw: Lowerer, node: Node) -> None:
    low, high = node.attrs["min"], node.attrs["max"]

    def clamp(a: list[Expr], dt: DType) -> Expr:
        # numpy clips an int tensor to float bounds in f64, then the result is truncated back.
        work = dt if dt.is_float else (DType.f64 if _fractional(low, high) else dt)
        x = convert(a[0], work)
        hi, lo = ("fmin", "fmax") if work.is_float else ("min", "max")
        if low is not None:
            x = Binary(lo, x, Const(_bound(low, work), work), work)
        if high is not None:
            x = Binary(hi, x, Const(_bound(high, work), work), work)
        return x

    elementwise(lw, node, clamp)


def _fractional(*bounds: float | None) -> bool:
    return any(b is not None and (not math.isfinite(b) or b != int(b)) for b in bounds)


def _bound(value: float, dtype: DType) -> float | int:
    return value if dtype.is_float else int(value)


# -- sources and masks ----------------------------------------------------------------------------
def fill_const(value: float, dtype: DType) -> Const:
    dt = compute_dtype(dtype)
    if dt == DType.bool:
        return Const(bool(value), dt)
    return Const(value if dt.is_float else int(value), dt)


@rule("full")
def _full(lw: Lowerer, node: Node) -> None:
    out = lw.result(node.outputs[0])
    value = fill_const(node.attrs["value"], out.dtype)
    with lw.loops(out.shape) as idx:
        lw.emit(out.store(idx, value))


@rule("iota")
def _iota(lw: Lowerer, node: Node) -> None:
    out = lw.result(node.outputs[0])
    axis = node.attrs["axis"] % out.rank
    with lw.loops(out.shape) as idx:
        lw.emit(out.store(idx, convert(idx[axis], compute_dtype(out.dtype))))


@rule("tril", "triu")
def _triangle(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    out = lw.result(node.outputs[0])
    dt = compute_dtype(out.dtype)
    diagonal = Const(node.attrs["diagonal"])
    with lw.loops(out.shape) as idx:
        row, col = idx[-2], idx[-1]
        limit = Binary("add", row, diagonal, DType.i64)
        keep = Binary("le" if node.op == "tril" else "ge", col, limit, DType.bool)
        lw.emit(out.store(idx, Select(keep, x.load(idx), fill_const(0.0, out.dtype), dt)))
