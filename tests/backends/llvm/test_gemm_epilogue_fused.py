"""GEMM epilogue groups on the llvm backend: the elementwise tail (bias, gelu, relu, batch norm,
residual, scale) applied in the GEMM's store, checked against the numpy interpreter (atol 1e-4,
rtol 1e-5) at sizes with edge tiles, K larger than one cache block (accumulate mode), the small-M
path of prepacked weights, symbolic batch and grouped convolution; and that the group really is
one GEMM call writing the output, with no separate pass over it.
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

TOL = {"atol": 1e-4, "rtol": 1e-5}
K_BIG = 300  # > kc (256): the GEMM adds K blocks into C, the epilogue runs on the last one only


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def check(src: str, inputs: list[list[np.ndarray]], params: dict[str, np.ndarray] | None = None) -> str:
    """Fuse `src`, compile it on llvm, compare each input set with the interpreter on the unfused
    graph; returns the fused program's loop IR."""
    graph = parse(src)
    graph.param_data = dict(params or {})
    fused = run_pipeline(graph, "canonicalize,fuse")
    fused.param_data = dict(params or {})
    assert any(n.op == "fused" and n.attrs["kind"] == "gemm_epilogue" for n in fused.nodes)
    module = compile_graph(fused, "llvm", pipeline="", use_cache=False)
    for arrays in inputs:
        for got, want in zip(module(*arrays), run(graph, *arrays), strict=True):
            np.testing.assert_allclose(got, want, **TOL)
    return print_program(lower_graph(fused))


def assert_in_store(text: str, kinds: str) -> None:
    """The output buffer is touched by exactly one statement: the GEMM call carrying the epilogue
    (operand kinds `kinds`), so no row kernel re-reads and re-writes the result."""
    touching = [line.strip() for line in text.splitlines() if "%out0[" in line]
    assert len(touching) == 1, touching
    assert re.match(r"call gemm(_(param|conv)\.\S+)?\{" + re.escape(kinds) + ";", touching[0]), touching[0]


def _linear_src(tail: str, extra_inputs: str = "") -> str:
    return f"""graph @g(%x: f32[B, T, {K_BIG}]{extra_inputs}) -> f32[B, T, 40]
    params(%w: f32[40, {K_BIG}], %b: f32[40]) {{
  %0 = linear(%x, %w, %b) : f32[B, T, 40]
{tail}
}}"""


@pytest.fixture(scope="module")
def linear_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": _rand(rng, 40, K_BIG) * 0.1, "b": _rand(rng, 40)}


def test_linear_bias_gelu_tanh(linear_params: dict[str, np.ndarray]) -> None:
    src = _linear_src('  %1 = gelu(%0) {approximate = "tanh"} : f32[B, T, 40]\n  return %1')
    rng = np.random.default_rng(1)
    # 2 x 2 rows: the small-M path of a prepacked weight; 3 x 17 rows: edge row tiles, many row blocks
    text = check(src, [[_rand(rng, 2, 2, K_BIG)], [_rand(rng, 3, 17, K_BIG)]], linear_params)
    assert_in_store(text, "col")
    assert "gelu_tanh}" in text


def test_linear_bias_residual(linear_params: dict[str, np.ndarray]) -> None:
    src = _linear_src("  %1 = add(%r, %0) : f32[B, T, 40]\n  return %1", ", %r: f32[B, T, 40]")
    rng = np.random.default_rng(2)
    sets = [[_rand(rng, b, t, K_BIG), _rand(rng, b, t, 40)] for b, t in ((1, 5), (4, 13))]
    assert_in_store(check(src, sets, linear_params), "col,mat")


def test_matmul_scale_add_with_batched_operands() -> None:
    """x[B, 7, K] @ y[B, K, 33] (one GEMM per batch), * 0.125 (a constant copied into the group),
    + a residual broadcast over the batch."""
    src = f"""graph @g(%x: f32[B, 7, {K_BIG}], %y: f32[B, {K_BIG}, 33], %r: f32[7, 33]) -> f32[B, 7, 33] {{
  %0 = matmul(%x, %y) : f32[B, 7, 33]
  %s = full() {{shape = [], value = 0.125}} : f32[]
  %1 = mul(%0, %s) : f32[B, 7, 33]
  %2 = add(%1, %r) : f32[B, 7, 33]
  return %2
}}"""
    rng = np.random.default_rng(3)
    sets = [[_rand(rng, b, 7, K_BIG), _rand(rng, b, K_BIG, 33), _rand(rng, 7, 33)] for b in (1, 3)]
    assert_in_store(check(src, sets), "mat")


def test_conv2d_bias_relu_grouped_strided() -> None:
    src = """graph @g(%x: f32[B, 6, 9, 11]) -> f32[B, 8, 5, 6]
    params(%w: f32[8, 3, 3, 3], %b: f32[8]) {
  %0 = conv2d(%x, %w, %b) {stride = [2, 2], padding = [1, 1], groups = 2} : f32[B, 8, 5, 6]
  %1 = relu(%0) : f32[B, 8, 5, 6]
  return %1
}"""
    rng = np.random.default_rng(4)
    params = {"w": _rand(rng, 8, 3, 3, 3), "b": _rand(rng, 8)}
    text = check(src, [[_rand(rng, 1, 6, 9, 11)], [_rand(rng, 3, 6, 9, 11)]], params)
    assert_in_store(text, "row")


def test_conv_batchnorm_relu_residual_like_resnet() -> None:
    """conv 3x3 (36 channels: K = 324 > kc) + batch norm (folded into a per-channel affine) + the
    block's input + relu, at a symbolic image size."""
    c = 36
    src = f"""graph @g(%x: f32[B, {c}, H, W]) -> f32[B, {c}, H, W]
    params(%w: f32[{c}, {c}, 3, 3], %mean: f32[{c}], %var: f32[{c}], %gamma: f32[{c}], %beta: f32[{c}]) {{
  %0 = conv2d(%x, %w) {{padding = [1, 1]}} : f32[B, {c}, H, W]
  %1 = batch_norm(%0, %mean, %var, %gamma, %beta) : f32[B, {c}, H, W]
  %2 = add(%1, %x) : f32[B, {c}, H, W]
  %3 = relu(%2) : f32[B, {c}, H, W]
  return %3
}}"""
    rng = np.random.default_rng(5)
    params = {"w": _rand(rng, c, c, 3, 3) * 0.1, "mean": _rand(rng, c) * 0.5,
              "var": rng.uniform(0.5, 1.5, c).astype(np.float32),
              "gamma": rng.uniform(0.5, 1.5, c).astype(np.float32),
              "beta": _rand(rng, c) * 0.5}
    text = check(src, [[_rand(rng, 2, c, 7, 5)], [_rand(rng, 1, c, 3, 13)]], params)
    assert_in_store(text, "row,row,mat")


def test_conv1x1_reads_its_input_directly() -> None:
    src = """graph @g(%x: f32[B, 20, 6, 7]) -> f32[B, 12, 6, 7] params(%w: f32[12, 20, 1, 1], %b: f32[12]) {
  %0 = conv2d(%x, %w, %b) : f32[B, 12, 6, 7]
  %1 = sigmoid(%0) : f32[B, 12, 6, 7]
  return %1
}"""
    rng = np.random.default_rng(6)
    text = check(src, [[_rand(rng, 2, 20, 6, 7)]], {"w": _rand(rng, 12, 20, 1, 1), "b": _rand(rng, 12)})
    assert_in_store(text, "row")
    assert "%input0[" not in text.replace("&%input0[", "")  # no im2col copy of x


def test_tail_that_cannot_run_in_the_store_falls_back_to_a_row_kernel() -> None:
    """A boolean mask operand (where) is not an f32 epilogue operand: the tail runs as a row kernel."""
    src = """graph @g(%x: f32[5, 24], %m: bool[5, 40]) -> f32[5, 40] params(%w: f32[40, 24]) {
  %0 = linear(%x, %w) : f32[5, 40]
  %z = full() {shape = [], value = 0.0} : f32[]
  %1 = where(%m, %0, %z) : f32[5, 40]
  return %1
}"""
    rng = np.random.default_rng(7)
    mask = rng.uniform(size=(5, 40)) > 0.5
    text = check(src, [[_rand(rng, 5, 24), mask]], {"w": _rand(rng, 40, 24)})
    assert "parallel for" in text
    assert not re.search(r"call gemm\S*\{", text)

