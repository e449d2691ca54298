"""Row kernels and fused groups on the llvm backend vs the numpy interpreter (the reference).

Softmax / log_softmax / layer_norm / rms_norm over the last axis, fused elementwise and reduction
groups, GEMM epilogue groups; edge sizes (one row, odd widths, one column), -inf and huge values,
and a size large enough to run on the thread pool. Tolerance: atol = rtol = 1e-5 (f32).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from archir.backends.llvm.loops import print_program
from archir.backends.llvm.lower import lower_graph

from archir.backend import compile_graph
from archir.interpreter import run
from archir.parser import parse
from archir.pass_manager import run_pipeline

TOL = {"atol": 1e-5, "rtol": 1e-5}


def check(src: str, arrays: list[np.ndarray], params: dict[str, np.ndarray] | None = None,
          pipeline: str | None = None) -> str:
    """Compile `src` (after `pipeline`) on llvm, compare with the interpreter; the loop IR."""
    graph = parse(src)
    graph.param_data = dict(params or {})
    want = run(graph, *arrays)
    if pipeline:
        graph = run_pipeline(graph, pipeline)
        graph.param_data = dict(params or {})
    got = compile_graph(graph, "llvm", pipeline="", use_cache=False)(*arrays)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    return print_program(lower_graph(graph))


def _row_op(op: str, n: int, m: int) -> str:
    t = f"f32[{n}, {m}]"
    return f"graph @g(%x: {t}) -> {t} {{\n  %0 = {op}(%x) : {t}\n  return %0\n}}"


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "layer_norm", "rms_norm"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 33), (5, 1), (64, 1000)])
def test_row_op_matches_the_interpreter(op: str, shape: tuple[int, int]) -> None:
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 3
    text = check(_row_op(op, *shape), [x])
    assert "parallel for" in text  # a row kernel, not the decomposition


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_of_infinite_and_huge_values(op: str) -> None:
    x = np.random.default_rng(2).standard_normal((4, 9)).astype(np.float32)
    x[0, 3] = -np.inf
    x[1, :] = 3e38
    x[2, 5] = 1e30
    x[3, :] = -np.inf  # every element -inf: nan, as torch and the interpreter give
    graph = parse(_row_op(op, 4, 9))
    got = compile_graph(graph, "llvm", pipeline="", use_cache=False)(x)[0]
    want = run(graph, x)[0]
    np.testing.assert_allclose(got, want, **TOL)
    assert np.isnan(got[3]).all()


def test_softmax_over_a_middle_axis_takes_the_decomposition() -> None:
    src = """graph @g(%x: f32[3, 5, 4]) -> f32[3, 5, 4] {
  %0 = softmax(%x) {axis = 1} : f32[3, 5, 4]
  return %0
}"""
    x = np.random.default_rng(3).standard_normal((3, 5, 4)).astype(np.float32)
    text = check(src, [x])
    assert not re.search(r"parallel for r\d", text)  # no row loop (elementwise steps may be parallel)


def test_layer_norm_chain_is_one_row_kernel_and_runs_in_parallel() -> None:
    src = """graph @g(%x: f32[N, 96], %r: f32[N, 96]) -> f32[N, 96]
    params(%g: f32[96], %b: f32[96], %s: f32[96], %c: f32[96]) {
  %0 = layer_norm(%x, %g, %b) : f32[N, 96]
  %1 = mul(%0, %s) : f32[N, 96]
  %2 = add(%1, %c) : f32[N, 96]
  %3 = gelu(%2) {approximate = "tanh"} : f32[N, 96]
  %4 = add(%3, %r) : f32[N, 96]
  return %4
}"""
    rng = np.random.default_rng(4)
    params = {k: rng.standard_normal(96).astype(np.float32) for k in "gbsc"}
    arrays = [rng.standard_normal((1000, 96)).astype(np.float32) for _ in range(2)]
    text = check(src, arrays, params, "canonicalize,fuse")
    assert text.count("kernel ") == 1 and text.count("parallel for") == 1
    assert "temp" not in text  # no intermediate buffer at all


def test_fused_elementwise_group_with_broadcasts_and_two_results() -> None:
    src = """graph @g(%x: f32[2, 3, 17], %y: f32[3, 1], %z: f32[17]) -> f32[2, 3, 17], f32[2, 3, 17] {
  %0 = add(%x, %y) : f32[2, 3, 17]
  %1 = tanh(%0) : f32[2, 3, 17]
  %2 = mul(%1, %z) : f32[2, 3, 17]
  %3 = exp(%2) : f32[2, 3, 17]
  %4 = sub(%3, %1) : f32[2, 3, 17]
  return %4, %2
}"""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 17), (3, 1), (17,)]]
    text = check(src, arrays, pipeline="canonicalize,fuse")
    assert "temp" not in text


def test_reduction_group_with_keepdims_and_dropped_results() -> None:
    src = """graph @g(%x: f32[4, 11]) -> f32[4, 11], f32[4], f32[4, 1] {
  %0 = mul(%x, %x) : f32[4, 11]
  %1 = sum(%0) {axes = [-1]} : f32[4]
  %2 = max(%x) {axes = [-1], keepdims = true} : f32[4, 1]
  %3 = sub(%x, %2) : f32[4, 11]
  %4 = softmax(%3) : f32[4, 11]
  %5 = add(%4, %0) : f32[4, 11]
  return %5, %1, %2
}"""
    x = np.random.default_rng(6).standard_normal((4, 11)).astype(np.float32)
    check(src, [x], pipeline="canonicalize,fuse")


def test_gemm_epilogue_tail_is_one_row_kernel() -> None:
    src = """graph @g(%x: f32[B, 24], %r: f32[B, 40]) -> f32[B, 40] params(%w: f32[40, 24], %b: f32[40]) {
  %0 = linear(%x, %w, %b) : f32[B, 40]
  %1 = gelu(%0) {approximate = "tanh"} : f32[B, 40]
  %2 = add(%1, %r) : f32[B, 40]
  return %2
}"""
    rng = np.random.default_rng(7)
    params = {"w": rng.standard_normal((40, 24)).astype(np.float32),
              "b": rng.standard_normal(40).astype(np.float32)}
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(9, 24), (9, 40)]]
    text = check(src, arrays, params, "canonicalize,fuse")
    assert "parallel for" in text or "{col,mat;" in text  # a row kernel, or the tail in the GEMM's store


def test_fused_group_inside_a_scan_reads_the_step_index() -> None:
    src = """graph @g(%h: f32[2, 8], %xs: f32[2, 5, 8]) -> f32[2, 8], f32[2, 5, 8] {
  %0, %1 = scan(%h, %xs) {num_carry = 1, axis = 1} : f32[2, 8], f32[2, 5, 8]
      body(%c: f32[2, 8], %x: f32[2, 8]) {
    %2 = add(%c, %x) : f32[2, 8]
    %3 = tanh(%2) : f32[2, 8]
    %4 = layer_norm(%3) : f32[2, 8]
    yield %4, %3
  }
  return %0, %1
}"""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(2, 8), (2, 5, 8)]]
    check(src, arrays, pipeline="canonicalize,fuse")
