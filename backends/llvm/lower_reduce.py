"""Lowering of reductions (sum mean max min prod over axes, argmax / argmin along one axis)
and of softmax / log_softmax as three passes over each row.

An accumulator is a scalar local; float sums are marked reassociable so LLVM vectorises them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from archir.backends.llvm.loops import Assign, Binary, Cast, Const, Expr, Select, Unary, Var, dim_expr
from archir.backends.llvm.lower import Lowerer, View, compute_dtype, rule
from archir.backends.llvm.lower_elementwise import convert

from archir.ir import Node
from archir.symbolic import Dim
from archir.types import DType


def _axes(node: Node, rank: int) -> list[int]:
    axes = node.attrs.get("axes")
    return list(range(rank)) if axes is None else sorted(a % rank for a in axes)


def _split_index(x: View, axes: Sequence[int], outer: Sequence[Expr], inner: Sequence[Expr],
                 keepdims: bool) -> list[Expr]:
    """The input index from the output index (`outer`) and the reduced-axis index (`inner`)."""
    idx: list[Expr] = []
    o = iter(outer)
    r = iter(inner)
    for a in range(x.rank):
        if a in axes:
            if keepdims:
                next(o)
            idx.append(next(r))
        else:
            idx.append(next(o))
    return idx


_INIT = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}


@rule("sum", "mean", "max", "min", "prod")
def _reduce(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    out = lw.result(node.outputs[0])
    axes = _axes(node, x.rank)
    keepdims = node.attrs["keepdims"]
    acc_dtype = compute_dtype(out.dtype)
    if node.op in ("max", "min"):
        acc_dtype = compute_dtype(x.dtype)
    reduced: list[Dim] = [x.shape[a] for a in axes]
    with lw.loops(out.shape) as outer:
        acc = lw.fresh("acc", acc_dtype, "local")
        lw.emit(Assign(acc, _init(node.op, acc_dtype)))
        with lw.loops(reduced) as inner:
            value = convert(x.load(_split_index(x, axes, outer, inner, keepdims)), acc_dtype)
            lw.emit(Assign(acc, _combine(node.op, acc, value), reduction=acc_dtype.is_float))
        result: Expr = acc
        if node.op == "mean":
            count: Expr = Cast(_count(reduced), acc_dtype)
            result = Binary("div", acc, count, acc_dtype)
        lw.emit(out.store(outer, convert(result, compute_dtype(out.dtype))))


def _count(dims: Sequence[Dim]) -> Expr:
    total: Expr = Const(1)
    for d in dims:
        total = Binary("mul", total, dim_expr(d), DType.i64)
    return total


def _init(op: str, dtype: DType) -> Const:
    if dtype == DType.bool:
        return Const(op in ("min", "prod"), dtype)
    if dtype.is_float:
        return Const(_INIT[op], dtype)
    info = {DType.i64: 63, DType.i32: 31, DType.i8: 7}[dtype]
    if op == "max":
        return Const(-(2**info), dtype)
    if op == "min":
        return Const(2**info - 1, dtype)
    return Const(int(_INIT[op]), dtype)


def _combine(op: str, acc: Var, value: Expr) -> Expr:
    dt = acc.dtype
    if dt == DType.bool:
        return Binary("or" if op == "max" else "and", acc, value, dt)
    if op in ("sum", "mean"):
        return Binary("add", acc, value, dt)
    if op == "prod":
        return Binary("mul", acc, value, dt)
    prefix = "f" if dt.is_float else ""
    return Binary(prefix + op, acc, value, dt)


@rule("argmax", "argmin")
def _arg_reduce(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    out = lw.result(node.outputs[0])
    axis = node.attrs["axis"] % x.rank
    keepdims = node.attrs["keepdims"]
    dt = compute_dtype(x.dtype)
    with lw.loops(out.shape) as outer:
        best = lw.fresh("best", dt, "local")
        where = lw.fresh("at", DType.i64, "local")
        lw.emit(Assign(best, x.load(_split_index(x, [axis], outer, [Const(0)], keepdims))))
        lw.emit(Assign(where, Const(0)))
        with lw.loop(x.shape[axis], start=1) as j:
            v = x.load(_split_index(x, [axis], outer, [j], keepdims))
            better = _better(node.op, v, best)
            lw.emit(Assign(where, Select(better, j, where, DType.i64)))
            lw.emit(Assign(best, Select(better, v, best, dt)))
        lw.emit(out.store(outer, where))


def _better(op: str, v: Expr, best: Expr) -> Expr:
    """v replaces the best so far: strictly larger (smaller), or the first nan (numpy)."""
    strict = Binary("gt" if op == "argmax" else "lt", v, best, DType.bool)
    if not v.dtype.is_float:
        if v.dtype == DType.bool:
            strict = Binary("gt" if op == "argmax" else "lt", Cast(v, DType.i8), Cast(best, DType.i8),
                            DType.bool)
        return strict
    first_nan = Binary("and", Unary("isnan", v, DType.bool),
                       Unary("not", Unary("isnan", best, DType.bool), DType.bool), DType.bool)
    return Binary("or", strict, first_nan, DType.bool)
