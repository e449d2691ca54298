"""Multi-head attention (self, causal, padded, cross) and positional encodings: learned absolute,
sinusoidal, relative position bias, rotary (RoPE) and ALiBi.

Encodings that depend only on positions are computed in the graph from `iota`, so one graph
serves every sequence length T.
"""

from __future__ import annotations

import math

import numpy as np
from archir.frontends.dsl import functional as F
from archir.frontends.dsl.layers import Embedding, Linear
from archir.frontends.dsl.module import Module, Parameter
from archir.frontends.dsl.tensor import Tensor

from archir.symbolic import Dim
from archir.types import DType


class MultiHeadAttention(Module):
    """q/k/v/out projections around one `attention` op.

    forward(x, context=None, key_mask=None, bias=None, rope=None): `context` switches to
    cross-attention; `key_mask` is bool [B, S] (True = attend); `bias` is added to the scores
    ([H, T, S] or [B, H, T, S]); `rope` rotates queries and keys.
    """

    def __init__(self, dim: int, num_heads: int, *, causal: bool = False, bias: bool = True,
                 kv_dim: int | None = None) -> None:
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim, self.causal = dim, num_heads, dim // num_heads, causal
        self.q_proj = Linear(dim, dim, bias)
        self.k_proj = Linear(kv_dim or dim, dim, bias)
        self.v_proj = Linear(kv_dim or dim, dim, bias)
        self.out_proj = Linear(dim, dim, bias)

    def split_heads(self, x: Tensor) -> Tensor:
        b, t = x.shape[0], x.shape[1]
        return x.reshape(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None,
                bias: Tensor | None = None, rope: RotaryEmbedding | None = None) -> Tensor:
        source = x if context is None else context
        q = self.split_heads(self.q_proj(x))
        k = self.split_heads(self.k_proj(source))
        v = self.split_heads(self.v_proj(source))
        if rope is not None:
            q, k = rope(q), rope(k)
        mask = _combine_masks(key_mask, bias)
        out = F.attention(q, k, v, mask, causal=self.causal and context is None)
        b, t = x.shape[0], x.shape[1]
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.dim))


def _combine_masks(key_mask: Tensor | None, bias: Tensor | None) -> Tensor | None:
    keep = None if key_mask is None else key_mask.unsqueeze(1).unsqueeze(1)  # [B, 1, 1, S]
    if bias is None:
        return keep
    if keep is None:
        return bias
    return F.where(keep, bias, F.full([], -math.inf, bias.dtype))


class LearnedPositionalEmbedding(Module):
    """Absolute positions 0..T-1 looked up in a learned table (GPT, BERT)."""

    def __init__(self, max_len: int, dim: int) -> None:
        self.weight = Parameter(max_len, dim, init=("normal", 0.02))

    def forward(self, length: Dim) -> Tensor:
        return F.embedding(F.arange(length), self.weight)


class SinusoidalPositionalEncoding(Module):
    """The fixed encoding of "Attention Is All You Need": sin on even, cos on odd features."""

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        self.dim, self.base = dim, base

    def forward(self, length: Dim) -> Tensor:
        pos = F.arange(length, DType.f32).unsqueeze(1)  # [T, 1]
        i = F.arange(self.dim // 2, DType.f32)
        freq = F.exp(i * (-2.0 * math.log(self.base) / self.dim))
        angles = pos * freq.unsqueeze(0)  # [T, dim / 2]
        pairs = F.concat(F.sin(angles).unsqueeze(2), F.cos(angles).unsqueeze(2), axis=2)
        return pairs.reshape(length, self.dim)


def relative_distance(q_len: Dim, k_len: Dim) -> Tensor:
    """[T, S] with entry j - i (key position minus query position)."""
    return F.arange(k_len).unsqueeze(0) - F.arange(q_len).unsqueeze(1)


class RelativePositionBias(Module):
    """A learned per-head bias for each clipped relative distance (Shaw et al. style)."""

    def __init__(self, num_heads: int, max_distance: int) -> None:
        self.max_distance = max_distance
        self.weight = Parameter(2 * max_distance + 1, num_heads, init=("normal", 0.02))

    def forward(self, q_len: Dim, k_len: Dim) -> Tensor:
        m = self.max_distance
        dist = relative_distance(q_len, k_len)
        clipped = F.minimum(F.maximum(dist, F.full([], -m, DType.i64)), F.full([], m, DType.i64))
        bias = F.embedding(clipped + F.full([], m, DType.i64), self.weight)  # [T, S, H]
        return bias.permute(2, 0, 1)


class RotaryEmbedding(Module):
    """RoPE on [B, H, T, Dh] (rotate-half form): x * cos + rotate_half(x) * sin."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        self.head_dim, self.base = head_dim, base

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[-2]
        half = self.head_dim // 2
        inv = F.exp(F.arange(half, DType.f32) * (-2.0 * math.log(self.base) / self.head_dim))
        angles = F.arange(t, DType.f32).unsqueeze(1) * inv.unsqueeze(0)  # [T, Dh / 2]
        angles = F.concat(angles, angles, axis=1)  # [T, Dh]
        x1, x2 = x.split([half, self.head_dim - half], axis=-1)
        rotated = F.concat(-x2, x1, axis=-1)
        return x * F.cos(angles) + rotated * F.sin(angles)


def alibi_slopes(num_heads: int) -> np.ndarray:
    """Geometric slopes 2^(-8 i / n) of the ALiBi paper. For a head count n that is not a power
    of two, as the paper does: the slopes of the power of two p below n, then every other slope
    of 2p (the odd ones) for the remaining n - p heads."""
    p = 1 << (num_heads.bit_length() - 1)
    slopes = [2.0 ** (-8.0 * (i + 1) / p) for i in range(p)]
    slopes += [2.0 ** (-8.0 * (2 * i + 1) / (2 * p)) for i in range(num_heads - p)]
    return np.array(slopes, np.float32)


class ALiBi(Module):
    """Attention with linear biases: score bias slope_h * (j - i), no position embeddings."""

    def __init__(self, num_heads: int) -> None:
        self.slopes = Parameter(num_heads, init=lambda rng, shape: alibi_slopes(shape[0]))

    def forward(self, q_len: Dim, k_len: Dim) -> Tensor:
        dist = relative_distance(q_len, k_len).to(DType.f32)  # [T, S]
        return self.slopes.reshape(-1, 1, 1) * dist.unsqueeze(0)  # [H, T, S]


__all__ = ["ALiBi", "Embedding", "LearnedPositionalEmbedding", "MultiHeadAttention",
           "RelativePositionBias", "RotaryEmbedding", "SinusoidalPositionalEncoding",
           "alibi_slopes", "relative_distance"]
