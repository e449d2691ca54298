"""compile_graph runs a pass pipeline first (the backend's default, or the caller's) on a copy of
the graph, and `copy_graph` gives passes a graph they may rewrite without touching the original."""

from __future__ import annotations

import numpy as np
import pytest

from archir.backend import compile_graph, default_pipeline
from archir.errors import PassError
from archir.ir import copy_graph
from archir.model_spec import load_model
from archir.pass_manager import run_pipeline
from archir.printer import print_graph
from archir.zoo import entries

ZOO = [(entry.factory, f"{path}:{entry.factory}") for entry, path in entries()]


@pytest.mark.parametrize("spec", [spec for _, spec in ZOO], ids=[name for name, _ in ZOO])
def test_copy_prints_the_same_and_passes_on_it_leave_the_original_alone(spec: str) -> None:
    graph = load_model(spec)
    text = print_graph(graph)
    copied = copy_graph(graph)
    assert print_graph(copied) == text
    assert not {id(v) for v in copied.inputs + copied.params} & {id(v) for v in graph.inputs + graph.params}
    assert copied.param_data.keys() == graph.param_data.keys()
    run_pipeline(copied, "canonicalize,fuse")
    assert print_graph(graph) == text


def test_defaults_per_backend() -> None:
    assert default_pipeline("interp") == ""
    assert default_pipeline("torch") == "canonicalize,fuse"
    assert default_pipeline("llvm") == "canonicalize,fuse"


@pytest.mark.parametrize("backend", ["torch", "llvm"])
def test_default_pipeline_fuses_and_matches_the_interpreter(backend: str) -> None:
    graph = load_model("examples/gpt2.py:gpt2")
    text = print_graph(graph)
    module = compile_graph(graph, backend)
    assert print_graph(graph) == text  # the caller's graph is not rewritten
    assert any(n.op == "fused" for n in module.graph.nodes)
    assert "pipeline: canonicalize,fuse" in str(module.report)
    ids = np.random.default_rng(0).integers(0, 64, size=(2, 8)).astype(np.int64)
    want = compile_graph(graph, "interp")(ids)[0]
    got = np.asarray(module(ids)[0])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)  # fp32, fused vs the numpy interpreter


def test_empty_pipeline_compiles_the_graph_as_given() -> None:
    graph = load_model("examples/mlp_classifier.py:mlp_classifier")
    module = compile_graph(graph, "torch", pipeline="")
    assert print_graph(module.graph) == print_graph(graph)
    assert "pipeline: (none)" in str(module.report)


def test_unknown_pass_is_a_clean_error() -> None:
    graph = load_model("examples/mlp_classifier.py:mlp_classifier")
    with pytest.raises(PassError, match="frobnicate"):
        compile_graph(graph, "torch", pipeline="canonicalize,frobnicate")
