"""Every zoo reference's torch module (tests/references/<name>.py `torch_module`) imported with
`archir.from_torch` and run on the interp, torch and llvm backends against the eager module
(the independent reference) within 1e-4, at the zoo entry's two sizes.

The DSL graph's symbolic input dims are exported as `Dim`s of the same name, so one import serves
both sizes; the example inputs for export are those of the first size with no dim below 2 (export
specialises a dim of 1). torch.export fixes the sequence length of torch.nn.RNN, LSTM and GRU
(their ATen ops are decomposed into a loop unrolled over it) and of the Python loop over target
positions in the seq2seq decoder, so `elman_lm`, `lstm_lm`, `gru_lm` (T) and `seq2seq_attention`
(S and T) keep only B dynamic and are imported at each size separately. The real-weight MiniLM,
the Transformer, the recurrent models and the Hugging Face GPT-1, GPT-2 and BERT are slow to
export and compile (5-45 s each), so they are marked slow; the fast set takes about 20 s (30 s
with a cold llvm object cache).
"""

from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from torch.export import Dim

import archir
from archir import zoo
from archir.backend import compile_graph
from archir.ir import Graph
from archir.symbolic import SymExpr, substitute
from tests.frontends.torch_check import max_error

TOLERANCE = 1e-4
BACKENDS = ("interp", "torch", "llvm")
SLOW = {"minilm", "transformer", "lstm_lm", "gru_lm", "elman_lm", "seq2seq_attention", "bert", "gpt1",
        "gpt2"}
# Dims torch.export cannot keep symbolic (a recurrence unrolled over them): fixed per import.
STATIC_DIMS = {"elman_lm": {"T"}, "lstm_lm": {"T"}, "gru_lm": {"T"}, "seq2seq_attention": {"S", "T"}}
# Lower bounds torch.export needs to keep a dim symbolic: ResNet's last stage (stride 16) must be
# wider than one pixel, or broadcasting in its blocks would take another branch.
DIM_MIN = {"resnet": {"H": 17, "W": 17}}
ENTRIES = {entry.name: (entry, path) for entry, path in zoo.entries()}


def cases() -> list[Any]:
    return [pytest.param(name, backend, id=f"{name}-{backend}",
                         marks=[pytest.mark.slow] if name in SLOW else [])
            for name in ENTRIES for backend in BACKENDS]


@cache
def zoo_case(name: str) -> tuple[Any, Graph, torch.nn.Module, Any, list[list[np.ndarray]]]:
    """The DSL model and graph, the reference's eager module with its argument maker, and the
    zoo's inputs at each size (drawn as `zoo.check` draws them)."""
    entry, path = ENTRIES[name]
    model, graph = zoo.build(entry, path)
    ref_module = zoo.load_module(zoo.REFERENCES / f"{name}.py", "reference")
    net, torch_args = ref_module.torch_module(model)
    make = getattr(ref_module, "make_inputs", None)
    inputs = []
    for i, sizes in enumerate(entry.sizes):
        rng = np.random.default_rng(i)
        inputs.append(make(graph, sizes, rng) if make else
                      zoo.random_inputs(graph, sizes, rng, entry.int_high))
    return model, graph, net, torch_args, inputs


def dynamic_shapes(name: str, graph: Graph, max_len: int | None) -> tuple[dict[int, Dim], ...]:
    """A torch.export Dim, named as in the DSL, for each symbolic input dim not static for `name`.

    The sequence dim T stays below a learned position table's length (HF GPT-1 guards T != it)."""
    dims = {"T": Dim("T", max=max_len - 1)} if max_len else {}
    for dim, low in DIM_MIN.get(name, {}).items():
        dims[dim] = Dim(dim, min=low)
    spec = []
    for value in graph.inputs:
        axes = {}
        for axis, d in enumerate(value.tensor_type.shape):
            if isinstance(d, SymExpr) and str(d) not in STATIC_DIMS.get(name, set()):
                axes[axis] = dims.setdefault(str(d), Dim(str(d)))
        spec.append(axes)
    return tuple(spec)


def export_size(name: str) -> int:
    """The first size whose dims are all at least 2."""
    entry, _ = ENTRIES[name]
    for i, sizes in enumerate(entry.sizes):
        if min(sizes.values()) >= 2:
            return i
    raise ValueError(f"{name}: every zoo size has a dim below 2, which torch.export specialises")


@cache
def imported(name: str, size: int | None) -> Graph:
    """One import for every size (`size` None), or the import at one size when dims are static."""
    model, graph, net, torch_args, inputs = zoo_case(name)
    example = torch_args(*inputs[export_size(name) if size is None else size])
    spec = dynamic_shapes(name, graph, getattr(model.config, "max_len", None))
    return archir.from_torch(net, example, spec)


@cache
def compiled(name: str, size: int | None, backend: str) -> Any:
    return compile_graph(imported(name, size), backend)


@pytest.mark.parametrize(("name", "backend"), cases())
def test_reference_module_imports_and_matches_eager(name, backend):
    entry, _ = ENTRIES[name]
    _, _, net, torch_args, inputs = zoo_case(name)
    static = name in STATIC_DIMS
    for i, arrays in enumerate(inputs):
        with torch.no_grad():
            want = net(*torch_args(*arrays))
        got = compiled(name, i if static else None, backend)(*arrays)
        error = max_error(got, want)
        print(f"{name} {backend} {entry.sizes[i]}: max abs error {error:.3g}")
        assert error <= TOLERANCE, f"{name} on {backend} at {entry.sizes[i]}: {error:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
                                  for n in ENTRIES])
def test_input_dims_keep_the_dsl_symbols(name):
    """The imported graph's inputs carry the DSL graph's symbols (static ones bound to the size)."""
    entry, _ = ENTRIES[name]
    graph = zoo_case(name)[1]
    size = 0 if name in STATIC_DIMS else None
    bound = {k: v for k, v in entry.sizes[0].items() if k in STATIC_DIMS.get(name, set())}
    want = [str(v.tensor_type.with_shape(substitute(d, bound) for d in v.tensor_type.shape))
            for v in graph.inputs]
    assert [str(v.tensor_type) for v in imported(name, size).inputs] == want


def test_every_zoo_entry_has_a_torch_module():
    assert len(ENTRIES) >= 15
    for name in ENTRIES:
        reference = zoo.load_module(zoo.REFERENCES / f"{name}.py", "reference")
        assert callable(getattr(reference, "torch_module", None)), name


@pytest.mark.parametrize("ord", [2, 1, float("inf")])
def test_vector_norm_matches_eager(ord):
    """aten.linalg_vector_norm (MiniLM's Normalize), converted in aten_extra.py, over one axis."""

    class Norm(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.vector_norm(x, ord, dim=-1, keepdim=True) + x

    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    graph = archir.from_torch(Norm(), (x,), ({0: Dim("B")},))
    want = Norm()(x)
    for backend in BACKENDS:
        assert max_error(compile_graph(graph, backend)(x.numpy()), want) <= TOLERANCE


@pytest.mark.parametrize("dims", [(1,), (0, 2)])
def test_flip_matches_eager(dims):
    """aten.flip (a bidirectional GRU's decomposition), converted in aten_extra.py, along a
    symbolic and a static axis."""

    class Flip(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.flip(x, dims) * 2

    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    graph = archir.from_torch(Flip(), (x,), ({0: Dim("B")},))
    for batch in (3, 6):
        x = torch.randn(batch, 4, 5, generator=torch.Generator().manual_seed(batch))
        for backend in BACKENDS:
            assert max_error(compile_graph(graph, backend)(x.numpy()), Flip()(x)) <= TOLERANCE
