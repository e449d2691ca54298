"""A GPT-2 style pre-norm transformer block: causal multi-head self-attention and a GELU (tanh)
MLP, each behind a layer norm and inside a residual connection.

Heads are made explicit with `reshape` and `transpose` ([B, T, D] -> [B, H, T, Dh]) around one
`attention` op. Weights are seeded random with GPT-2's init scale; names follow examples/gpt2.py.
"""

import numpy as np

from archir import Graph, GraphBuilder, Value, f32


class _Weights:
    """Makes the block's named parameters, GPT-2 style: N(0, 0.02), layer-norm weights around 1."""

    def __init__(self, b: GraphBuilder) -> None:
        self.b = b
        self.rng = np.random.default_rng(0)

    def normal(self, name: str, *shape: int, mean: float = 0.0) -> Value:
        data = (mean + 0.02 * self.rng.standard_normal(shape)).astype(np.float32)
        return self.b.param(name, f32[shape], data)

    def linear(self, name: str, x: Value, d_in: int, d_out: int) -> Value:
        weight = self.normal(f"{name}.weight", d_out, d_in)
        bias = self.normal(f"{name}.bias", d_out)
        with self.b.scope(name):
            return self.b.linear(x, weight, bias)

    def layer_norm(self, name: str, x: Value, dim: int, eps: float) -> Value:
        # Small random offsets around (1, 0), so a swapped weight and bias would show.
        weight = self.normal(f"{name}.weight", dim, mean=1.0)
        bias = self.normal(f"{name}.bias", dim)
        with self.b.scope(name):
            return self.b.layer_norm(x, weight, bias, eps=eps)


def _attention(w: _Weights, x: Value, dim: int, heads: int) -> Value:
    b = w.b
    head_dim = dim // heads

    def split_heads(name: str) -> Value:
        projected = w.linear(f"attn.{name}", x, dim, dim)
        with b.scope(f"attn.{name}"):
            per_head = b.reshape(projected, shape=["B", "T", heads, head_dim])
            return b.transpose(per_head, perm=[0, 2, 1, 3])  # [B, H, T, Dh]

    q, k, v = split_heads("q_proj"), split_heads("k_proj"), split_heads("v_proj")
    with b.scope("attn"):
        out = b.attention(q, k, v, causal=True)  # [B, H, T, Dh]
        merged = b.reshape(b.transpose(out, perm=[0, 2, 1, 3]), shape=["B", "T", dim])
    return w.linear("attn.out_proj", merged, dim, dim)


def transformer_block(dim: int = 64, heads: int = 4, eps: float = 1e-5) -> Graph:
    """x f32[B, T, dim] -> x + attn(ln_1(x)), then + mlp(ln_2(.)); the MLP is 4 * dim wide."""
    b = GraphBuilder("transformer_block")
    w = _Weights(b)
    x = b.input("x", f32["B", "T", dim])
    attended = _attention(w, w.layer_norm("ln_1", x, dim, eps), dim, heads)
    with b.scope("residual"):
        x = b.add(x, attended)
    hidden = w.linear("mlp.fc", w.layer_norm("ln_2", x, dim, eps), dim, 4 * dim)
    with b.scope("mlp"):
        hidden = b.gelu(hidden, approximate="tanh")
    out = w.linear("mlp.proj", hidden, 4 * dim, dim)
    with b.scope("residual"):
        b.output(b.add(x, out))
    return b.build()
