"""Neural-network ops: softmax, log_softmax, layer_norm, rms_norm, batch_norm and attention.

Each has a numpy reference and a decomposition into reductions and elementwise ops (attention
also into transpose, matmul, iota and full), so a backend may lower either form.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from archir.errors import TypeInferenceError
from archir.ops.rules import axis_in, floating, rank_at_least, tensor
from archir.registry import AttrKind, Trait, attr, define_op
from archir.symbolic import Dim, sub
from archir.types import DType, TensorType, Type, broadcast_shapes

if TYPE_CHECKING:
    from archir.builder import GraphBuilder
    from archir.ir import Value

NORM = (Trait.NORMALIZATION, Trait.COMPOSITE)


def _shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _expect(p: Type | None, what: str, want: TensorType, why: str) -> None:
    """An optional operand must have exactly the type `want`."""
    if p is None:
        return
    pt = tensor(p, what)
    if pt != want:
        raise TypeInferenceError(f"{what} must be {want} ({why}), got {pt}")


def _const(b: GraphBuilder, value: float, dtype: DType) -> Value:
    return b.full(shape=[], value=value, dtype=dtype)


def _affine(b: GraphBuilder, y: Value, weight: Value | None, bias: Value | None) -> Value:
    if weight is not None:
        y = b.mul(y, weight)
    if bias is not None:
        y = b.add(y, bias)
    return y


# -- softmax and log_softmax --------------------------------------------------------------------
def _infer_softmax(x: Type, *, axis: int) -> TensorType:
    t = floating(x, "x")
    axis_in(axis, t)
    return t


def _softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a row of only -inf is nan, as in torch
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        d = x - np.max(x, axis=axis, keepdims=True)
    return d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))


def _decompose_softmax(b: GraphBuilder, x: Value, *, axis: int) -> Value:
    e = b.exp(b.sub(x, b.max(x, axes=[axis], keepdims=True)))
    return b.div(e, b.sum(e, axes=[axis], keepdims=True))


def _decompose_log_softmax(b: GraphBuilder, x: Value, *, axis: int) -> Value:
    d = b.sub(x, b.max(x, axes=[axis], keepdims=True))
    return b.sub(d, b.log(b.sum(b.exp(d), axes=[axis], keepdims=True)))


define_op("softmax", operands=("x",), infer=_infer_softmax, impl=_softmax,
          attrs={"axis": attr(AttrKind.INT, -1)}, traits=NORM, decompose=_decompose_softmax,
          doc="exp(x) / sum(exp(x)) along `axis`, computed after subtracting the max")
define_op("log_softmax", operands=("x",), infer=_infer_softmax, impl=_log_softmax,
          attrs={"axis": attr(AttrKind.INT, -1)}, traits=NORM, decompose=_decompose_log_softmax,
          doc="x - log(sum(exp(x))) along `axis`, computed after subtracting the max")


# -- layer_norm and rms_norm --------------------------------------------------------------------
def _infer_norm(x: Type, weight: Type | None, bias: Type | None = None, *, begin_axis: int,
                eps: float) -> TensorType:
    t = floating(x, "x")
    begin = axis_in(begin_axis, t, "x")
    want = TensorType(t.shape[begin:], t.dtype)
    why = f"x.shape[{begin_axis}:] of x {t}"
    _expect(weight, "weight", want, why)
    _expect(bias, "bias", want, why)
    return t


def _infer_rms_norm(x: Type, weight: Type | None, *, begin_axis: int, eps: float) -> TensorType:
    return _infer_norm(x, weight, begin_axis=begin_axis, eps=eps)


def _trailing_axes(rank: int, begin_axis: int) -> tuple[int, ...]:
    return tuple(range(begin_axis % rank, rank))


def _scale_shift(y: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None) -> np.ndarray:
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _layer_norm(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, *,
                begin_axis: int, eps: float) -> np.ndarray:
    axes = _trailing_axes(x.ndim, begin_axis)
    d = x - np.mean(x, axis=axes, keepdims=True)
    var = np.mean(d * d, axis=axes, keepdims=True)
    return _scale_shift(d / np.sqrt(var + eps), weight, bias)


def _rms_norm(x: np.ndarray, weight: np.ndarray | None, *, begin_axis: int,
              eps: float) -> np.ndarray:
    axes = _trailing_axes(x.ndim, begin_axis)
    ms = np.mean(x * x, axis=axes, keepdims=True)
    return _scale_shift(x / np.sqrt(ms + eps), weight, None)


def _decompose_layer_norm(b: GraphBuilder, x: Value, weight: Value | None = None,
                          bias: Value | None = None, *, begin_axis: int, eps: float) -> Value:
    t = x.tensor_type
    axes = list(_trailing_axes(t.rank, begin_axis))
    d = b.sub(x, b.mean(x, axes=axes, keepdims=True))
    var = b.mean(b.mul(d, d), axes=axes, keepdims=True)
    y = b.mul(d, b.rsqrt(b.add(var, _const(b, eps, t.dtype))))
    return _affine(b, y, weight, bias)


def _decompose_rms_norm(b: GraphBuilder, x: Value, weight: Value | None = None, *,
                        begin_axis: int, eps: float) -> Value:
    t = x.tensor_type
    ms = b.mean(b.mul(x, x), axes=list(_trailing_axes(t.rank, begin_axis)), keepdims=True)
    y = b.mul(x, b.rsqrt(b.add(ms, _const(b, eps, t.dtype))))
    return _affine(b, y, weight, None)


define_op("layer_norm", operands=("x", "weight?", "bias?"), infer=_infer_norm, impl=_layer_norm,
          attrs={"begin_axis": attr(AttrKind.INT, -1, doc="normalise over begin_axis..last"),
                 "eps": attr(AttrKind.FLOAT, 1e-05)},
          traits=NORM, decompose=_decompose_layer_norm,
          doc="(x - mean) / sqrt(var + eps) * weight + bias over the trailing axes from "
              "begin_axis (biased variance); weight and bias have shape x.shape[begin_axis:]")
define_op("rms_norm", operands=("x", "weight?"), infer=_infer_rms_norm, impl=_rms_norm,
          attrs={"begin_axis": attr(AttrKind.INT, -1, doc="normalise over begin_axis..last"),
                 "eps": attr(AttrKind.FLOAT, 1e-06)},
          traits=NORM, decompose=_decompose_rms_norm,
          doc="x / sqrt(mean(x^2) + eps) * weight over the trailing axes from begin_axis")


# -- batch_norm ---------------------------------------------------------------------------------
def _infer_batch_norm(x: Type, mean: Type, var: Type, weight: Type | None, bias: Type | None, *,
                      axis: int, eps: float) -> TensorType:
    t = floating(x, "x")
    ax = axis_in(axis, t, "x")
    want = TensorType((t.shape[ax],), t.dtype)
    why = f"one per channel of x {t} along axis {axis}"
    for what, p in (("mean", mean), ("var", var), ("weight", weight), ("bias", bias)):
        _expect(p, what, want, why)
    return t


def _channel_shape(rank: int, axis: int, channels: Dim) -> list[Dim]:
    """The shape that lines a per-channel vector up with `axis` under right-aligned broadcasting."""
    return [channels] + [1] * (rank - axis % rank - 1)


def _batch_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, weight: np.ndarray | None,
                bias: np.ndarray | None, *, axis: int, eps: float) -> np.ndarray:
    shape = _channel_shape(x.ndim, axis, x.shape[axis])
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    weight = None if weight is None else weight.reshape(shape)
    bias = None if bias is None else bias.reshape(shape)
    return _scale_shift(y, weight, bias)


def _decompose_batch_norm(b: GraphBuilder, x: Value, mean: Value, var: Value,
                          weight: Value | None = None, bias: Value | None = None, *, axis: int,
                          eps: float) -> Value:
    t = x.tensor_type
    shape = _channel_shape(t.rank, axis, t.shape[axis])

    def line_up(p: Value | None) -> Value | None:
        return p if p is None or len(shape) == 1 else b.reshape(p, shape=shape)

    inv_std = b.rsqrt(b.add(line_up(var), _const(b, eps, t.dtype)))
    y = b.mul(b.sub(x, line_up(mean)), inv_std)
    return _affine(b, y, line_up(weight), line_up(bias))


define_op("batch_norm", operands=("x", "mean", "var", "weight?", "bias?"),
          infer=_infer_batch_norm, impl=_batch_norm,
          attrs={"axis": attr(AttrKind.INT, 1, doc="the channel axis"),
                 "eps": attr(AttrKind.FLOAT, 1e-05)},
          traits=NORM, decompose=_decompose_batch_norm,
          doc="inference batch norm with running statistics: (x - mean) / sqrt(var + eps) * "
              "weight + bias, each a vector over the channel axis")

# -- attention ----------------------------------------------------------------------------------
# Causal masking is bottom-right aligned: query i sees key j iff j <= i + Tk - Tq. A query that
# sees no key at all (every score -inf) gets a zero output, as torch's SDPA gives.


def _attention_operands(q: Type, k: Type, v: Type) -> tuple[TensorType, TensorType, TensorType]:
    qt, kt, vt = (rank_at_least(floating(t, n), 2, n) for t, n in ((q, "q"), (k, "k"), (v, "v")))
    if not qt.dtype == kt.dtype == vt.dtype:
        raise TypeInferenceError(f"q, k and v must share a dtype, got q {qt}, k {kt}, v {vt}")
    if qt.shape[-1] != kt.shape[-1]:
        raise TypeInferenceError(
            f"q {qt} and k {kt} disagree on the head size D ({qt.shape[-1]} vs {kt.shape[-1]})")
    if kt.shape[-2] != vt.shape[-2]:
        raise TypeInferenceError(
            f"k {kt} and v {vt} disagree on the key count Tk ({kt.shape[-2]} vs {vt.shape[-2]})")
    return qt, kt, vt


def _attention_batch(qt: TensorType, kt: TensorType, vt: TensorType) -> tuple[Dim, ...]:
    try:
        return broadcast_shapes(qt.shape[:-2], kt.shape[:-2], vt.shape[:-2])
    except TypeInferenceError:
        raise TypeInferenceError(
            f"the batch dims of q {qt}, k {kt} and v {vt} (all but the last two) do not broadcast"
        ) from None


def _check_mask(mask: Type, scores: tuple[Dim, ...], dtype: DType) -> None:
    mt = tensor(mask, "mask")
    if mt.dtype not in (DType.bool, dtype):
        raise TypeInferenceError(
            f"mask must be bool (True = attend) or {dtype} (added to the scores), got {mt}")
    try:
        fits = broadcast_shapes(mt.shape, scores) == scores
    except TypeInferenceError:
        fits = False
    if not fits:
        raise TypeInferenceError(
            f"mask {mt} does not broadcast to the scores shape {_shape_str(scores)} ([..., Tq, Tk])")


def _infer_attention(q: Type, k: Type, v: Type, mask: Type | None, *, causal: bool,
                     scale: float | None) -> TensorType:
    qt, kt, vt = _attention_operands(q, k, v)
    batch = _attention_batch(qt, kt, vt)
    if mask is not None:
        _check_mask(mask, (*batch, qt.shape[-2], kt.shape[-2]), qt.dtype)
    return TensorType((*batch, qt.shape[-2], vt.shape[-1]), qt.dtype)


def _causal_keep(tq: int, tk: int) -> np.ndarray:
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)


def _masked_softmax(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis where a row of only -inf gives zeros instead of nan."""
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(m == -np.inf, 0, m))
    total = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(total == 0, 1, total)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, *,
               causal: bool, scale: float | None) -> np.ndarray:
    factor = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * factor
    if causal:
        s = np.where(_causal_keep(q.shape[-2], k.shape[-2]), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == np.bool_ else s + mask
    return np.matmul(_masked_softmax(s), v)


def _count(b: GraphBuilder, dim: Dim, dtype: DType) -> Value:
    """A scalar equal to the size `dim`: a constant, or for a symbolic size a sum of ones."""
    if isinstance(dim, int):
        return _const(b, float(dim), dtype)
    return b.sum(b.full(shape=[dim], value=1.0, dtype=dtype))


def _build_scale(b: GraphBuilder, scale: float | None, head: Dim, dtype: DType) -> Value:
    if scale is not None:
        return _const(b, scale, dtype)
    if isinstance(head, int):
        return _const(b, 1.0 / math.sqrt(head), dtype)
    return b.rsqrt(_count(b, head, dtype))


def _build_causal_keep(b: GraphBuilder, tq: Dim, tk: Dim) -> Value:
    """bool[Tq, Tk]: key index <= query index + (Tk - Tq)."""
    rows = b.iota(shape=[tq, tk], axis=0, dtype=DType.i64)
    cols = b.iota(shape=[tq, tk], axis=1, dtype=DType.i64)
    offset = sub(tk, tq)
    if isinstance(offset, int):
        if offset:
            rows = b.add(rows, _const(b, float(offset), DType.i64))
    else:
        rows = b.add(rows, b.sub(_count(b, tk, DType.i64), _count(b, tq, DType.i64)))
    return b.le(cols, rows)


def _decompose_attention(b: GraphBuilder, q: Value, k: Value, v: Value, mask: Value | None = None,
                         *, causal: bool, scale: float | None) -> Value:
    qt, kt = q.tensor_type, k.tensor_type
    perm = [*range(kt.rank - 2), kt.rank - 1, kt.rank - 2]
    s = b.matmul(q, b.transpose(k, perm=perm))
    s = b.mul(s, _build_scale(b, scale, qt.shape[-1], qt.dtype))
    if not causal and mask is None:
        return b.matmul(b.softmax(s, axis=-1), v)
    neg_inf = _const(b, -math.inf, qt.dtype)
    if causal:
        s = b.where(_build_causal_keep(b, qt.shape[-2], kt.shape[-2]), s, neg_inf)
    if mask is not None:
        is_bool = mask.tensor_type.dtype == DType.bool
        s = b.where(mask, s, neg_inf) if is_bool else b.add(s, mask)
    # Rows with every key masked would be nan after softmax; they are zero by definition.
    dead = b.eq(b.max(s, axes=[-1], keepdims=True), neg_inf)
    p = b.where(dead, _const(b, 0.0, qt.dtype), b.softmax(s, axis=-1))
    return b.matmul(p, v)


define_op("attention", operands=("q", "k", "v", "mask?"), infer=_infer_attention,
          impl=_attention,
          attrs={"causal": attr(AttrKind.BOOL, False,
                                doc="bottom-right aligned: query i sees key j iff j <= i + Tk - Tq"),
                 "scale": attr(AttrKind.FLOAT, optional=True, doc="default 1/sqrt(D)")},
          traits=(Trait.COMPOSITE,), decompose=_decompose_attention,
          doc="softmax(q @ k^T * scale + mask) @ v with q [..., Tq, D], k [..., Tk, D], "
              "v [..., Tk, Dv] and broadcast batch dims; mask is bool (True = attend) or float "
              "(additive); a query that sees no key gives zeros")
