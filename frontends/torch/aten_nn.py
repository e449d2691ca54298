"""Converters for ATen neural-network ops: convolution, layer and batch norm, embedding,
scaled_dot_product_attention and 1-D/2-D pooling (max, average, adaptive average).
Training-only behaviour (batch statistics, dropout) is refused, not approximated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archir.frontends.torch.context import ImportContext, rank
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.symbolic import SymExpr
from archir.types import DType


def _per_axis(value: Any, nd: int) -> list[int]:
    values = [value] * nd if isinstance(value, int) else list(value)
    if len(values) == 1 and nd > 1:
        values = values * nd
    return values


# -- convolution --------------------------------------------------------------------------------
def _conv(cx: ImportContext, x: Value, weight: Value, bias: Value | None, stride: Any,
          padding: Any, dilation: Any, groups: int) -> Value:
    nd = rank(x) - 2
    if nd not in (1, 2):
        raise Unsupported(f"convolution over {max(nd, 0)} spatial dims (archir has conv1d and conv2d)")
    kernel = weight.tensor_type.shape[2:]
    dilation = _per_axis(dilation, nd)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        spans = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if any(s % 2 for s in spans):
            raise Unsupported("padding='same' with an even kernel span (asymmetric padding)")
        padding = [s // 2 for s in spans]
    operands = [x, weight] + ([bias] if bias is not None else [])
    return cx.b.op(f"conv{nd}d", *operands, stride=_per_axis(stride, nd),
                   padding=_per_axis(padding, nd), dilation=dilation, groups=groups)


@converter("aten.convolution.default", "aten._convolution.default")
def convolution(cx: ImportContext, x: Value, weight: Value, bias: Value | None, stride: Any,
                padding: Any, dilation: Any, transposed: bool, output_padding: Any, groups: int,
                *rest: Any) -> Value:
    if transposed:
        raise Unsupported("transposed convolution")
    return _conv(cx, x, weight, bias, stride, padding, dilation, groups)


@converter("aten.conv1d.default", "aten.conv2d.default", "aten.conv1d.padding",
           "aten.conv2d.padding")
def conv(cx: ImportContext, x: Value, weight: Value, bias: Value | None = None, stride: Any = 1,
         padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
    return _conv(cx, x, weight, bias, stride, padding, dilation, groups)


# -- normalization ------------------------------------------------------------------------------
def _layer_norm(cx: ImportContext, x: Value, normalized_shape: Sequence[Any], weight: Value | None,
                bias: Value | None, eps: float) -> Value:
    attrs = {"begin_axis": -len(normalized_shape), "eps": eps}
    if weight is None and bias is not None:
        return cx.b.add(cx.b.layer_norm(x, **attrs), bias)
    operands = [x] + [p for p in (weight, bias) if p is not None]
    return cx.b.layer_norm(*operands, **attrs)


@converter("aten.layer_norm.default")
def layer_norm(cx: ImportContext, x: Value, normalized_shape: Sequence[Any], weight: Value | None = None,
               bias: Value | None = None, eps: float = 1e-5, cudnn_enable: bool = True) -> Value:
    return _layer_norm(cx, x, normalized_shape, weight, bias, eps)


@converter("aten.native_layer_norm.default")
def native_layer_norm(cx: ImportContext, x: Value, normalized_shape: Sequence[Any],
                      weight: Value | None, bias: Value | None, eps: float) -> tuple:
    """(y, mean, rstd): mean and rstd serve training only; using them is refused on import."""
    return _layer_norm(cx, x, normalized_shape, weight, bias, eps), None, None


def _batch_norm(cx: ImportContext, x: Value, weight: Value | None, bias: Value | None,
                mean: Value | None, var: Value | None, eps: float) -> Value:
    if mean is None or var is None:
        raise Unsupported("batch norm without running statistics (training mode)",
                          hint="export the module after .eval()")
    operands = [x, mean, var]
    if weight is not None:
        operands.append(weight)
    if bias is not None:
        if weight is None:
            operands.append(cx.b.full(shape=[x.tensor_type.shape[1]], value=1.0, dtype=x.tensor_type.dtype))
        operands.append(bias)
    return cx.b.batch_norm(*operands, axis=1, eps=eps)


@converter("aten.batch_norm.default")
def batch_norm(cx: ImportContext, x: Value, weight: Value | None, bias: Value | None,
               running_mean: Value | None, running_var: Value | None, training: bool,
               momentum: float, eps: float, cudnn_enabled: bool = True) -> Value:
    if training:
        raise Unsupported("batch norm in training mode", hint="export the module after .eval()")
    return _batch_norm(cx, x, weight, bias, running_mean, running_var, eps)


@converter("aten._native_batch_norm_legit_no_training.default")
def batch_norm_no_training(cx: ImportContext, x: Value, weight: Value | None, bias: Value | None,
                           running_mean: Value, running_var: Value, momentum: float,
                           eps: float) -> tuple:
    return _batch_norm(cx, x, weight, bias, running_mean, running_var, eps), None, None


@converter("aten.native_batch_norm.default")
def native_batch_norm(cx: ImportContext, x: Value, weight: Value | None, bias: Value | None,
                      running_mean: Value | None, running_var: Value | None, training: bool,
                      momentum: float, eps: float) -> tuple:
    if training:
        raise Unsupported("batch norm in training mode", hint="export the module after .eval()")
    return _batch_norm(cx, x, weight, bias, running_mean, running_var, eps), None, None


# -- embedding and attention --------------------------------------------------------------------
@converter("aten.embedding.default")
def embedding(cx: ImportContext, weight: Value, indices: Value, padding_idx: int = -1,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Value:
    return cx.b.embedding(indices, weight)


@converter("aten.scaled_dot_product_attention.default")
def sdpa(cx: ImportContext, q: Value, k: Value, v: Value, attn_mask: Value | None = None,
         dropout_p: float = 0.0, is_causal: bool = False, *, scale: float | None = None,
         enable_gqa: bool = False) -> Value:
    if dropout_p > 0:
        raise Unsupported("attention dropout (training mode)", hint="export the module after .eval()")
    if enable_gqa:
        k, v = _repeat_heads(cx, k, q), _repeat_heads(cx, v, q)
    tq, tk = q.tensor_type.shape[-2], k.tensor_type.shape[-2]
    causal = is_causal
    if is_causal and tq != tk:
        # torch's is_causal is top-left aligned, archir's bottom-right: spell the mask out
        attn_mask, causal = _top_left_causal(cx, tq, tk), False
    if attn_mask is not None and attn_mask.tensor_type.dtype != DType.bool:
        attn_mask = cx.cast(attn_mask, q.tensor_type.dtype)
    operands = [q, k, v] + ([attn_mask] if attn_mask is not None else [])
    return cx.b.attention(*operands, causal=causal, scale=scale)


def _top_left_causal(cx: ImportContext, tq: Any, tk: Any) -> Value:
    rows = cx.b.iota(shape=[tq, tk], axis=0, dtype=DType.i64)
    cols = cx.b.iota(shape=[tq, tk], axis=1, dtype=DType.i64)
    return cx.b.le(cols, rows)


def _repeat_heads(cx: ImportContext, kv: Value, q: Value) -> Value:
    """Grouped-query attention: each of the Hk key/value heads serves H / Hk query heads."""
    shape = list(kv.tensor_type.shape)
    heads, kv_heads = q.tensor_type.shape[-3], shape[-3]
    if heads == kv_heads:
        return kv
    if not isinstance(heads, int) or not isinstance(kv_heads, int) or heads % kv_heads:
        raise Unsupported(f"grouped-query attention with {heads} query and {kv_heads} kv heads")
    group = heads // kv_heads
    grown = cx.b.expand(cx.b.unsqueeze(kv, axes=[len(shape) - 2]),
                        shape=[*shape[:-2], group, *shape[-2:]])
    return cx.b.reshape(grown, shape=[*shape[:-3], heads, *shape[-2:]])


# -- pooling ------------------------------------------------------------------------------------
def _pool(cx: ImportContext, kind: str, x: Value, kernel: Any, stride: Any, padding: Any) -> Value:
    nd = rank(x) - 2
    if nd not in (1, 2):
        raise Unsupported(f"{kind} pooling of a rank-{rank(x)} input (archir pools NCL and NCHW)")
    kernel = _per_axis(kernel, nd)
    stride = _per_axis(stride, nd) if stride else kernel
    y = cx.b.op(f"{kind}_pool{nd}d", x, kernel=kernel, stride=stride, padding=_per_axis(padding, nd))
    if y.tensor_type.shape != cx.out(0).shape:
        raise Unsupported("pooling with ceil_mode where it changes the output size")
    return y


@converter("aten.max_pool1d.default", "aten.max_pool2d.default")
def max_pool(cx: ImportContext, x: Value, kernel_size: Any, stride: Any = (), padding: Any = 0,
             dilation: Any = 1, ceil_mode: bool = False) -> Value:
    if any(d != 1 for d in _per_axis(dilation, 1)):
        raise Unsupported("dilated max pooling")
    return _pool(cx, "max", x, kernel_size, stride, padding)


@converter("aten.max_pool1d_with_indices.default", "aten.max_pool2d_with_indices.default")
def max_pool_with_indices(cx: ImportContext, x: Value, kernel_size: Any, stride: Any = (),
                          padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False) -> tuple:
    return max_pool(cx, x, kernel_size, stride, padding, dilation, ceil_mode), None


@converter("aten.avg_pool1d.default", "aten.avg_pool2d.default")
def avg_pool(cx: ImportContext, x: Value, kernel_size: Any, stride: Any = (), padding: Any = 0,
             ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None) -> Value:
    if divisor_override is not None:
        raise Unsupported("average pooling with divisor_override")
    if not count_include_pad and any(_per_axis(padding, 1)):
        raise Unsupported("padded average pooling with count_include_pad=False")
    return _pool(cx, "avg", x, kernel_size, stride, padding)


@converter("aten.adaptive_avg_pool1d.default", "aten.adaptive_avg_pool2d.default",
           "aten._adaptive_avg_pool2d.default")
def adaptive_avg_pool(cx: ImportContext, x: Value, output_size: Any) -> Value:
    """A mean when the output is 1 per axis; a plain average pool when the sizes divide."""
    nd = rank(x) - 2
    out = _per_axis(output_size, nd)
    spatial = list(x.tensor_type.shape[2:])
    if all(o == 1 for o in out):
        return cx.b.mean(x, axes=list(range(2, 2 + nd)), keepdims=True)
    if any(isinstance(s, SymExpr) or s % o for s, o in zip(spatial, out, strict=True)):
        raise Unsupported(f"adaptive average pooling of {spatial} to {out} (sizes do not divide)")
    kernel = [s // o for s, o in zip(spatial, out, strict=True)]
    return _pool(cx, "avg", x, kernel, kernel, 0)
