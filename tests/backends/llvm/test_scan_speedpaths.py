"""The scan lowering's in-place paths on the llvm backend: carries in two alternating slots, new
carries and per-step outputs written straight into place by their producers, copies only where a
result cannot be (region arguments, outer values, a value yielded twice, strided output slices).

References: torch.nn.LSTM / GRU for the DSL layers (atol = rtol = 1e-5 over at most 9 steps), the
numpy interpreter for hand-built scans (atol = rtol = 1e-5); the loop IR for which copies remain.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archir.backends.llvm.loops import Call, Load, Loop, Stmt, Store
from archir.backends.llvm.lower import lower_graph

from archir import nn
from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.pass_manager import run_pipeline
from archir.types import f32

TOL = {"atol": 1e-5, "rtol": 1e-5}


class _Flat(nn.Module):
    """A recurrent layer on x alone, its outputs flat: (output, h_n[, c_n])."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer

    def forward(self, x):
        out, state = self.layer(x)
        return (out, *state) if isinstance(state, tuple) else (out, state)


def _lstm_pair(batch_first: bool, bidirectional: bool) -> tuple[torch.nn.LSTM, _Flat]:
    torch.manual_seed(0)
    ref = torch.nn.LSTM(6, 8, batch_first=batch_first, bidirectional=bidirectional)
    ours = nn.LSTM(6, 8, batch_first=batch_first, bidirectional=bidirectional)
    ours.load_state_dict({k: v.detach() for k, v in ref.state_dict().items()})
    return ref, _Flat(ours)


def _trace(module: nn.Module, shape: tuple[int, ...]):
    return nn.trace(module, {"x": f32[shape]})


@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("batch_first, bidirectional", [(False, False), (True, False), (False, True)])
def test_dsl_lstm_on_llvm_matches_torch(steps, batch_first, bidirectional):
    """Odd and even step counts (the final carry sits in either slot), time- and batch-major (the
    latter's output slices are strided: copied, not claimed), and a reverse direction."""
    ref, ours = _lstm_pair(batch_first, bidirectional)
    shape = (3, steps, 6) if batch_first else (steps, 3, 6)
    x = np.random.default_rng(steps).standard_normal(shape).astype(np.float32)
    got_out, got_h, got_c = compile_graph(_trace(ours, shape), "llvm")(x)
    with torch.no_grad():
        want_out, (want_h, want_c) = ref(torch.from_numpy(x))
    np.testing.assert_allclose(got_out, want_out.numpy(), **TOL)
    np.testing.assert_allclose(got_h, want_h.numpy(), **TOL)
    np.testing.assert_allclose(got_c, want_c.numpy(), **TOL)


def test_dsl_gru_on_llvm_matches_torch():
    torch.manual_seed(1)
    ref, ours = torch.nn.GRU(5, 7), nn.GRU(5, 7)
    ours.load_state_dict({k: v.detach() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((6, 2, 5)).astype(np.float32)
    got_out, got_h = compile_graph(_trace(_Flat(ours), (6, 2, 5)), "llvm")(x)
    with torch.no_grad():
        want_out, want_h = ref(torch.from_numpy(x))
    np.testing.assert_allclose(got_out, want_out.numpy(), **TOL)
    np.testing.assert_allclose(got_h, want_h.numpy(), **TOL)


def _awkward_scan():
    """Results that cannot be written in place: a carry passed through from an argument, an outer
    value yielded as a carry, one value yielded as two carries and an output; symbolic length."""
    b = GraphBuilder("awkward")
    xs = b.input("xs", f32["T", 2, 3])
    w = b.param("w", f32[3, 3], np.random.default_rng(4).standard_normal((3, 3)).astype(np.float32))
    h0 = b.full(shape=[2, 3], value=0.5)
    k = b.full(shape=[2, 3], value=2.0)

    def body(h, a, c, d, x):
        h_new = b.tanh(b.add(b.matmul(h, w), x))
        return h_new, h, k, h_new, b.mul(a, c), h_new  # h_new three times, h an argument

    results = b.op("scan", h0, h0, h0, h0, xs, regions=[body], num_carry=4, axis=0)
    b.output(*results)
    return b.build()


@pytest.mark.parametrize("steps", [0, 1, 2, 5])
def test_results_that_must_be_copied_match_the_interpreter(steps):
    graph = _awkward_scan()
    xs = np.random.default_rng(steps).standard_normal((steps, 2, 3)).astype(np.float32)
    got = compile_graph(graph, "llvm", pipeline="")(xs)
    for g, want in zip(got, run(graph, xs), strict=True):
        assert g.shape == want.shape
        np.testing.assert_allclose(g, want, **TOL)


def _copy_nests(stmts: list[Stmt]) -> int:
    """Statements of a block that are plain copies: loop nests around one store of one load."""
    count = 0
    for stmt in stmts:
        inner = stmt
        while isinstance(inner, Loop) and len(inner.body) == 1:
            inner = inner.body[0]
        if isinstance(stmt, Loop) and isinstance(inner, Store) and isinstance(inner.value, Load):
            count += 1
    return count


def _scan_step(program) -> list[Stmt]:
    """The body of the scan's time loop: the only top-level loop of a kernel that calls a GEMM."""
    for kernel in program.body:
        for stmt in getattr(kernel, "body", []):
            if isinstance(stmt, Loop) and any(isinstance(s, Call) for s in stmt.body):
                return stmt.body
    raise AssertionError("no scan loop with a GEMM call")


def test_lstm_step_copies_only_the_output_slice():
    """Per step: the GEMM, the cell writing c and h into their next carry slots, and one copy of h
    into the output sequence (it is yielded twice); no staging, no write-back of c."""
    _, ours = _lstm_pair(False, False)
    graph = run_pipeline(_trace(ours, (5, 2, 6)), "canonicalize,fuse")
    step = _scan_step(lower_graph(graph))
    assert _copy_nests(step) == 1
