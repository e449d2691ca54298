"""An LSTM layer (as torch.nn.LSTM, gates in the order input, forget, cell, output) as a `scan`.

The input projection of all four gates runs once over the sequence; the scan carries (h, c),
starting from zeros, and its body adds the hidden projection, splits the gates and updates the
state. Parameter names follow `torch.nn.LSTM`.
"""

import numpy as np

from archir import Graph, GraphBuilder, Value, f32


def lstm(input_size: int = 32, hidden: int = 64) -> Graph:
    """x f32[T, B, input_size] -> (outputs f32[T, B, hidden], h_n, c_n f32[B, hidden])."""
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(hidden)  # torch's LSTM init: U(-1/sqrt(hidden), 1/sqrt(hidden))

    def draw(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    b = GraphBuilder("lstm")
    x = b.input("x", f32["T", "B", input_size])
    w_ih = b.param("lstm.weight_ih_l0", f32[4 * hidden, input_size], draw(4 * hidden, input_size))
    w_hh = b.param("lstm.weight_hh_l0", f32[4 * hidden, hidden], draw(4 * hidden, hidden))
    b_ih = b.param("lstm.bias_ih_l0", f32[4 * hidden], draw(4 * hidden))
    b_hh = b.param("lstm.bias_hh_l0", f32[4 * hidden], draw(4 * hidden))

    with b.scope("lstm"):
        zeros = b.full(shape=["B", hidden], value=0.0)
        with b.scope("input_proj"):
            projected = b.linear(x, w_ih, b_ih)  # [T, B, 4 * hidden]

        def step(h: Value, c: Value, x_t: Value) -> tuple[Value, Value, Value]:
            with b.scope("cell"):
                gates = b.add(x_t, b.linear(h, w_hh, b_hh))
                i, f, g, o = b.split(gates, axis=-1, sizes=[hidden] * 4)
                c_new = b.add(b.mul(b.sigmoid(f), c), b.mul(b.sigmoid(i), b.tanh(g)))
                h_new = b.mul(b.sigmoid(o), b.tanh(c_new))
            return h_new, c_new, h_new  # new carries (h, c), per-step output

        h_n, c_n, outputs = b.scan(zeros, zeros, projected, num_carry=2, regions=[step])
    b.output(outputs, h_n, c_n)
    return b.build()
