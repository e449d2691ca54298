"""The llvm backend's entry point: argument checks before the native call, symbolic sizes with
one build, torch inputs, error codes, the emit stages. Tolerance: 1e-5 against the interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest
from archir.backends.llvm import emit
from hypothesis import given, settings
from hypothesis import strategies as st

from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.errors import ArchirError, ArgumentError
from archir.interpreter import run
from archir.types import f32, i64


def _graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp")
    x = b.input("x", f32["B", 8])
    ids = b.input("ids", i64["B"])
    w = b.param("w", f32[6, 8], rng.standard_normal((6, 8)).astype(np.float32))
    table = b.param("table", f32[5, 6], rng.standard_normal((5, 6)).astype(np.float32))
    h = b.gelu(b.linear(x, w))
    b.output(b.softmax(b.add(h, b.embedding(ids, table)), axis=-1), b.sum(h, axes=[0]))
    return b.build()


@pytest.fixture(scope="module")
def compiled():
    return compile_graph(_graph(), "llvm", pipeline="")


def _inputs(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 8)).astype(np.float32), rng.integers(0, 5, batch)


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_one_build_serves_all_sizes(compiled, batch):
    args = _inputs(batch)
    for g, w in zip(compiled(*args), run(compiled.graph, *args), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_keyword_and_torch_arguments(compiled):
    import torch

    x, ids = _inputs(2)
    want = run(compiled.graph, x, ids)
    got = compiled(ids=torch.from_numpy(ids), x=torch.from_numpy(x))
    assert isinstance(got[0], torch.Tensor)
    np.testing.assert_allclose(got[0].numpy(), want[0], rtol=1e-5, atol=1e-5)


def test_calls_from_several_threads_at_once(compiled):
    from concurrent.futures import ThreadPoolExecutor

    cases = [_inputs(batch, seed) for seed, batch in enumerate([1, 3, 17, 3, 5, 17])]
    wants = [run(compiled.graph, *args) for args in cases]

    def hammer(k: int) -> float:
        worst = 0.0
        for _ in range(50):
            for args, want in zip(cases[k:] + cases[:k], wants[k:] + wants[:k], strict=True):
                got = compiled(*args)
                worst = max(worst, *(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)))
        return worst

    with ThreadPoolExecutor(4) as pool:
        assert max(pool.map(hammer, range(4))) <= 1e-5


def test_non_contiguous_input(compiled):
    x, ids = _inputs(4)
    x_t = np.asfortranarray(x)
    np.testing.assert_allclose(compiled(x_t, ids)[0], run(compiled.graph, x, ids)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((2, 8), np.float64), np.zeros(2, np.int64)), "dtype"),
    ((np.zeros((2, 7), np.float32), np.zeros(2, np.int64)), "shape"),
    ((np.zeros((2, 8), np.float32), np.zeros(3, np.int64)), "B is 2"),
    ((np.zeros((2, 8), np.float32),), "missing"),
    ((np.zeros((2, 8), np.float32), np.zeros(2, np.int64), np.zeros(1)), "takes 2 inputs"),
])
def test_bad_arguments_raise_before_the_call(compiled, args, match):
    with pytest.raises(ArgumentError, match=match):
        compiled(*args)


_DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.float16]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=0, max_size=3), st.sampled_from(_DTYPES),
       st.lists(st.integers(0, 9), min_size=0, max_size=2), st.sampled_from(_DTYPES), st.integers(0, 3))
def test_fuzzed_arguments_never_crash(compiled, x_shape, x_dtype, id_shape, id_dtype, count):
    """Random shapes, dtypes and counts: either a correct result or an ArchirError, never a crash."""
    args = [np.zeros(x_shape, x_dtype), np.full(id_shape, 4, id_dtype), np.zeros(2)][:count]
    try:
        outputs = compiled(*args)
    except ArchirError:
        return
    want = run(compiled.graph, *args)
    for g, w in zip(outputs, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_out_of_range_id_reports_the_op(compiled):
    x, _ = _inputs(2)
    with pytest.raises(ArchirError, match="embedding index out of range"):
        compiled(x, np.array([0, 5]))


def test_emit_stages():
    graph = _graph()
    loops = emit(graph, "loops")
    assert "func @mlp(dims: [B])" in loops and "call gemm_param." in loops  # w packed once
    assert "define" in emit(graph, "llvm")
    assert "ymm" in emit(graph, "asm")  # AVX2 vectors on this host (8 floats)
    with pytest.raises(ArchirError, match="unknown llvm stage"):
        emit(graph, "ptx")


def test_report_gives_the_arena_as_a_formula_of_the_dims(compiled):
    from archir.symbolic import evaluate

    layout = compiled.layout
    assert f"arena: {len(layout.temps)} temps" in str(compiled.report)
    for batch in (1, 7, 300):
        exact = layout.arena_bytes({"B": batch})
        formula = evaluate(layout.arena_formula(), {"B": batch})
        assert formula <= exact < formula + 64 * len(layout.temps)  # each temp is rounded up to 64 B
