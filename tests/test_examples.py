"""The example graphs in examples/: each verifies, round-trips through `.air` text and its `.npz`
sidecar, runs on the interpreter at two sizes, and matches an independent PyTorch reference.

Examples are found by discovery (public functions of examples/*.py annotated `-> Graph`), so a new
example gets the structural checks at once; its PyTorch reference goes in REFERENCES below.
"""

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir import Graph
from archir.interpreter import run
from archir.parser import parse
from archir.printer import print_graph
from archir.serialize import load, save
from archir.types import DType, TensorType
from archir.verifier import verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SIZES = ({"B": 2, "T": 5}, {"B": 3, "T": 9})  # every symbol of every example is bound here
TOLERANCE = 1e-4  # atol and rtol against the PyTorch references (float32 on both sides)


def discover() -> dict[str, Callable[[], Graph]]:
    found: dict[str, Callable[[], Graph]] = {}
    for path in sorted(EXAMPLES.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"examples.{path.stem}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            returns = inspect.signature(fn).return_annotation
            if fn.__module__ == module.__name__ and not name.startswith("_") \
                    and returns in (Graph, "Graph"):
                found[f"{path.stem}:{name}"] = fn
    return found


EXAMPLE_FNS = discover()
_CACHE: dict[str, Graph] = {}


def example(key: str) -> Graph:
    """Each example is built once per session; the tests only read it."""
    if key not in _CACHE:
        _CACHE[key] = EXAMPLE_FNS[key]()
    return _CACHE[key]


def random_inputs(graph: Graph, sizes: dict[str, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for v in graph.inputs:
        assert isinstance(v.type, TensorType)
        missing = v.type.free_symbols() - sizes.keys()
        assert not missing, f"SIZES binds no value to {sorted(missing)}: add them"
        shape = v.type.concrete_shape(sizes)
        assert v.type.dtype == DType.f32, "random_inputs only makes f32 inputs so far"
        arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def test_discovery_finds_the_documented_examples():
    expected = {"mlp:mlp", "elman_rnn:elman_rnn", "lstm:lstm", "transformer_block:transformer_block",
                "control_flow:control_flow"}
    assert expected <= set(EXAMPLE_FNS)


def test_every_example_has_a_reference():
    assert set(EXAMPLE_FNS) == set(REFERENCES), "add a PyTorch reference for each new example"


@pytest.mark.parametrize("key", sorted(EXAMPLE_FNS))
def test_example_is_well_formed(key):
    graph = example(key)
    verify(graph)
    assert graph.param_data, "examples carry seeded weights"
    for p in graph.params:
        data = graph.param_data[p.name]
        assert data.dtype == np.float32 and np.all(np.isfinite(data))
        assert np.abs(data).max() < 10, f"{p.name} is not scaled sensibly"
        assert "." in p.name, f"parameter {p.name} should be scoped like fc1.weight"
    assert all(node.name for node in graph.walk()), "every node comes from a named scope"


@pytest.mark.parametrize("key", sorted(EXAMPLE_FNS))
def test_example_round_trips(key, tmp_path):
    graph = example(key)
    text = print_graph(graph)
    assert print_graph(parse(text)) == text
    loaded = load(save(graph, tmp_path / "model.air"))
    verify(loaded)
    assert print_graph(loaded) == text
    assert loaded.param_data.keys() == graph.param_data.keys()
    for name, data in graph.param_data.items():
        assert loaded.param_data[name].dtype == data.dtype
        np.testing.assert_array_equal(loaded.param_data[name], data)
    inputs = random_inputs(graph, SIZES[0], seed=1)
    for got, want in zip(run(loaded, *inputs), run(graph, *inputs), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("key", sorted(EXAMPLE_FNS))
def test_example_matches_torch(key, sizes):
    graph = example(key)
    inputs = random_inputs(graph, sizes, seed=sum(sizes.values()))
    got = run(graph, *inputs)
    for value, array in zip(graph.outputs, got, strict=True):
        assert isinstance(value.type, TensorType)
        assert array.shape == value.type.concrete_shape(sizes)
        assert array.dtype == value.type.dtype.numpy
    weights = {k: torch.from_numpy(v) for k, v in graph.param_data.items()}
    with torch.no_grad():
        want = REFERENCES[key](weights, *(torch.from_numpy(a) for a in inputs))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=TOLERANCE, rtol=TOLERANCE)


# -- independent PyTorch references, each taking (weights by name, *inputs) -------------------
Tensors = tuple[torch.Tensor, ...]


def mlp_reference(w: dict[str, torch.Tensor], x: torch.Tensor) -> Tensors:
    h = F.gelu(F.linear(x, w["fc1.weight"], w["fc1.bias"]), approximate="tanh")
    return (x + F.linear(h, w["fc2.weight"], w["fc2.bias"]),)


def _torch_module(module: torch.nn.Module, w: dict[str, torch.Tensor], prefix: str) -> torch.nn.Module:
    state = {k.removeprefix(prefix): v for k, v in w.items()}
    module.load_state_dict(state, strict=True)
    return module


def elman_rnn_reference(w: dict[str, torch.Tensor], x: torch.Tensor, h0: torch.Tensor) -> Tensors:
    rnn = _torch_module(torch.nn.RNN(x.shape[-1], h0.shape[-1]), w, "rnn.")
    outputs, h_n = rnn(x, h0[None])
    return outputs, h_n[0]


def lstm_reference(w: dict[str, torch.Tensor], x: torch.Tensor) -> Tensors:
    hidden = w["lstm.weight_hh_l0"].shape[1]
    lstm = _torch_module(torch.nn.LSTM(x.shape[-1], hidden), w, "lstm.")
    outputs, (h_n, c_n) = lstm(x)
    return outputs, h_n[0], c_n[0]


def transformer_block_reference(w: dict[str, torch.Tensor], x: torch.Tensor, heads: int = 4) -> Tensors:
    batch, seq, dim = x.shape

    def linear(name: str, h: torch.Tensor) -> torch.Tensor:
        return h @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def norm(name: str, h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(h, (dim,), w[f"{name}.weight"], w[f"{name}.bias"], eps=1e-5)

    def heads_of(h: torch.Tensor) -> torch.Tensor:
        return h.view(batch, seq, heads, dim // heads).transpose(1, 2)

    h = norm("ln_1", x)
    q, k, v = (heads_of(linear(f"attn.{p}_proj", h)) for p in "qkv")
    scores = q @ k.transpose(-1, -2) / (dim // heads) ** 0.5
    future = torch.ones(seq, seq, dtype=torch.bool).triu(1)
    attended = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ v
    x = x + linear("attn.out_proj", attended.transpose(1, 2).reshape(batch, seq, dim))
    h = F.gelu(linear("mlp.fc", norm("ln_2", x)), approximate="tanh")
    return (x + linear("mlp.proj", h),)


def control_flow_reference(w: dict[str, torch.Tensor], x: torch.Tensor, tol: float = 1e-5,
                           max_steps: int = 50) -> Tensors:
    injected = x @ w["inject.weight"].T + w["inject.bias"]
    z = torch.zeros(x.shape[0], w["solver.weight"].shape[0])
    change, steps = float("inf"), 0
    while change > tol and steps < max_steps:
        z_new = torch.tanh(z @ w["solver.weight"].T + injected)
        change, z, steps = (z_new - z).abs().max().item(), z_new, steps + 1
    readout = z if change <= tol else torch.tanh(injected)
    return readout @ w["readout.weight"].T, torch.tensor(steps)


REFERENCES: dict[str, Callable[..., Tensors]] = {
    "mlp:mlp": mlp_reference,
    "elman_rnn:elman_rnn": elman_rnn_reference,
    "lstm:lstm": lstm_reference,
    "transformer_block:transformer_block": transformer_block_reference,
    "control_flow:control_flow": control_flow_reference,
}


def test_control_flow_fallback_branch():
    """With a budget too small to converge, `cond` takes the fallback branch; check both agree."""
    from examples.control_flow import control_flow

    graph = control_flow(max_steps=2)
    x = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    y, steps = run(graph, x)
    weights = {k: torch.from_numpy(v) for k, v in graph.param_data.items()}
    want_y, want_steps = control_flow_reference(weights, torch.from_numpy(x), max_steps=2)
    assert int(steps) == int(want_steps) == 2
    np.testing.assert_allclose(y, want_y.numpy(), atol=TOLERANCE, rtol=TOLERANCE)
    converged_y, converged_steps = run(example("control_flow:control_flow"), x)
    assert 2 < int(converged_steps) < 50
    assert not np.allclose(y, converged_y, atol=1e-3), "the two branches should differ"
