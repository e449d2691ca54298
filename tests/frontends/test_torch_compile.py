"""The torch.compile backend "archir" against eager PyTorch (the reference) within 1e-4: static and
dynamic shapes, graph breaks, options, no silent fallback on unsupported ops (and the opt-in eager
fallback with its warning), and registration through torch's entry point in a fresh interpreter.
"""

import subprocess
import sys
import warnings
from functools import partial

import pytest
import torch
from archir.frontends.torch import UnsupportedOpsError
from archir.frontends.torch.table import load_converters, lookup

from archir.errors import BackendError
from tests.frontends import torch_check

max_error = partial(torch_check.max_error, same_dtype=True)  # outputs keep eager's dtype too
TOLERANCE = 1e-4


class Block(torch.nn.Module):
    """Linear, layer norm, GELU, softmax attention over a sequence: the usual transformer ops."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(16, 48)
        self.norm = torch.nn.LayerNorm(16)
        self.out = torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.proj(self.norm(x)).chunk(3, dim=-1)
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + torch.nn.functional.gelu(self.out(att))


def compiled(module, **options):
    torch._dynamo.reset()
    return torch.compile(module, backend="archir", options=options or None)


@pytest.fixture
def block():
    torch.manual_seed(0)
    return Block().eval()


@pytest.mark.parametrize("backend", [pytest.param("interp", marks=pytest.mark.slow), "torch", "llvm"])
def test_block_matches_eager_at_several_sizes(block, backend):
    # The second size makes dynamo recompile with symbolic batch and length (automatic dynamic).
    fn = compiled(block, backend=backend)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for shape in [(2, 5, 16), (3, 9, 16), (1, 4, 16)]:
            x = torch.randn(*shape, generator=gen)
            error = max_error(fn(x), block(x))
            print(f"block {backend} {shape}: max abs error {error:.3g}")
            assert error <= TOLERANCE


@pytest.mark.slow
def test_dynamic_true_compiles_one_symbolic_graph(block):
    seen = []

    def spy(gm, example_inputs):
        from archir.frontends.torch.compile_backend import archir_backend

        compiled_fn = archir_backend(gm, example_inputs, options={"backend": "interp"})
        # (counted once it succeeds: dynamo may restart an analysis after calling the backend)
        seen.append([n.meta["example_value"] for n in gm.graph.find_nodes(op="placeholder")])
        return compiled_fn

    torch._dynamo.reset()
    fn = torch.compile(block, backend=spy, dynamic=True)
    with torch.no_grad():
        for n in (3, 6):
            x = torch.randn(2, n, 16)
            assert max_error(fn(x), block(x)) <= TOLERANCE
    assert len(seen) == 1, "one compilation serves both lengths"
    assert any(isinstance(v, torch.SymInt) for v in seen[0]), "sizes are symbolic"


def test_graph_breaks_compile_each_graph(block):
    captured = []

    def spy(gm, example_inputs):
        from archir.frontends.torch.compile_backend import archir_backend

        captured.append(gm)
        return archir_backend(gm, example_inputs)

    def f(x):
        y = block(x) * 2
        torch._dynamo.graph_break()
        return torch.tanh(y).sum(-1)

    torch._dynamo.reset()
    fn = torch.compile(f, backend=spy)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert max_error(fn(x), f(x)) <= TOLERANCE
    assert len(captured) == 2


def test_capture_with_autograd_on_is_refused_with_a_hint(block):
    with pytest.raises(Exception) as info:
        compiled(block)(torch.randn(2, 5, 16))
    assert "inference only" in str(info.value) and "torch.no_grad()" in str(info.value)


def unsupported_model():
    load_converters()
    # bessel_j0 has neither an archir converter nor a torch decomposition.
    assert lookup("aten.special_bessel_j0.default") is None, "pick another unsupported op"

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(torch.relu(x)) + 1

    return Odd()


def test_unsupported_op_raises_the_importer_error():
    with pytest.raises(Exception) as info, torch.no_grad():
        compiled(unsupported_model())(torch.randn(3, 4))
    cause = info.value
    while cause is not None and not isinstance(cause, UnsupportedOpsError):
        cause = cause.__cause__ or getattr(cause, "inner_exception", None)
    assert isinstance(cause, UnsupportedOpsError), f"got {info.value!r}"
    assert "aten.special_bessel_j0.default x1" in str(cause)


def test_eager_fallback_is_opt_in_and_warns_naming_the_ops():
    model, x = unsupported_model(), torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        got = compiled(model, fallback="eager")(x)
    assert max_error(got, model(x)) <= TOLERANCE
    messages = [str(w.message) for w in caught]
    assert any("runs eagerly" in m and "aten.special_bessel_j0.default" in m for m in messages), messages


@pytest.mark.parametrize("options, fragment", [
    ({"backend": "nope"}, "unknown archir backend 'nope'"),
    ({"speed": 3}, "unknown option(s) of the archir torch.compile backend: speed"),
    ({"fallback": "inductor"}, "fallback must be 'eager'"),
])
def test_bad_options_are_reported(block, options, fragment):
    with pytest.raises(Exception) as info:
        compiled(block, **options)(torch.randn(2, 5, 16))
    cause = info.value
    while cause is not None and not isinstance(cause, BackendError):
        cause = cause.__cause__ or getattr(cause, "inner_exception", None)
    assert cause is not None and fragment in str(cause), repr(info.value)


@pytest.mark.slow
def test_pipeline_option_runs_passes(block):
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert max_error(compiled(block, pipeline="cse,dce")(x), block(x)) <= TOLERANCE
        assert max_error(compiled(block, pipeline="")(x), block(x)) <= TOLERANCE


@pytest.mark.slow
def test_registered_through_the_entry_point_without_importing_archir():
    # A fresh interpreter: torch finds backend="archir" in the torch_dynamo_backends entry points.
    code = ("import sys, torch\n"
            "assert 'archir' not in sys.modules\n"
            "f = torch.compile(lambda x: torch.relu(x) * 3, backend='archir')\n"
            "x = torch.randn(4, 3)\n"
            "assert torch.allclose(f(x), torch.relu(x) * 3)\n"
            "assert 'archir.frontends.torch.compile_backend' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_import_archir_does_not_import_torch():
    code = "import sys, archir\nassert 'torch' not in sys.modules, 'archir imported torch'\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_importing_the_frontend_registers_the_backend():
    import archir.frontends.torch  # noqa: F401
    from archir.frontends.torch.compile_backend import archir_backend
    from torch._dynamo.backends.registry import list_backends, lookup_backend

    assert "archir" in list_backends()
    assert lookup_backend("archir") is archir_backend
