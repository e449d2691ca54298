"""DSL weights: loading a torch state_dict (also via a safetensors file), the one error that lists
every bad name, and seeded initialisation.

The reference is a torch.nn module of the same structure; outputs are compared after loading.
"""

import numpy as np
import pytest
import torch

import archir
from archir import nn
from archir.backend import compile_graph

TOLERANCE = 1e-5  # float32 on both sides


def torch_stack(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Embedding(11, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 16),
                               torch.nn.GELU(), torch.nn.Linear(16, 4))


class Gelu(nn.Module):
    def forward(self, x):
        return archir.gelu(x)


def dsl_stack() -> nn.Sequential:
    return nn.Sequential(nn.Embedding(11, 8), nn.LayerNorm(8), nn.Linear(8, 16), Gelu(), nn.Linear(16, 4))


def run_dsl(model: nn.Module, ids: np.ndarray) -> np.ndarray:
    graph = model.to_graph(x=archir.i64["B", "T"])
    return compile_graph(graph)(ids)[0]


def run_torch(model: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ids)).numpy()


@pytest.fixture
def ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 11, (2, 5))


def test_parameter_names_match_torch() -> None:
    ours = {name: tuple(p.shape) for name, p in dsl_stack().named_parameters()}
    theirs = {name: tuple(t.shape) for name, t in torch_stack().state_dict().items()}
    assert ours == theirs


def test_load_torch_state_dict_round_trip(ids: np.ndarray) -> None:
    reference = torch_stack()
    model = dsl_stack().load_state_dict(reference.state_dict())
    np.testing.assert_allclose(run_dsl(model, ids), run_torch(reference, ids), atol=TOLERANCE, rtol=TOLERANCE)
    # and back: the DSL's state_dict loads into torch unchanged
    fresh = torch_stack(seed=1)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    np.testing.assert_array_equal(run_torch(fresh, ids), run_torch(reference, ids))


def test_load_from_safetensors_file(tmp_path, ids: np.ndarray) -> None:
    """A file written by the safetensors package loads by its path (and as a mapping read back)."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    reference = torch_stack()
    path = tmp_path / "stack.safetensors"
    safetensors_torch.save_file(reference.state_dict(), str(path))
    expected = run_torch(reference, ids)
    for source in (path, str(path), safetensors_numpy.load_file(str(path))):
        model = dsl_stack().load_state_dict(source)
        np.testing.assert_allclose(run_dsl(model, ids), expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_one_error_lists_missing_unexpected_and_misshaped() -> None:
    state = dict(torch_stack().state_dict())
    del state["1.weight"], state["4.bias"]
    state["2.weight_extra"] = torch.zeros(3)
    state["0.weight"] = torch.zeros(11, 9)
    state["4.weight"] = torch.zeros(4, 15)
    with pytest.raises(archir.ArchirError) as info:
        dsl_stack().load_state_dict(state)
    message = info.value.message
    assert "missing: 1.weight, 4.bias" in message
    assert "unexpected: 2.weight_extra" in message
    assert "0.weight: expected [11, 8], got [11, 9]" in message
    assert "4.weight: expected [4, 16], got [4, 15]" in message


def test_non_strict_load_still_reports_misshaped() -> None:
    state = dict(torch_stack().state_dict())
    del state["1.weight"]
    state["0.weight"] = torch.zeros(2, 2)
    with pytest.raises(archir.ArchirError) as info:
        dsl_stack().load_state_dict(state, strict=False)
    assert "mis-shaped: 0.weight" in info.value.message
    assert "missing" not in info.value.message


def test_seeded_init_is_deterministic_and_differs_between_seeds() -> None:
    a = dsl_stack().init(seed=1).state_dict()
    b = dsl_stack().init(seed=1).state_dict()
    c = dsl_stack().init(seed=2).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    random_names = [n for n in a if not np.all(a[n] == a[n].flat[0])]  # not the constant LN init
    assert set(random_names) == {"0.weight", "2.weight", "2.bias", "4.weight", "4.bias"}
    for name in random_names:
        assert not np.array_equal(a[name], c[name]), name


def test_init_follows_torch_schemes() -> None:
    """Shapes, dtypes and value ranges of torch's defaults: U(+-1/sqrt(fan_in)) for Linear,
    N(0, 1) for Embedding, ones and zeros for LayerNorm."""
    state = dsl_stack().init(seed=0).state_dict()
    assert all(v.dtype == np.float32 for v in state.values())
    bound = 1 / np.sqrt(8)
    assert np.abs(state["2.weight"]).max() <= bound and np.abs(state["2.weight"]).max() > 0.9 * bound
    assert 0.8 < state["0.weight"].std() < 1.2
    np.testing.assert_array_equal(state["1.weight"], np.ones(8, np.float32))
    np.testing.assert_array_equal(state["1.bias"], np.zeros(8, np.float32))
