"""Recurrent layers RNN, LSTM and GRU, each layer one `scan` over time.

The input projection of all time steps is one matmul before the loop; only the hidden-state
product runs per step. Parameter names and gate orders follow torch.nn (LSTM: i, f, g, o;
GRU: r, z, n), so torch weights load unchanged.
"""

from __future__ import annotations

from archir.frontends.dsl import functional as F
from archir.frontends.dsl.module import Module, Parameter, fan_in_uniform
from archir.frontends.dsl.tensor import Tensor


class _Recurrent(Module):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 batch_first: bool = False, bias: bool = True) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        init = fan_in_uniform(hidden_size)
        g = self.gates * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}", Parameter(g, width, init=init))
            setattr(self, f"weight_hh_l{layer}", Parameter(g, hidden_size, init=init))
            if bias:
                setattr(self, f"bias_ih_l{layer}", Parameter(g, init=init))
                setattr(self, f"bias_hh_l{layer}", Parameter(g, init=init))

    def _weights(self, layer: int) -> tuple[Parameter, Parameter, Parameter | None, Parameter | None]:
        return (self._params[f"weight_ih_l{layer}"], self._params[f"weight_hh_l{layer}"],
                self._params.get(f"bias_ih_l{layer}"), self._params.get(f"bias_hh_l{layer}"))

    def _zeros(self, x: Tensor) -> Tensor:
        batch = x.shape[0 if self.batch_first else 1]
        return F.full([batch, self.hidden_size], 0.0, x.dtype)

    def _initial(self, x: Tensor, state: Tensor | None, layer: int) -> Tensor:
        return self._zeros(x) if state is None else state[layer]

    def _layer_scan(self, x: Tensor, layer: int, carries: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        w_ih, w_hh, b_ih, b_hh = self._weights(layer)
        projected = F.linear(x, w_ih, b_ih)  # all time steps at once
        time_axis = 1 if self.batch_first else 0

        def body(state: list[Tensor], step: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
            new_state = self.cell(step[0], state, w_hh, b_hh)
            return new_state, [new_state[0]]

        final, outputs = F.scan(body, carries, [projected], axis=time_axis)
        return final, outputs[0]

    def cell(self, gx: Tensor, state: list[Tensor], w_hh: Tensor, b_hh: Tensor | None) -> list[Tensor]:
        raise NotImplementedError


def _stack(states: list[Tensor]) -> Tensor:
    layers = [s.unsqueeze(0) for s in states]
    return layers[0] if len(layers) == 1 else F.concat(*layers, axis=0)


class RNN(_Recurrent):
    """Elman RNN with tanh: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). Returns (output, h_n)."""

    def cell(self, gx: Tensor, state: list[Tensor], w_hh: Tensor, b_hh: Tensor | None) -> list[Tensor]:
        return [F.tanh(gx + F.linear(state[0], w_hh, b_hh))]

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        finals = []
        for layer in range(self.num_layers):
            (h,), x = self._layer_scan(x, layer, [self._initial(x, h0, layer)])
            finals.append(h)
        return x, _stack(finals)


class LSTM(_Recurrent):
    """Long short-term memory. Returns (output, (h_n, c_n)) like torch.nn.LSTM."""

    gates = 4

    def cell(self, gx: Tensor, state: list[Tensor], w_hh: Tensor, b_hh: Tensor | None) -> list[Tensor]:
        h, c = state
        i, f, g, o = (gx + F.linear(h, w_hh, b_hh)).chunk(4, axis=-1)
        c_new = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
        return [F.sigmoid(o) * F.tanh(c_new), c_new]

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hs, cs = [], []
        for layer in range(self.num_layers):
            h0 = self._initial(x, None if state is None else state[0], layer)
            c0 = self._initial(x, None if state is None else state[1], layer)
            (h, c), x = self._layer_scan(x, layer, [h0, c0])
            hs.append(h)
            cs.append(c)
        return x, (_stack(hs), _stack(cs))


class GRU(_Recurrent):
    """Gated recurrent unit: n = tanh(x_n + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""

    gates = 3

    def cell(self, gx: Tensor, state: list[Tensor], w_hh: Tensor, b_hh: Tensor | None) -> list[Tensor]:
        h = state[0]
        x_r, x_z, x_n = gx.chunk(3, axis=-1)
        h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, axis=-1)
        r = F.sigmoid(x_r + h_r)
        z = F.sigmoid(x_z + h_z)
        n = F.tanh(x_n + r * h_n)
        return [(1.0 - z) * n + z * h]

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        finals = []
        for layer in range(self.num_layers):
            (h,), x = self._layer_scan(x, layer, [self._initial(x, h0, layer)])
            finals.append(h)
        return x, _stack(finals)
