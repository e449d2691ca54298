"""A transformer-style MLP block: linear 768 -> 3072, GELU (tanh), linear 3072 -> 768, residual.

Built with the programmatic `GraphBuilder`; weights are seeded random (torch `nn.Linear` layout,
weight [out, in]), so the graph runs as it is.
"""

import numpy as np

from archir import Graph, GraphBuilder, Value, f32


def _linear(b: GraphBuilder, rng: np.random.Generator, name: str, x: Value, d_in: int,
            d_out: int) -> Value:
    """`name.weight` [d_out, d_in] and `name.bias` [d_out], scaled like torch's default init."""
    bound = 1.0 / np.sqrt(d_in)
    weight = rng.uniform(-bound, bound, (d_out, d_in)).astype(np.float32)
    bias = rng.uniform(-bound, bound, (d_out,)).astype(np.float32)
    w = b.param(f"{name}.weight", f32[d_out, d_in], weight)
    c = b.param(f"{name}.bias", f32[d_out], bias)
    with b.scope(name):
        return b.linear(x, w, c)


def mlp(dim: int = 768, hidden: int = 3072) -> Graph:
    """x f32[B, dim] -> x + fc2(gelu_tanh(fc1(x)))."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp")
    x = b.input("x", f32["B", dim])
    h = _linear(b, rng, "fc1", x, dim, hidden)
    with b.scope("act"):
        h = b.gelu(h, approximate="tanh")
    y = _linear(b, rng, "fc2", h, hidden, dim)
    with b.scope("residual"):
        b.output(b.add(x, y))
    return b.build()
