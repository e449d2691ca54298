"""An Elman RNN (one tanh layer, as torch.nn.RNN): h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

The input projection runs once over the whole sequence; the recurrence is one `scan` over time
whose body holds only the hidden-to-hidden step. Parameter names follow `torch.nn.RNN`.
"""

import numpy as np

from archir import Graph, GraphBuilder, Value, f32


def elman_rnn(input_size: int = 32, hidden: int = 64) -> Graph:
    """x f32[T, B, input_size], h0 f32[B, hidden] -> (outputs f32[T, B, hidden], h_n f32[B, hidden])."""
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(hidden)  # torch's RNN init: U(-1/sqrt(hidden), 1/sqrt(hidden))

    def draw(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    b = GraphBuilder("elman_rnn")
    x = b.input("x", f32["T", "B", input_size])
    h0 = b.input("h0", f32["B", hidden])
    w_ih = b.param("rnn.weight_ih_l0", f32[hidden, input_size], draw(hidden, input_size))
    w_hh = b.param("rnn.weight_hh_l0", f32[hidden, hidden], draw(hidden, hidden))
    b_ih = b.param("rnn.bias_ih_l0", f32[hidden], draw(hidden))
    b_hh = b.param("rnn.bias_hh_l0", f32[hidden], draw(hidden))

    with b.scope("rnn"):
        with b.scope("input_proj"):
            projected = b.linear(x, w_ih, b_ih)  # [T, B, hidden], every step at once

        def step(h: Value, x_t: Value) -> tuple[Value, Value]:
            with b.scope("cell"):
                h_new = b.tanh(b.add(x_t, b.linear(h, w_hh, b_hh)))
            return h_new, h_new  # new carry, per-step output

        h_n, outputs = b.scan(h0, projected, num_carry=1, regions=[step])
    b.output(outputs, h_n)
    return b.build()
