"""Elementwise ops outside any fused group (unfused graphs, op-by-op fallbacks) split their
outermost non-unit axis over the thread pool; results match the interpreter on 1 and 2 threads."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from archir.backends.llvm import set_threads
from archir.backends.llvm.loops import print_program
from archir.backends.llvm.lower import lower_graph

from archir.backend import compile_graph
from archir.interpreter import run
from archir.parser import parse

SRC = """graph @g(%x: f32[{shape}], %y: f32[{last}]) -> f32[{shape}] {{
  %0 = add(%x, %y) : f32[{shape}]
  %1 = tanh(%0) : f32[{shape}]
  return %1
}}"""


@pytest.fixture(params=[1, 2])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    set_threads(request.param)
    yield request.param
    set_threads(2)


@pytest.mark.parametrize("shape", [(300, 257), (1, 1, 300, 129), (70001,), (1, 5)])
def test_elementwise_parallel_matches_interpreter(shape: tuple[int, ...], threads: int) -> None:
    text = ", ".join(map(str, shape))
    graph = parse(SRC.format(shape=text, last=shape[-1]))
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32) * 3
    y = rng.standard_normal(shape[-1]).astype(np.float32)
    got = compile_graph(graph, "llvm", pipeline="", use_cache=False)(x, y)[0]
    want = run(graph, x, y)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # tanh within a few ulp
    loops = print_program(lower_graph(graph))
    assert loops.count("parallel for") == 2, loops  # one per op, small ones run it inline


def test_unit_leading_axes_are_skipped_for_the_parallel_one() -> None:
    graph = parse(SRC.format(shape="1, 1, 64, 32", last=32))
    loops = print_program(lower_graph(graph)).splitlines()
    outer = [line.strip() for line in loops if line.strip().startswith(("for", "parallel for"))]
    # [1, 1, 64, 32]: the two unit loops stay serial, the 64-row loop is the parallel one
    assert outer[:4] == ["for i1 in [0, 1) {", "for i2 in [0, 1) {", "parallel for i3 in [0, 64) {",
                         "for i4 in [0, 32) {"], outer
