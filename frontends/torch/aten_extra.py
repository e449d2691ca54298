"""Converters the Hugging Face models and the torch.compile path need beyond the core tables:
CPU attention kernels and prims casts that aot_autograd leaves in its graphs, boolean reductions,
vector norms, flip.

Each one fills a gap only: where the core tables already map an op, theirs is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archir.frontends.torch.aten_nn import sdpa
from archir.frontends.torch.context import ImportContext, archir_dtype, axes, rank
from archir.frontends.torch.table import Converter, Unsupported, converter, lookup

from archir.ir import Value
from archir.types import DType


def gap(*names: str) -> Callable[[Converter], Converter]:
    """`@converter` for the names no other converter module claims (this module loads last)."""

    def register(fn: Converter) -> Converter:
        free = [name for name in names if lookup(name) is None]
        return converter(*free)(fn) if free else fn

    return register


# -- attention ----------------------------------------------------------------------------------
@gap("aten._scaled_dot_product_flash_attention_for_cpu.default")
def sdpa_flash_cpu(cx: ImportContext, q: Value, k: Value, v: Value, dropout_p: float = 0.0,
                   is_causal: bool = False, *, attn_mask: Value | None = None,
                   scale: float | None = None) -> tuple[Value, None]:
    """What scaled_dot_product_attention becomes on the CPU below autograd (torch.compile graphs).

    The second result (log-sum-exp, for the backward) is not mapped; the importer refuses a use."""
    out = sdpa(cx, q, k, v, attn_mask, dropout_p, is_causal, scale=scale)
    return out, None


# -- boolean reductions -------------------------------------------------------------------------
def _bool_reduce(cx: ImportContext, op: str, x: Value, dim: Any, keepdim: bool) -> Value:
    """any = max over 0/1, all = min over 0/1 (archir has no boolean reductions)."""
    ones = cx.b.ne(x, cx.const(0, x.tensor_type.dtype))
    as_int = cx.b.cast(ones, dtype=DType.i32)
    reduced = cx.b.op(op, as_int, axes=axes(dim, rank(x)), keepdims=keepdim)
    return cx.b.ne(reduced, cx.const(0, DType.i32))


@gap("aten.any.dim", "aten.any.dims", "aten.any.default")
def any_(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False) -> Value:
    return _bool_reduce(cx, "max", x, dim, keepdim)


@gap("aten.all.dim", "aten.all.dims", "aten.all.default")
def all_(cx: ImportContext, x: Value, dim: Any = None, keepdim: bool = False) -> Value:
    return _bool_reduce(cx, "min", x, dim, keepdim)


# -- casts --------------------------------------------------------------------------------------
@gap("prims.convert_element_type.default")
def convert_element_type(cx: ImportContext, x: Value, dtype: Any) -> Value:
    """What decompositions under torch.compile spell `x.to(dtype)` as."""
    return cx.cast(x, archir_dtype(dtype))


# -- norms --------------------------------------------------------------------------------------
@gap("aten.linalg_vector_norm.default")
def linalg_vector_norm(cx: ImportContext, x: Value, ord: float = 2, dim: Any = None,
                       keepdim: bool = False, *, dtype: Any = None) -> Value:
    """The 2-norm that F.normalize (sentence-transformers' Normalize) takes, and the 1- and inf-norms;
    other orders are refused."""
    if dtype is not None:
        x = cx.cast(x, archir_dtype(dtype))
    over = axes(dim, rank(x))
    if ord == 2:
        return cx.b.op("sqrt", cx.b.op("sum", cx.b.op("mul", x, x), axes=over, keepdims=keepdim))
    if ord == 1:
        return cx.b.op("sum", cx.b.op("abs", x), axes=over, keepdims=keepdim)
    if ord == float("inf"):
        return cx.b.op("max", cx.b.op("abs", x), axes=over, keepdims=keepdim)
    raise Unsupported(f"vector norm of order {ord} (archir maps orders 1, 2 and inf)")


# -- reversal -----------------------------------------------------------------------------------
@gap("aten.flip.default")
def flip(cx: ImportContext, x: Value, dims: Any) -> Value:
    """x reversed along `dims` (what a bidirectional RNN decomposes into): an index_select by
    (n - 1) - iota(n) per axis, n read off the iota itself when it is symbolic."""
    for ax in axes(dims, rank(x)):
        n = x.tensor_type.shape[ax]
        iota = cx.b.iota(shape=[n], axis=0, dtype=DType.i64)
        last = cx.const(n - 1, DType.i64) if isinstance(n, int) else cx.b.op("max", iota, axes=[0],
                                                                             keepdims=False)
        x = cx.b.index_select(x, cx.b.op("sub", last, iota), axis=ax)
    return x
