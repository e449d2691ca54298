"""Row kernels whose math-heavy column loops ask LLVM to interleave vector iterations (the
`interleave` loop hint): llvm vs the numpy interpreter on odd row lengths (1, 7, 769), row counts
that do not split evenly over the threads, symbolic dims; and the hint reaching LLVM IR.
Tolerance: atol 1e-4, rtol 1e-5 (f32 vecmath: a few ulp).
"""

from __future__ import annotations

import numpy as np
import pytest
from archir.backends.llvm import build, lower_rows, set_threads
from archir.backends.llvm.loops import Loop, print_program
from archir.backends.llvm.lower import lower_graph

from archir.backend import compile_graph
from archir.interpreter import run
from archir.parser import parse
from archir.pass_manager import run_pipeline

TOL = {"atol": 1e-4, "rtol": 1e-5}

LN_CHAIN = """graph @ln_chain(%x: f32[{n}, {m}], %r: f32[{n}, {m}]) -> f32[{n}, {m}]
    params(%g: f32[{m}], %b: f32[{m}], %s: f32[{m}], %c: f32[{m}]) {{
  %0 = layer_norm(%x, %g, %b) : f32[{n}, {m}]
  %1 = mul(%0, %s) : f32[{n}, {m}]
  %2 = add(%1, %c) : f32[{n}, {m}]
  %3 = gelu(%2) {{approximate = "tanh"}} : f32[{n}, {m}]
  %4 = add(%3, %r) : f32[{n}, {m}]
  return %4
}}"""

SOFTMAX_EXP = """graph @g(%x: f32[{n}, {m}]) -> f32[{n}, {m}], f32[{n}, {m}] {{
  %0 = softmax(%x) : f32[{n}, {m}]
  %1 = log_softmax(%x) : f32[{n}, {m}]
  %2 = tanh(%1) : f32[{n}, {m}]
  return %0, %2
}}"""


def _fused(src: str, params: dict[str, np.ndarray]) -> tuple[object, object]:
    graph = parse(src)
    graph.param_data = dict(params)
    fused = run_pipeline(graph, "canonicalize,fuse")
    fused.param_data = dict(params)
    return graph, fused


def _ln_params(m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(m).astype(np.float32) for k in "gbsc"}


def _check(graph: object, fused: object, arrays: list[np.ndarray]) -> str:
    want = run(graph, *arrays)  # type: ignore[arg-type]
    got = compile_graph(fused, "llvm", pipeline="", use_cache=False)(*arrays)  # type: ignore[arg-type]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    return print_program(lower_graph(fused))  # type: ignore[arg-type]


@pytest.mark.parametrize("n, m", [(3, 1), (5, 7), (2, 769), (67, 769)])
def test_ln_gelu_chain_with_interleaved_columns(n: int, m: int) -> None:
    rng = np.random.default_rng(5)
    graph, fused = _fused(LN_CHAIN.format(n=n, m=m), _ln_params(m, rng))
    x = (rng.standard_normal((n, m)) * 3).astype(np.float32)
    r = rng.standard_normal((n, m)).astype(np.float32)
    text = _check(graph, fused, [x, r])
    assert "parallel for" in text and f"interleave({lower_rows.MATH_INTERLEAVE})" in text


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_not_a_multiple_of_the_thread_split(threads: int) -> None:
    # 4099 rows x 65 columns is enough work for the pool; 4099 is prime, so no split is even.
    rng = np.random.default_rng(6)
    graph, fused = _fused(LN_CHAIN.format(n=4099, m=65), _ln_params(65, rng))
    x = rng.standard_normal((4099, 65)).astype(np.float32)
    r = rng.standard_normal((4099, 65)).astype(np.float32)
    set_threads(threads)
    try:
        _check(graph, fused, [x, r])
    finally:
        set_threads(2)


def test_symbolic_dims_softmax_family() -> None:
    rng = np.random.default_rng(7)
    graph, fused = _fused(SOFTMAX_EXP.format(n="N", m="M"), {})
    module = compile_graph(fused, "llvm", pipeline="", use_cache=False)  # type: ignore[arg-type]
    for shape in [(1, 1), (3, 7), (9, 769)]:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        for g, w in zip(module(x), run(graph, x), strict=True):  # type: ignore[arg-type]
            np.testing.assert_allclose(g, w, **TOL)


def test_symbolic_ln_chain() -> None:
    rng = np.random.default_rng(8)
    graph, fused = _fused(LN_CHAIN.format(n="N", m=769), _ln_params(769, rng))
    module = compile_graph(fused, "llvm", pipeline="", use_cache=False)  # type: ignore[arg-type]
    for rows in (1, 7, 130):
        x = rng.standard_normal((rows, 769)).astype(np.float32)
        r = rng.standard_normal((rows, 769)).astype(np.float32)
        for g, w in zip(module(x, r), run(graph, x, r), strict=True):  # type: ignore[arg-type]
            np.testing.assert_allclose(g, w, **TOL)


def test_only_math_loops_get_the_hint() -> None:
    _, fused = _fused(LN_CHAIN.format(n=4, m=16), _ln_params(16, np.random.default_rng(9)))
    program = lower_graph(fused)  # type: ignore[arg-type]
    hints: list[int] = []
    pending: list[object] = list(program.body)
    while pending:
        s = pending.pop()
        if isinstance(s, Loop):
            hints.append(s.interleave)
        pending.extend(getattr(s, "body", None) or [])
    # mean pass, variance pass (no math functions), the gelu pass (hinted), the row loop
    assert sorted(hints) == [0, 0, 0, lower_rows.MATH_INTERLEAVE]


def test_hint_becomes_llvm_loop_metadata() -> None:
    _, fused = _fused(LN_CHAIN.format(n=4, m=64), _ln_params(64, np.random.default_rng(10)))
    text = str(build.llvm_module(lower_graph(fused)))  # type: ignore[arg-type]
    assert f'!"llvm.loop.interleave.count", i32 {lower_rows.MATH_INTERLEAVE}' in text
    # the loop node starts with a reference to itself, as LLVM requires of loop metadata
    hint = next(ln for ln in text.splitlines() if "llvm.loop.interleave.count" in ln).split("=")[0].strip()
    node = next(ln for ln in text.splitlines() if ln.rstrip().endswith(f", {hint} }}"))
    name = node.split("=")[0].strip()
    assert node.split("=", 1)[1].strip() == f"!{{ {name}, {hint} }}"
    assert f"!llvm.loop {name}" in text
