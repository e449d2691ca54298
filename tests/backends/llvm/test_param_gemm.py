"""Graph parameters as GEMM B operands on the llvm backend: packed once per module (lower_linalg.py,
gemm_prepack.py), batch dims folded into the GEMM's rows, against the numpy interpreter (1e-4).

Covers linear (transposed weight) and matmul weights at edge sizes, symbolic batch, a scan that
reuses the weight every step, two modules of one graph text with different weights, the packed
weights released and packed again.
"""

from __future__ import annotations

import numpy as np
import pytest
from archir.backends.llvm import emit
from archir.backends.llvm.module import _release_packed_weights

from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.types import f32

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _layer_graph(k: int, n: int, seed: int):
    """linear(x[B, T, k]) with bias, then matmul by a [n, k] weight (a plain, untransposed B)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("layers")
    x = b.input("x", f32["B", "T", k])
    w1 = b.param("w1", f32[n, k], rng.standard_normal((n, k)).astype(np.float32))
    b1 = b.param("b1", f32[n], rng.standard_normal(n).astype(np.float32))
    w2 = b.param("w2", f32[n, k], rng.standard_normal((n, k)).astype(np.float32))
    h = b.tanh(b.linear(x, w1, b1))
    b.output(b.matmul(h, w2), h)
    return b.build()


def _check(compiled, graph, *inputs):
    got = compiled(*inputs)
    want = run(graph, *inputs)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.parametrize("k,n", [(1, 1), (7, 17), (33, 40), (64, 300)], ids=str)
def test_linear_and_matmul_weights(k: int, n: int) -> None:
    graph = _layer_graph(k, n, seed=0)
    compiled = compile_graph(graph, "llvm", pipeline="")
    rng = np.random.default_rng(1)
    for shape in ((1, 1), (3, 5), (2, 17), (8, 1)):  # rows 1..34: small-M and blocked paths
        _check(compiled, graph, rng.standard_normal((*shape, k)).astype(np.float32))


def test_loop_ir_folds_batch_and_packs_params() -> None:
    """One GEMM call per contraction (no batch loop around it), both naming their parameter."""
    text = emit(_layer_graph(16, 16, seed=0), "loops")
    calls = [line.strip() for line in text.splitlines() if "gemm" in line]
    assert len(calls) == 2, text
    assert all("call gemm_param.p" in c for c in calls), calls


def test_activation_b_is_not_packed() -> None:
    rng = np.random.default_rng(0)
    b = GraphBuilder("act")
    x = b.input("x", f32["M", 8])
    y = b.input("y", f32[8, 5])
    w = b.param("w", f32[5, 3], rng.standard_normal((5, 3)).astype(np.float32))
    b.output(b.matmul(b.matmul(x, y), w))
    graph = b.build()
    text = emit(graph, "loops")
    assert text.count("call gemm(") == 1 and text.count("call gemm_param.") == 1, text
    compiled = compile_graph(graph, "llvm", pipeline="")
    for m in (1, 30):
        _check(compiled, graph, rng.standard_normal((m, 8)).astype(np.float32),
               rng.standard_normal((8, 5)).astype(np.float32))


def test_transposed_rows_are_not_folded() -> None:
    """x transposed to [T, B, k]: its rows are not one even run, so the batch loop stays."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("tr")
    x = b.input("x", f32[4, 3, 6])
    w = b.param("w", f32[5, 6], rng.standard_normal((5, 6)).astype(np.float32))
    b.output(b.linear(b.transpose(x, perm=[1, 0, 2]), w))
    graph = b.build()
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)
    _check(compile_graph(graph, "llvm", pipeline=""), graph, x)


def test_scan_reuses_packed_weight() -> None:
    rng = np.random.default_rng(0)
    b = GraphBuilder("rnn")
    xs = b.input("xs", f32["T", "B", 20])
    w = b.param("w", f32[20, 20], (rng.standard_normal((20, 20)) * 0.3).astype(np.float32))
    bias = b.param("bias", f32[20], rng.standard_normal(20).astype(np.float32))

    def body(h, x):
        h_new = b.tanh(b.add(b.linear(h, w, bias), x))
        return h_new, h_new

    h, ys = b.op("scan", b.full(shape=["B", 20], value=0.0), xs, regions=[body], num_carry=1, axis=0)
    b.output(h, ys)
    graph = b.build()
    compiled = compile_graph(graph, "llvm", pipeline="")
    for shape in ((9, 16, 20), (3, 1, 20)):
        _check(compiled, graph, rng.standard_normal(shape).astype(np.float32))


def test_modules_of_one_graph_keep_their_own_weights() -> None:
    """Same graph text (one cached object code), different weights: each module packs its own."""
    graphs = [_layer_graph(24, 30, seed=s) for s in (0, 1)]
    modules = [compile_graph(g, "llvm", pipeline="") for g in graphs]
    x = np.random.default_rng(2).standard_normal((2, 3, 24)).astype(np.float32)
    for _ in range(2):  # interleaved calls: neither module sees the other's packing
        for compiled, graph in zip(modules, graphs, strict=True):
            _check(compiled, graph, x)
    assert not np.allclose(modules[0](x)[0], modules[1](x)[0])


def test_release_then_pack_again() -> None:
    graph = _layer_graph(40, 50, seed=3)
    compiled = compile_graph(graph, "llvm", pipeline="")
    x = np.random.default_rng(4).standard_normal((2, 7, 40)).astype(np.float32)
    _check(compiled, graph, x)
    _release_packed_weights(compiled._loaded)  # what the module's finalizer runs
    _check(compiled, graph, x)
