"""scan, cond, while and fused groups on the llvm backend against the interpreter, at two sizes per build.

Tolerance: floats 1e-5 relative and absolute; integer results exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.types import boolean, f32, i64


def _rnn_graph(reverse: bool):
    rng = np.random.default_rng(0)
    b = GraphBuilder("rnn")
    xs = b.input("xs", f32["B", "T", 4])
    w = b.param("w", f32[4, 4], rng.standard_normal((4, 4)).astype(np.float32) * 0.5)
    h0 = b.full(shape=["B", 4], value=0.0)
    c0 = b.full(shape=["B", 4], value=1.0)

    def body(h, c, x):
        h_new = b.tanh(b.add(b.matmul(h, w), x))
        return c, h_new, b.mul(h_new, c)  # swaps the carries' roles: the write-back must stage

    h, c, ys = b.op("scan", h0, c0, xs, regions=[body], num_carry=2, axis=1, reverse=reverse)
    b.output(h, c, ys)
    return b.build()


def _cond_graph():
    b = GraphBuilder("branch")
    x = b.input("x", f32["N"])
    flag = b.gt(b.sum(x), b.full(shape=[], value=0.0))
    y = b.op("cond", flag, x, regions=[lambda v: b.exp(v), lambda v: b.neg(b.mul(v, v))])
    b.output(y)
    return b.build()


def _while_graph():
    b = GraphBuilder("halve")
    x = b.input("x", f32["N"])
    n = b.input("n", i64[()])

    def cond(v, k):
        return b.lt(k, b.full(shape=[], value=5.0, dtype="i64"))

    def body(v, k):
        return b.mul(v, b.full(shape=[], value=0.5)), b.add(k, b.full(shape=[], value=1.0, dtype="i64"))

    v, k = b.op("while", x, n, regions=[cond, body])
    b.output(v, k)
    return b.build()


def _check(graph, *inputs):
    got = compile_graph(graph, "llvm", pipeline="")(*inputs)
    want = run(graph, *inputs)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_one_build_two_sizes(reverse):
    graph = _rnn_graph(reverse)
    compiled = compile_graph(graph, "llvm", pipeline="")
    rng = np.random.default_rng(1)
    for shape in ((2, 5, 4), (3, 1, 4)):
        xs = rng.standard_normal(shape).astype(np.float32)
        for g, w in zip(compiled(xs), run(graph, xs), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_cond_takes_both_branches():
    graph = _cond_graph()
    _check(graph, np.array([1.0, 2.0, -0.5], np.float32))
    _check(graph, np.array([-1.0, -2.0], np.float32))


@pytest.mark.parametrize("start", [0, 3, 7])
def test_while_runs_a_dynamic_trip_count(start):
    _check(_while_graph(), np.arange(4, dtype=np.float32), np.array(start, np.int64))


def test_while_with_bool_carry():
    b = GraphBuilder("flags")
    x = b.input("x", boolean["N"])
    k = b.input("k", i64[()])
    one = b.full(shape=[], value=1.0, dtype="i64")
    v, _ = b.op("while", x, k, regions=[lambda v, k: b.lt(k, b.full(shape=[], value=3.0, dtype="i64")),
                                       lambda v, k: (b.logical_not(v), b.add(k, one))])
    b.output(v)
    _check(b.build(), np.array([True, False, True]), np.array(0, np.int64))


def test_fused_group_runs_its_body():
    b = GraphBuilder("group")
    x = b.input("x", f32["N", 4])
    y = b.input("y", f32[4])
    out, total = b.op("fused", x, y, regions=[lambda u, v: (b.tanh(b.add(u, v)), b.sum(u, axes=[1]))],
                      kind="elementwise", rules="test")
    b.output(out, total)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    _check(b.build(), x, y)
