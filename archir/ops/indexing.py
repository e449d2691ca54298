"""Indexing ops: embedding, gather, index_select, scatter_add and topk (torch semantics).

Index operands must have integer dtypes; out-of-range indices are reported at run time as an
ArchirError naming the op and the legal range, never as a numpy IndexError.
"""

from __future__ import annotations

import numpy as np

from archir.errors import ArchirError, TypeInferenceError
from archir.ops.rules import integer, rank_exactly, tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.symbolic import Dim
from archir.types import DType, TensorType, Type, normalize_axis


def _check_range(op: str, index: np.ndarray, size: int, what: str) -> None:
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ArchirError(f"{op} index out of range: indices must lie in [0, {size}) {what}, "
                          f"got values from {index.min()} to {index.max()}")


def _axis(t: TensorType, axis: int, what: str) -> int:
    if t.rank == 0:
        raise TypeInferenceError(f"{what} must have rank >= 1 to take axis {axis}, got {t}")
    return normalize_axis(axis, t.rank)


def _not_larger(small: Dim, large: Dim) -> bool:
    # Symbolic sizes cannot be compared here; the run-time shapes are checked by numpy.
    return not (isinstance(small, int) and isinstance(large, int) and small > large)


# -- embedding ----------------------------------------------------------------------------------
def _infer_embedding(ids: Type, table: Type) -> TensorType:
    idt = integer(ids, "embedding ids")
    tt = rank_exactly(tensor(table, "embedding table"), 2, "embedding table")
    return TensorType((*idt.shape, tt.shape[1]), tt.dtype)


def _embedding(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    _check_range("embedding", ids, table.shape[0], "(the table's rows)")
    return table[ids]


define_op("embedding", operands=("ids", "table"), infer=_infer_embedding, impl=_embedding,
          traits=(Trait.GATHER,), doc="rows of table [V, D] picked by ids: ids.shape + [D]")


# -- gather and index_select --------------------------------------------------------------------
def _infer_gather(x: Type, index: Type, *, axis: int) -> TensorType:
    xt = tensor(x, "gather x")
    it = integer(index, "gather index")
    ax = _axis(xt, axis, "gather x")
    if it.rank != xt.rank:
        raise TypeInferenceError(f"gather index must have the rank of x: x is {xt}, index is {it}")
    for a, (i, d) in enumerate(zip(it.shape, xt.shape, strict=True)):
        if a != ax and not _not_larger(i, d):
            raise TypeInferenceError(f"gather index {it} is larger than x: {xt} on axis {a}")
    return it.with_dtype(xt.dtype)


def _gather(x: np.ndarray, index: np.ndarray, *, axis: int) -> np.ndarray:
    ax = normalize_axis(axis, x.ndim)
    _check_range("gather", index, x.shape[ax], f"along axis {ax}")
    # torch lets index be smaller than x on the other axes; take_along_axis wants them equal.
    window = tuple(slice(None) if a == ax else slice(0, n) for a, n in enumerate(index.shape))
    return np.take_along_axis(x[window], index, axis=ax)


define_op("gather", operands=("x", "index"), infer=_infer_gather, impl=_gather,
          attrs={"axis": attr(AttrKind.INT)}, traits=(Trait.GATHER,),
          doc="out[i][j][k] = x[index[i][j][k]][j][k] on axis 0, and so on (torch.gather)")


def _infer_index_select(x: Type, index: Type, *, axis: int) -> TensorType:
    xt = tensor(x, "index_select x")
    it = rank_exactly(integer(index, "index_select index"), 1, "index_select index")
    ax = _axis(xt, axis, "index_select x")
    return xt.with_shape(it.shape[0] if a == ax else d for a, d in enumerate(xt.shape))


def _index_select(x: np.ndarray, index: np.ndarray, *, axis: int) -> np.ndarray:
    ax = normalize_axis(axis, x.ndim)
    _check_range("index_select", index, x.shape[ax], f"along axis {ax}")
    return np.take(x, index, axis=ax)


define_op("index_select", operands=("x", "index"), infer=_infer_index_select, impl=_index_select,
          attrs={"axis": attr(AttrKind.INT)}, traits=(Trait.GATHER,),
          doc="the slices of x along `axis` picked by a 1-D index (torch.index_select)")


# -- scatter_add --------------------------------------------------------------------------------
def _infer_scatter_add(x: Type, index: Type, src: Type, *, axis: int) -> TensorType:
    xt = tensor(x, "scatter_add x")
    it = integer(index, "scatter_add index")
    st = tensor(src, "scatter_add src")
    ax = _axis(xt, axis, "scatter_add x")
    if st.dtype != xt.dtype:
        raise TypeInferenceError(f"scatter_add src must have the dtype of x: x is {xt}, src is {st}")
    if not it.rank == st.rank == xt.rank:
        raise TypeInferenceError(f"scatter_add x, index and src must have the same rank: "
                                 f"x is {xt}, index is {it}, src is {st}")
    for a, (i, s, d) in enumerate(zip(it.shape, st.shape, xt.shape, strict=True)):
        if not _not_larger(i, s) or (a != ax and not _not_larger(i, d)):
            raise TypeInferenceError(f"scatter_add index {it} is larger than src {st} or x {xt} "
                                     f"on axis {a}")
    return xt


def _scatter_add(x: np.ndarray, index: np.ndarray, src: np.ndarray, *, axis: int) -> np.ndarray:
    ax = normalize_axis(axis, x.ndim)
    _check_range("scatter_add", index, x.shape[ax], f"along axis {ax}")
    where = list(np.indices(index.shape, sparse=True))
    where[ax] = index
    out = x.copy()
    np.add.at(out, tuple(where), src[tuple(slice(0, n) for n in index.shape)])
    return out


define_op("scatter_add", operands=("x", "index", "src"), infer=_infer_scatter_add,
          impl=_scatter_add, attrs={"axis": attr(AttrKind.INT)}, traits=(Trait.SCATTER,),
          doc="a copy of x with src added at index along `axis` (torch.scatter_add)")


# -- topk ---------------------------------------------------------------------------------------
def _infer_topk(x: Type, *, k: int, axis: int, largest: bool, sorted: bool) -> list[TensorType]:
    xt = tensor(x, "topk x")
    ax = _axis(xt, axis, "topk x")
    dim = xt.shape[ax]
    if k < 0 or not _not_larger(k, dim):
        raise TypeInferenceError(f"topk k = {k} must lie in [0, {dim}] (axis {ax} of x: {xt})")
    shape = [k if a == ax else d for a, d in enumerate(xt.shape)]
    return [xt.with_shape(shape), TensorType(tuple(shape), DType.i64)]


def _topk(x: np.ndarray, *, k: int, axis: int, largest: bool, sorted: bool) -> list[np.ndarray]:
    ax = normalize_axis(axis, x.ndim)
    if k > x.shape[ax]:
        raise ArchirError(f"topk k = {k} is larger than axis {ax} of x (size {x.shape[ax]})")
    # A descending key that cannot overflow: -x for floats, ~x (= -x - 1) for ints and bools.
    key = x if not largest else (-x if x.dtype.kind == "f" else ~x)
    # Always sorted: when sorted=false any order is allowed, and this one is deterministic.
    order = np.argsort(key, axis=ax, kind="stable")
    indices = np.take(order, np.arange(k), axis=ax)
    return [np.take_along_axis(x, indices, axis=ax), indices.astype(np.int64)]


define_op("topk", operands=("x",), infer=_infer_topk, impl=_topk,
          attrs={"k": attr(AttrKind.INT), "axis": attr(AttrKind.INT, -1),
                 "largest": attr(AttrKind.BOOL, True), "sorted": attr(AttrKind.BOOL, True)},
          doc="the k largest (or smallest) values along `axis` and their indices (torch.topk); "
              "ties keep the lower index first")
