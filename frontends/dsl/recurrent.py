"""Recurrent layers RNN, LSTM and GRU, each layer and direction one `scan` over time, and a
GRUCell for hand-written loops.

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
                 batch_first: bool = False, bias: bool = True, bidirectional: bool = False) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.directions = ("", "_reverse") if bidirectional else ("",)  # torch's name suffixes
        init = fan_in_uniform(hidden_size)
        g = self.gates * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * len(self.directions)
            for suffix in self.directions:
                name = f"l{layer}{suffix}"
                setattr(self, f"weight_ih_{name}", Parameter(g, width, init=init))
                setattr(self, f"weight_hh_{name}", Parameter(g, hidden_size, init=init))
                if bias:
                    setattr(self, f"bias_ih_{name}", Parameter(g, init=init))
                    setattr(self, f"bias_hh_{name}", Parameter(g, init=init))

    def _weights(self, name: str) -> tuple[Parameter, Parameter, Parameter | None, Parameter | None]:
        return (self._params[f"weight_ih_{name}"], self._params[f"weight_hh_{name}"],
                self._params.get(f"bias_ih_{name}"), self._params.get(f"bias_hh_{name}"))

    def _slots(self, layer: int) -> range:
        """Where this layer's directions sit in h_0 / h_n ([layers * directions, B, H], as torch)."""
        n = len(self.directions)
        return range(layer * n, layer * n + n)

    def _zeros(self, x: Tensor) -> Tensor:
        batch = x.shape[0 if self.batch_first else 1]
        return F.full([batch, self.hidden_size], 0.0, x.dtype)

    def _initial(self, x: Tensor, state: Tensor | None, slot: int) -> Tensor:
        return self._zeros(x) if state is None else state[slot]

    def _layer(self, x: Tensor, layer: int, inits: list[list[Tensor]]) -> tuple[list[list[Tensor]], Tensor]:
        """One layer in each direction (the reverse one a scan from the end): the final carries
        per direction and the outputs, concatenated over directions on the feature axis."""
        finals, outputs = [], []
        for d, suffix in enumerate(self.directions):
            final, out = self._layer_scan(x, f"l{layer}{suffix}", inits[d], reverse=d == 1)
            finals.append(final)
            outputs.append(out)
        return finals, outputs[0] if len(outputs) == 1 else F.concat(*outputs, axis=-1)

    def _layer_scan(self, x: Tensor, name: str, carries: list[Tensor],
                    reverse: bool = False) -> tuple[list[Tensor], Tensor]:
        w_ih, w_hh, b_ih, b_hh = self._weights(name)
        projected = F.linear(x, w_ih, b_ih)  # all time steps at once
        time_axis = 1 if self.batch_first else 0

        def body(state: list[Tensor], step: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
            new_state = self.cell(step[0], state, w_hh, b_hh)
            return new_state, [new_state[0]]

        final, outputs = F.scan(body, carries, [projected], axis=time_axis, reverse=reverse)
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
            states, x = self._layer(x, layer, [[self._initial(x, h0, i)] for i in self._slots(layer)])
            finals += [s[0] for s in states]
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
        h0, c0 = (None, None) if state is None else state
        hs, cs = [], []
        for layer in range(self.num_layers):
            inits = [[self._initial(x, h0, i), self._initial(x, c0, i)] for i in self._slots(layer)]
            states, x = self._layer(x, layer, inits)
            hs += [s[0] for s in states]
            cs += [s[1] for s in states]
        return x, (_stack(hs), _stack(cs))


class GRU(_Recurrent):
    """Gated recurrent unit: n = tanh(x_n + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""

    gates = 3

    def cell(self, gx: Tensor, state: list[Tensor], w_hh: Tensor, b_hh: Tensor | None) -> list[Tensor]:
        return [_gru_update(gx, F.linear(state[0], w_hh, b_hh), state[0])]

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        finals = []
        for layer in range(self.num_layers):
            states, x = self._layer(x, layer, [[self._initial(x, h0, i)] for i in self._slots(layer)])
            finals += [s[0] for s in states]
        return x, _stack(finals)


class GRUCell(Module):
    """One GRU step h' = cell(x, h), for loops written by hand (a `scan` body such as an attention
    decoder's). Parameter names follow torch.nn.GRUCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        init = fan_in_uniform(hidden_size)
        self.weight_ih = Parameter(3 * hidden_size, input_size, init=init)
        self.weight_hh = Parameter(3 * hidden_size, hidden_size, init=init)
        self.bias_ih = Parameter(3 * hidden_size, init=init) if bias else None
        self.bias_hh = Parameter(3 * hidden_size, init=init) if bias else None

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return _gru_update(F.linear(x, self.weight_ih, self.bias_ih),
                           F.linear(h, self.weight_hh, self.bias_hh), h)


def _gru_update(gx: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """The GRU state update from the input projection gx and the hidden projection gh (r, z, n)."""
    x_r, x_z, x_n = gx.chunk(3, axis=-1)
    h_r, h_z, h_n = gh.chunk(3, axis=-1)
    r = F.sigmoid(x_r + h_r)
    z = F.sigmoid(x_z + h_z)
    n = F.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h
