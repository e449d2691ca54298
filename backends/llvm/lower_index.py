"""Lowering of indexing ops: embedding, gather, index_select, scatter_add and topk.

Every index read from memory is range-checked before use; an index out of range makes the
entry point return an error code, which the Python side raises as an ArchirError.
"""

from __future__ import annotations

from archir.backends.llvm.loops import (
    Assign,
    Binary,
    Const,
    Expr,
    Fail,
    If,
    Loop,
    Select,
    Unary,
    Var,
    dim_expr,
    isub,
)
from archir.backends.llvm.lower import Lowerer, View, compute_dtype, rule
from archir.backends.llvm.lower_elementwise import convert

from archir.ir import Node
from archir.symbolic import Dim
from archir.types import DType


def checked_index(lw: Lowerer, node: Node, index: View, idx: list[Expr], size: Dim, what: str) -> Var:
    """A local holding index[idx] as i64, after checking it lies in [0, size)."""
    local = lw.fresh("ix", DType.i64, "local")
    lw.emit(Assign(local, convert(index.load(idx), DType.i64)))
    low = Binary("lt", local, Const(0), DType.bool)
    high = Binary("ge", local, dim_expr(size), DType.bool)
    code = lw.fail(f"{node.op} index out of range: indices must lie in [0, {size}) {what}", node)
    lw.emit(If(Binary("or", low, high, DType.bool), [Fail(code)]))
    return local


@rule("embedding")
def _embedding(lw: Lowerer, node: Node) -> None:
    ids, table = lw.view(node.inputs[0]), lw.view(node.inputs[1])
    out = lw.result(node.outputs[0])
    with lw.loops(ids.shape) as idx:
        row = checked_index(lw, node, ids, idx, table.shape[0], "(the table's rows)")
        with lw.loop(table.shape[1]) as d:
            lw.emit(out.store([*idx, d], table.load([row, d])))


@rule("gather")
def _gather(lw: Lowerer, node: Node) -> None:
    x, index = lw.view(node.inputs[0]), lw.view(node.inputs[1])
    out = lw.result(node.outputs[0])
    axis = node.attrs["axis"] % x.rank
    with lw.loops(index.shape) as idx:
        at = checked_index(lw, node, index, idx, x.shape[axis], f"along axis {axis}")
        src = [at if a == axis else i for a, i in enumerate(idx)]
        lw.emit(out.store(idx, x.load(src)))


@rule("index_select")
def _index_select(lw: Lowerer, node: Node) -> None:
    x, index = lw.view(node.inputs[0]), lw.view(node.inputs[1])
    out = lw.result(node.outputs[0])
    axis = node.attrs["axis"] % x.rank
    with lw.loop(index.shape[0]) as k:
        at = checked_index(lw, node, index, [k], x.shape[axis], f"along axis {axis}")
        rest = [d for a, d in enumerate(x.shape) if a != axis]
        with lw.loops(rest) as inner:
            src = [*inner[:axis], at, *inner[axis:]]
            dst = [*inner[:axis], k, *inner[axis:]]
            lw.emit(out.store(dst, x.load(src)))


@rule("scatter_add")
def _scatter_add(lw: Lowerer, node: Node) -> None:
    x, index, src = (lw.view(v) for v in node.inputs)
    out = lw.result(node.outputs[0])
    axis = node.attrs["axis"] % x.rank
    lw.copy(x, out)
    dt = compute_dtype(out.dtype)
    # In index order, one element at a time, as np.add.at does (repeated indices accumulate).
    with lw.loops(index.shape) as idx:
        at = checked_index(lw, node, index, idx, x.shape[axis], f"along axis {axis}")
        dst = [at if a == axis else i for a, i in enumerate(idx)]
        value = src.load(idx)
        combined = Binary("or" if dt == DType.bool else "add", out.load(dst), value, dt)
        lw.emit(out.store(dst, combined))


# -- topk: insertion into the sorted k best, per row ------------------------------------------
@rule("topk")
def _topk(lw: Lowerer, node: Node) -> None:
    x = lw.view(node.inputs[0])
    values, indices = lw.result(node.outputs[0]), lw.result(node.outputs[1])
    axis = node.attrs["axis"] % x.rank
    k = node.attrs["k"]
    largest = node.attrs["largest"]
    rows = [d for a, d in enumerate(x.shape) if a != axis]
    if k == 0:
        return
    with lw.loops(rows) as outer:
        def at(i: Expr, outer: list[Expr] = outer) -> list[Expr]:
            return [*outer[:axis], i, *outer[axis:]]

        filled = lw.fresh("filled", DType.i64, "local")
        lw.emit(Assign(filled, Const(0)))
        with lw.loop(x.shape[axis]) as j:
            v = lw.fresh("v", compute_dtype(x.dtype), "local")
            lw.emit(Assign(v, x.load(at(j))))
            # The insertion point: how many kept elements v does not beat (ties keep the earlier).
            pos = lw.fresh("pos", DType.i64, "local")
            lw.emit(Assign(pos, Const(0)))
            with lw.loop(filled) as p:
                beats = _beats(v, values.load(at(p)), largest)
                lw.emit(Assign(pos, Select(beats, pos, Binary("add", p, Const(1), DType.i64), DType.i64)))
            shift = _shift_down(lw, values, indices, at, filled, pos, k)
            write = [values.store(at(pos), v), indices.store(at(pos), j)]
            grow = Assign(filled, Select(Binary("lt", filled, Const(k), DType.bool),
                                         Binary("add", filled, Const(1), DType.i64), filled, DType.i64))
            lw.emit(If(Binary("lt", pos, Const(k), DType.bool), [*shift, *write, grow]))


def _beats(v: Expr, kept: Expr, largest: bool) -> Expr:
    """v goes before a kept element: strictly better, or kept is nan and v is not (nan sorts last)."""
    better = Binary("gt" if largest else "lt", v, kept, DType.bool)
    if not v.dtype.is_float:
        return better
    nan_kept = Binary("and", Unary("isnan", kept, DType.bool),
                      Unary("not", Unary("isnan", v, DType.bool), DType.bool), DType.bool)
    return Binary("or", better, nan_kept, DType.bool)


def _shift_down(lw: Lowerer, values: View, indices: View, at: object, filled: Var, pos: Var,
                k: int) -> list:
    """Statements moving entries [pos, min(filled, k - 1)) one place down (last first)."""
    stop = Select(Binary("lt", filled, Const(k), DType.bool), filled, Const(k - 1), DType.i64)
    q = lw.fresh("q")
    src = isub(q, Const(1))
    body = [values.store(at(q), values.load(at(src))), indices.store(at(q), indices.load(at(src)))]  # type: ignore[operator]
    one = Const(1)
    return [Loop(q, Binary("add", pos, one, DType.i64), Binary("add", stop, one, DType.i64), body, -1)]
