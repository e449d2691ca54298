"""The `fuse` pipeline on every zoo model: outputs unchanged on the interpreter and on the backends.

Reference: the interpreter on the unfused graph. Fused graphs must agree with it within atol =
rtol = 1e-5, on the interpreter and on each backend; a backend must also agree with itself
unfused (same tolerance). Inputs are seeded: floats standard normal, token ids over each embedding
table, masks as real prefixes (row 0 full), other integers in [0, int_high).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from archir.passes.fusion_group import fused_rule_counts

from archir import zoo
from archir.backend import available_backends, compile_graph
from archir.errors import BackendError
from archir.interpreter import run
from archir.ir import Graph, Value
from archir.parser import parse
from archir.pass_manager import run_pipeline
from archir.printer import print_graph
from archir.symbolic import evaluate
from archir.types import DType, TensorType
from archir.verifier import verify

TOL = {"atol": 1e-5, "rtol": 1e-5}
NAMES = [entry.name for entry, _ in zoo.entries()]


def clone(graph: Graph) -> Graph:
    """An independent copy (passes edit graphs in place), through the text format."""
    copy = parse(print_graph(graph))
    copy.param_data = dict(graph.param_data)
    return copy


@cache
def graphs(name: str) -> tuple[Graph, Graph, list[np.ndarray], list[np.ndarray]]:
    """(unfused, fused, inputs, the interpreter's unfused outputs) at the model's first sizes."""
    entry, path = zoo.find(name)
    _, graph = zoo.build(entry, path)
    fused = run_pipeline(clone(graph), "fuse")
    inputs = zoo_inputs(graph, entry.sizes[0], np.random.default_rng(0), entry.int_high)
    return graph, fused, inputs, run(graph, *inputs)


def _embedding_rows(graph: Graph, v: Value) -> int | None:
    rows = [n.inputs[1].type.shape[0] for n in graph.walk() if n.op == "embedding" and n.inputs[0] is v]
    return min(rows) if rows else None  # type: ignore[return-value]


def zoo_inputs(graph: Graph, sizes: dict[str, int], rng: np.random.Generator,
               int_high: int) -> list[np.ndarray]:
    arrays = []
    for v in graph.inputs:
        t = v.type
        assert isinstance(t, TensorType)
        shape = tuple(evaluate(d, sizes) for d in t.shape)
        rows = _embedding_rows(graph, v)
        if t.dtype.is_float:
            arrays.append(rng.standard_normal(shape).astype(t.dtype.numpy))
        elif rows is not None:
            arrays.append(rng.integers(0, rows, shape).astype(t.dtype.numpy))
        elif t.dtype == DType.bool or "mask" in (v.name or ""):
            lengths = rng.integers(1, shape[-1] + 1, shape[:-1])
            lengths.flat[0] = shape[-1]
            arrays.append((np.arange(shape[-1]) < lengths[..., None]).astype(t.dtype.numpy))
        else:
            arrays.append(rng.integers(0, int_high, shape).astype(t.dtype.numpy))
    return arrays


def assert_same(got: list[np.ndarray], want: list[np.ndarray], what: str) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, what
        assert np.all(np.isfinite(w)), f"{what}: the reference is not finite"
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), **TOL, err_msg=what)


@pytest.mark.parametrize("name", NAMES)
def test_fused_graph_verifies_round_trips_and_matches_the_interpreter(name: str) -> None:
    _, fused, inputs, want = graphs(name)
    verify(fused)
    assert print_graph(clone(fused)) == print_graph(fused)
    assert fused_rule_counts(fused), f"no fusion rule fired on {name}"
    assert_same(run(fused, *inputs), want, f"{name}: interpreter, fused vs unfused")


@pytest.mark.parametrize("name", ["gpt2", "gpt1", "bert", "minilm", "transformer"])
def test_every_attention_is_a_flash_group_and_no_score_matrix_is_stored(name: str) -> None:
    graph, fused, _, _ = graphs(name)
    attentions = sum(1 for n in graph.walk() if n.op == "attention")
    flash = [n for n in fused.walk() if n.op == "fused" and n.attrs["flash"]]
    assert attentions > 0 and len(flash) == attentions
    assert all(n.op != "attention" for n in fused.nodes)
    for node in fused.nodes:
        for v in node.outputs:
            t = v.type
            scores = isinstance(t, TensorType) and t.rank >= 3 and \
                all(str(d) in ("T", "S") for d in t.shape[-2:])
            assert not scores, f"{name}: {node.describe()} stores a {t} score-shaped value"


@cache
def llvm_lowers_fused_groups() -> str | None:
    """None when the llvm backend runs a fused group, else why not."""
    if "llvm" not in available_backends():
        return "the llvm backend is not installed"
    probe = parse("""
    graph @probe(%x: f32[4]) -> f32[4] {
      %y = fused(%x) {kind = "elementwise", rules = "probe"} : f32[4] body(%a: f32[4]) {
        %b = exp(%a) : f32[4]
        yield %b
      }
      return %y
    }
    """)
    try:
        compile_graph(probe, "llvm", pipeline="")(np.ones(4, np.float32))
    except BackendError as err:
        return f"the llvm backend does not lower fused groups yet: {err.message}"
    return None


# LLVM: compiling every fused zoo model takes minutes (cached on disk afterwards), hence slow.
BACKENDS = ["torch", pytest.param("llvm", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_backend_runs_the_fused_graph_like_the_unfused_one(name: str, backend: str) -> None:
    if backend == "llvm" and (reason := llvm_lowers_fused_groups()) is not None:
        pytest.skip(reason)
    graph, fused, inputs, want = graphs(name)
    got = compile_graph(fused, backend, pipeline="")(*inputs)
    assert_same(got, want, f"{name}: {backend} fused vs interpreter unfused")
    unfused = compile_graph(graph, backend, pipeline="")(*inputs)
    assert_same(got, unfused, f"{name}: {backend} fused vs {backend} unfused")
