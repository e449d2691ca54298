"""DSL RNN, LSTM and GRU against torch.nn.RNN/LSTM/GRU holding the same weights (the torch
state_dict loaded by name), over layers, directions, batch_first and initial states; and the
structure of their graphs: one `scan` per layer and direction, never the time steps unrolled.
"""

import numpy as np
import pytest
import torch

import archir
from archir import nn
from archir.backend import compile_graph

TOLERANCE = 1e-5  # float32 on both sides
INPUT, HIDDEN, BATCH = 5, 7, 3
KINDS = {"rnn": (nn.RNN, torch.nn.RNN), "lstm": (nn.LSTM, torch.nn.LSTM), "gru": (nn.GRU, torch.nn.GRU)}
CONFIGS = [  # (num_layers, bidirectional, batch_first)
    (1, False, False), (2, False, True), (1, True, False), (2, True, True),
]


def flat(result: tuple) -> tuple:
    """(output, h_n) or (output, (h_n, c_n)) as a flat tuple: every tensor a graph output."""
    out, final = result
    return (out, *final) if isinstance(final, tuple) else (out, final)


class Run(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer

    def forward(self, x):
        return flat(self.layer(x))


class RunFrom(Run):
    def forward(self, x, h0):
        return flat(self.layer(x, h0))


class RunLSTMFrom(Run):
    def forward(self, x, h0, c0):
        return flat(self.layer(x, (h0, c0)))


def make_pair(kind: str, layers: int, bidirectional: bool, batch_first: bool
              ) -> tuple[nn.Module, torch.nn.Module]:
    ours_cls, torch_cls = KINDS[kind]
    torch.manual_seed(layers * 10 + bidirectional * 2 + batch_first)
    reference = torch_cls(INPUT, HIDDEN, num_layers=layers, bidirectional=bidirectional,
                          batch_first=batch_first).eval()
    ours = ours_cls(INPUT, HIDDEN, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    return ours.load_state_dict(reference.state_dict()), reference


def input_type(batch_first: bool, time: str | int = "T") -> archir.TensorType:
    return archir.f32["B", time, INPUT] if batch_first else archir.f32[time, "B", INPUT]


def torch_outputs(reference: torch.nn.Module, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
    init = [torch.from_numpy(s) for s in state]
    with torch.no_grad():
        if not init:
            out, final = reference(torch.from_numpy(x))
        else:
            out, final = reference(torch.from_numpy(x), tuple(init) if len(init) == 2 else init[0])
    finals = list(final) if isinstance(final, tuple) else [final]
    return [out.numpy()] + [f.numpy() for f in finals]


@pytest.mark.parametrize(("layers", "bidirectional", "batch_first"), CONFIGS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch_with_same_weights(kind: str, layers: int, bidirectional: bool,
                                         batch_first: bool) -> None:
    layer, reference = make_pair(kind, layers, bidirectional, batch_first)
    graph = Run(layer).to_graph(x=input_type(batch_first))
    compiled = compile_graph(graph)
    rng = np.random.default_rng(0)
    for time in (1, 5):
        shape = (BATCH, time, INPUT) if batch_first else (time, BATCH, INPUT)
        x = rng.standard_normal(shape).astype(np.float32)
        for ours, theirs in zip(compiled(x), torch_outputs(reference, x, []), strict=True):
            np.testing.assert_allclose(ours, theirs, atol=TOLERANCE, rtol=TOLERANCE)


@pytest.mark.parametrize("backend", ["interp", "torch"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_given_initial_state(kind: str, backend: str) -> None:
    layer, reference = make_pair(kind, 2, True, False)
    model = RunLSTMFrom(layer) if kind == "lstm" else RunFrom(layer)
    state_type = archir.f32[4, "B", HIDDEN]  # [layers * directions, B, H], as torch
    states = {"h0": state_type, "c0": state_type} if kind == "lstm" else {"h0": state_type}
    graph = model.to_graph(x=input_type(False), **states)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, BATCH, INPUT)).astype(np.float32)
    state = [rng.standard_normal((4, BATCH, HIDDEN)).astype(np.float32) for _ in states]
    outputs = compile_graph(graph, backend)(x, *state)
    for ours, theirs in zip(outputs, torch_outputs(reference, x, state), strict=True):
        np.testing.assert_allclose(np.asarray(ours), theirs, atol=TOLERANCE, rtol=TOLERANCE)


def node_count(graph: archir.Graph) -> int:
    return sum(1 for _ in graph.walk())


@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
@pytest.mark.parametrize("kind", list(KINDS))
def test_graph_holds_one_scan_per_layer_and_direction(kind: str, layers: int, bidirectional: bool) -> None:
    model = Run(make_pair(kind, layers, bidirectional, False)[0])
    short = model.to_graph(x=input_type(False, 4))
    long = model.to_graph(x=input_type(False, 40))
    assert node_count(short) == node_count(long)  # the time steps are not unrolled
    scans = [n for n in short.nodes if n.op == "scan"]
    assert len(scans) == layers * (2 if bidirectional else 1)
    assert sum(bool(n.attrs["reverse"]) for n in scans) == (layers if bidirectional else 0)
    # the body holds one step only: one hidden-state projection
    for scan in scans:
        body_ops = [n.op for n in scan.regions[0].nodes]
        assert body_ops.count("linear") + body_ops.count("matmul") == 1, body_ops
