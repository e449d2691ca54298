"""Small torch helpers that generated code calls where one torch call does not match the op."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              causal: bool, scale: float | None) -> torch.Tensor:
    """archir's attention: causal masks are bottom-right aligned (key j <= query i + Tk - Tq)."""
    tq, tk = q.shape[-2], k.shape[-2]
    if causal and tq != tk:
        keep = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
        if mask is None:
            mask = keep
        elif mask.dtype == torch.bool:
            mask = mask & keep
        else:
            mask = mask.masked_fill(~keep, float("-inf"))
        causal = False
    if causal and mask is not None:
        keep = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril()
        mask = mask & keep if mask.dtype == torch.bool else mask.masked_fill(~keep, float("-inf"))
        causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


def iota(shape: Sequence[int], axis: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return torch.arange(shape[axis], dtype=dtype, device=device).reshape(view).expand(*shape)


def pad(x: torch.Tensor, pads: Sequence[int], value: float) -> torch.Tensor:
    """archir pads are (before, after) per axis from the first; F.pad wants them from the last."""
    torch_pads: list[int] = []
    for axis in reversed(range(x.ndim)):
        torch_pads += [pads[2 * axis], pads[2 * axis + 1]]
    return F.pad(x, torch_pads, value=value)


def split(x: torch.Tensor, sizes: Sequence[int], axis: int) -> tuple[torch.Tensor, ...]:
    sizes = list(sizes)
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
    return torch.split(x, sizes, dim=axis)


def prod(x: torch.Tensor, axes: Sequence[int], keepdim: bool) -> torch.Tensor:
    for axis in sorted((a % x.ndim for a in axes), reverse=True):
        x = torch.prod(x, dim=axis, keepdim=keepdim)
    return x


def batch_norm(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, weight: torch.Tensor | None,
               bias: torch.Tensor | None, axis: int, eps: float) -> torch.Tensor:
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def slice_axis(x: torch.Tensor, axis: int, start: int, end: int, step: int) -> torch.Tensor:
    """Python slice semantics on one axis, negative steps included."""
    index = torch.arange(*slice(start, end, step).indices(x.shape[axis]), device=x.device)
    return torch.index_select(x, axis, index)
