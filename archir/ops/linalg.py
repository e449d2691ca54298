"""Contractions and windowed ops: matmul, linear, 1-D/2-D convolution and pooling (NCL / NCHW).

Convolution and pooling share one window model (kernel, stride, symmetric padding, dilation).
Their numpy semantics are vectorised, im2col through stride tricks and one batched matmul,
because the interpreter runs whole CNNs with them as the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from archir.errors import TypeInferenceError
from archir.ops.rules import floating, tensor
from archir.registry import AttrKind, InferFn, Trait, attr, define_op
from archir.symbolic import Dim, add, exact_div, floordiv, mul, sub
from archir.types import DType, TensorType, Type, broadcast_shapes, promote_dtypes

if TYPE_CHECKING:
    from archir.builder import GraphBuilder
    from archir.ir import Value

CONTRACT = (Trait.CONTRACTION,)


def _numeric(t: Type | None, what: str) -> TensorType:
    tt = tensor(t, what)
    if tt.dtype == DType.bool:
        raise TypeInferenceError(f"{what} must be numeric, got {tt}", hint="cast it to a float dtype")
    return tt


# -- matmul -----------------------------------------------------------------------------------
def _matmul_shape(a: TensorType, b: TensorType) -> tuple[Dim, ...]:
    """numpy matmul: a 1-D operand gains a unit dim for the product and loses it afterwards."""
    if a.rank == 0 or b.rank == 0:
        raise TypeInferenceError(f"matmul operands must have rank >= 1, got a {a} and b {b}",
                                 hint="use mul to scale by a scalar")
    a_shape = (1, *a.shape) if a.rank == 1 else a.shape
    b_shape = (*b.shape, 1) if b.rank == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise TypeInferenceError(
            f"matmul inner dims differ: a {a} has {a_shape[-1]}, b {b} has {b_shape[-2]}",
            hint="a's last dim must equal b's second-to-last (its only dim when b is 1-D)")
    try:
        batch = broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except TypeInferenceError:
        raise TypeInferenceError(f"matmul batch dims of a {a} and b {b} do not broadcast") from None
    rows = () if a.rank == 1 else (a_shape[-2],)
    cols = () if b.rank == 1 else (b_shape[-1],)
    return (*batch, *rows, *cols)


def _infer_matmul(a: Type, b: Type, **_: object) -> TensorType:
    ta, tb = _numeric(a, "a"), _numeric(b, "b")
    return TensorType(_matmul_shape(ta, tb), promote_dtypes(ta.dtype, tb.dtype))


define_op("matmul", operands=("a", "b"), infer=_infer_matmul, impl=np.matmul, traits=CONTRACT,
          doc="matrix product with numpy semantics: 1-D operands, broadcast batch dims")


# -- linear -----------------------------------------------------------------------------------
def _infer_linear(x: Type, weight: Type, bias: Type | None, **_: object) -> TensorType:
    tx, tw = _numeric(x, "x"), _numeric(weight, "weight")
    if tx.rank == 0 or tw.rank != 2:
        raise TypeInferenceError(f"linear needs x [..., in] and weight [out, in], got x {tx} and "
                                 f"weight {tw}")
    out_features, in_features = tw.shape
    if tx.shape[-1] != in_features:
        raise TypeInferenceError(
            f"linear x {tx} has {tx.shape[-1]} features but weight {tw} takes {in_features}",
            hint="weight is [out_features, in_features] (torch convention)")
    dtypes = [tx.dtype, tw.dtype]
    if bias is not None:
        tb = _numeric(bias, "bias")
        if tb.shape != (out_features,):
            raise TypeInferenceError(f"linear bias must be [{out_features}] for weight {tw}, got {tb}")
        dtypes.append(tb.dtype)
    return TensorType((*tx.shape[:-1], out_features), promote_dtypes(*dtypes))


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = np.matmul(x, weight.T)
    return y if bias is None else y + bias


def _decompose_linear(b: GraphBuilder, x: Value, weight: Value, bias: Value | None = None,
                      **_: object) -> Value:
    y = b.matmul(x, b.transpose(weight, perm=[1, 0]))
    return y if bias is None else b.add(y, bias)


define_op("linear", operands=("x", "weight", "bias?"), infer=_infer_linear, impl=_linear,
          traits=(Trait.CONTRACTION, Trait.COMPOSITE), decompose=_decompose_linear,
          doc="x @ weight.T + bias, with weight [out, in] as in torch")


# -- shared window arithmetic -----------------------------------------------------------------
def _per_axis(op: str, name: str, values: Sequence[int], nd: int, least: int) -> tuple[int, ...]:
    if len(values) != nd:
        raise TypeInferenceError(f"{op} {name} needs {nd} value(s), one per spatial dim, "
                                 f"got {list(values)}")
    if any(v < least for v in values):
        raise TypeInferenceError(f"{op} {name} values must be >= {least}, got {list(values)}")
    return tuple(values)


def _check_layout(op: str, x: TensorType, nd: int) -> None:
    if x.rank != nd + 2:
        layout = "NCL" if nd == 1 else "NCHW"
        raise TypeInferenceError(f"{op} x must be {layout} (rank {nd + 2}), got {x}")


def _output_spatial(op: str, x: TensorType, spans: Sequence[Dim], stride: Sequence[int],
                    padding: Sequence[int]) -> list[Dim]:
    """Window positions per spatial dim: ((size + 2 * pad - span) // stride) + 1."""
    out: list[Dim] = []
    for size, span, s, p in zip(x.shape[2:], spans, stride, padding, strict=True):
        count = add(floordiv(sub(add(size, 2 * p), span), s), 1)
        if isinstance(count, int) and count < 1:
            raise TypeInferenceError(
                f"{op} window of {span} does not fit the input {x} padded by {p} on each side",
                hint="use a smaller kernel or dilation, or more padding")
        out.append(count)
    return out


def _pad_spatial(x: np.ndarray, padding: Sequence[int], value: float) -> np.ndarray:
    if not any(padding):
        return x
    widths = [(0, 0)] * (x.ndim - len(padding)) + [(p, p) for p in padding]
    return np.pad(x, widths, constant_values=value)


def _windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int]) -> np.ndarray:
    """A view [..., *out, *kernel] of the windows over the trailing axes of a padded input."""
    nd = len(kernel)
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    view = sliding_window_view(x, spans, axis=tuple(range(x.ndim - nd, x.ndim)))
    keep = (slice(None),) * (x.ndim - nd)
    positions = tuple(slice(None, None, s) for s in stride)
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[keep + positions + taps]


# -- convolution ------------------------------------------------------------------------------
def _conv_channels(op: str, x: TensorType, weight: TensorType, groups: int) -> Dim:
    """Check x and weight channels against groups; returns the output channel count."""
    if groups < 1:
        raise TypeInferenceError(f"{op} groups must be >= 1, got {groups}")
    channels, out_channels = x.shape[1], weight.shape[0]
    per_group = exact_div(channels, groups)
    if per_group is None:
        raise TypeInferenceError(f"{op} x {x} has {channels} channels, not divisible by "
                                 f"groups = {groups}")
    if exact_div(out_channels, groups) is None:
        raise TypeInferenceError(f"{op} weight {weight} has {out_channels} output channels, not "
                                 f"divisible by groups = {groups}")
    if weight.shape[1] != per_group:
        raise TypeInferenceError(
            f"{op} channel mismatch: x {x} has {channels} channels, so with groups = {groups} "
            f"weight dim 1 must be {per_group}, but weight is {weight}",
            hint="weight is [out_channels, in_channels / groups, *kernel]")
    return out_channels


def _conv_infer(nd: int) -> InferFn:
    op = f"conv{nd}d"

    def infer(x: Type, weight: Type, bias: Type | None, *, stride: Sequence[int],
              padding: Sequence[int], dilation: Sequence[int], groups: int) -> TensorType:
        tx, tw = _numeric(x, "x"), _numeric(weight, "weight")
        _check_layout(op, tx, nd)
        if tw.rank != nd + 2:
            raise TypeInferenceError(f"{op} weight must be [out, in / groups, *kernel] (rank "
                                     f"{nd + 2}), got {tw}")
        stride = _per_axis(op, "stride", stride, nd, 1)
        padding = _per_axis(op, "padding", padding, nd, 0)
        dilation = _per_axis(op, "dilation", dilation, nd, 1)
        out_channels = _conv_channels(op, tx, tw, groups)
        dtypes = [tx.dtype, tw.dtype]
        if bias is not None:
            tb = _numeric(bias, "bias")
            if tb.shape != (out_channels,):
                raise TypeInferenceError(f"{op} bias must be [{out_channels}] for weight {tw}, "
                                         f"got {tb}")
            dtypes.append(tb.dtype)
        spans = [add(mul(d, sub(k, 1)), 1) for k, d in zip(tw.shape[2:], dilation, strict=True)]
        spatial = _output_spatial(op, tx, spans, stride, padding)
        return TensorType((tx.shape[0], out_channels, *spatial), promote_dtypes(*dtypes))

    return infer


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: Sequence[int],
          padding: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    nd = x.ndim - 2
    kernel = weight.shape[2:]
    windows = _windows(_pad_spatial(x, padding, 0), kernel, stride, dilation)
    batch, channels = x.shape[:2]
    out = windows.shape[2:2 + nd]
    out_channels = weight.shape[0]
    per_group, out_per_group = channels // groups, out_channels // groups
    taps = per_group * math.prod(kernel)
    # im2col per group: [G, N * positions, C/G * taps], one copy, then one batched GEMM.
    cols = windows.reshape(batch, groups, per_group, *out, *kernel)
    spatial = tuple(range(3, 3 + nd))
    cols = cols.transpose(1, 0, *spatial, 2, *(a + nd for a in spatial))
    cols = cols.reshape(groups, batch * math.prod(out), taps)
    w = weight.reshape(groups, out_per_group, taps).transpose(0, 2, 1)
    y = np.matmul(cols, w).reshape(groups, batch, *out, out_per_group)
    y = y.transpose(1, 0, 2 + nd, *range(2, 2 + nd)).reshape(batch, out_channels, *out)
    if bias is not None:
        y = y + bias.reshape(out_channels, *(1,) * nd)
    return y


_CONV_DOC = ("convolution (cross-correlation, as torch) over {layout}: weight [out, in / groups, "
             "*kernel], symmetric zero padding per spatial dim, dilation, groups")

for _nd, _layout in ((1, "NCL"), (2, "NCHW")):
    define_op(f"conv{_nd}d", operands=("x", "weight", "bias?"), infer=_conv_infer(_nd),
              impl=_conv, traits=CONTRACT, doc=_CONV_DOC.format(layout=_layout),
              attrs={"stride": attr(AttrKind.INTS, (1,) * _nd),
                     "padding": attr(AttrKind.INTS, (0,) * _nd),
                     "dilation": attr(AttrKind.INTS, (1,) * _nd),
                     "groups": attr(AttrKind.INT, 1)})


# -- pooling ----------------------------------------------------------------------------------
def _pool_infer(op: str, nd: int) -> InferFn:
    def infer(x: Type, *, kernel: Sequence[int], stride: Sequence[int] | None,
              padding: Sequence[int]) -> TensorType:
        tx = floating(x, "x")
        _check_layout(op, tx, nd)
        kernel = _per_axis(op, "kernel", kernel, nd, 1)
        stride = kernel if stride is None else _per_axis(op, "stride", stride, nd, 1)
        padding = _per_axis(op, "padding", padding, nd, 0)
        if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
            raise TypeInferenceError(
                f"{op} padding {list(padding)} exceeds half the kernel {list(kernel)}",
                hint="as in torch; a window could otherwise hold only padding")
        spatial = _output_spatial(op, tx, kernel, stride, padding)
        return tx.with_shape((*tx.shape[:2], *spatial))

    return infer


def _max_pool(x: np.ndarray, *, kernel: Sequence[int], stride: Sequence[int] | None,
              padding: Sequence[int]) -> np.ndarray:
    ones = (1,) * len(kernel)
    windows = _windows(_pad_spatial(x, padding, -np.inf), kernel, stride or kernel, ones)
    return windows.max(axis=tuple(range(-len(kernel), 0)))


def _avg_pool(x: np.ndarray, *, kernel: Sequence[int], stride: Sequence[int] | None,
              padding: Sequence[int]) -> np.ndarray:
    # The divisor is the whole kernel, padding included (torch's count_include_pad=True).
    ones = (1,) * len(kernel)
    windows = _windows(_pad_spatial(x, padding, 0), kernel, stride or kernel, ones)
    return windows.mean(axis=tuple(range(-len(kernel), 0)))


_POOL_DOC = {"max": "max over each window; padding is -inf",
             "avg": "mean over each window; padding counts in the divisor (count_include_pad)"}

for _nd in (1, 2):
    for _kind, _impl in (("max", _max_pool), ("avg", _avg_pool)):
        _op = f"{_kind}_pool{_nd}d"
        define_op(_op, operands=("x",), infer=_pool_infer(_op, _nd), impl=_impl,
                  doc=f"{_POOL_DOC[_kind]}; stride defaults to the kernel",
                  attrs={"kernel": attr(AttrKind.INTS),
                         "stride": attr(AttrKind.INTS, optional=True),
                         "padding": attr(AttrKind.INTS, (0,) * _nd)})
