"""The llvm backend's decode-step fast paths against the numpy interpreter (1e-4): concat as
parallel contiguous runs (lower_copy.py; static and symbolic sizes, every axis, strided pieces,
the chunked single-run path), the small-M prepacked GEMM with full and tail row tiles (gemm_skinny.py;
M = 1..13 and 24 with edge N and K, fused epilogues, 1 and 2 threads), and a small decode block.
"""

from __future__ import annotations

import numpy as np
import pytest
from archir.backends.llvm import emit, set_threads
from archir.backends.llvm.lower_copy import CHUNK

from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.types import DType, TensorType, f32

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _check(graph, *inputs, threads: int = 2, pipeline: str | None = "") -> None:
    set_threads(threads)
    try:
        got = compile_graph(graph, "llvm", pipeline=pipeline)(*inputs)
    finally:
        set_threads(2)
    want = run(graph, *inputs)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, **TOL)


def _concat_graph(shapes: list[tuple], axis: int, dtype: DType = DType.f32):
    b = GraphBuilder("cat")
    xs = [b.input(f"x{i}", TensorType(tuple(s), dtype)) for i, s in enumerate(shapes)]
    b.output(b.concat(*xs, axis=axis))
    return b.build()


def _arrays(shapes: list[tuple], seed: int, dtype=np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_concat_static_every_axis(axis: int) -> None:
    base = [3, 4, 5, 6]
    shapes = []
    for extra in (2, 1, 3):
        s = list(base)
        s[axis] = extra
        shapes.append(tuple(s))
    _check(_concat_graph(shapes, axis), *_arrays(shapes, seed=axis + 10))


def test_concat_of_single_elements() -> None:
    """Pieces with only size-1 axes: no loop at all, one element each."""
    shapes = [(1, 1, 1), (1, 2, 1), (1, 1, 1)]
    _check(_concat_graph(shapes, 1), *_arrays(shapes, seed=11))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concat_symbolic_sizes(axis: int) -> None:
    """B and T symbolic: merged runs and the flat outer index are computed at run time."""
    shapes_sym = [["B", 4, "T"], ["B", 4, "T"]]
    shapes_sym[1][axis] = 3 if axis != 0 else "C"
    b = GraphBuilder("cat_sym")
    xs = [b.input(f"x{i}", f32[tuple(s)]) for i, s in enumerate(shapes_sym)]
    b.output(b.concat(*xs, axis=axis))
    graph = b.build()
    compiled = compile_graph(graph, "llvm", pipeline="")
    for bsz, t, c in ((1, 1, 2), (2, 7, 1), (3, 40, 5)):
        binding = {"B": bsz, "T": t, "C": c}
        shapes = [tuple(binding.get(d, d) if isinstance(d, str) else d for d in s) for s in shapes_sym]
        inputs = _arrays(shapes, seed=bsz + t)
        for g, w in zip(compiled(*inputs), run(graph, *inputs), strict=True):
            np.testing.assert_allclose(g, w, **TOL)


def test_concat_kv_cache_append_is_parallel_runs() -> None:
    """The decode step's append: past [B, H, P, D] + new [B, H, 1, D] along the key axis, fed by a
    transposed (strided) new row; the loop IR copies whole (P*D) runs in a parallel loop."""
    b = GraphBuilder("append")
    past = b.input("past", f32[2, 3, 40, 16])
    new = b.input("new", f32[2, 1, 3, 16])
    b.output(b.concat(past, b.transpose(new, perm=[0, 2, 1, 3]), axis=2))
    graph = b.build()
    text = emit(graph, "loops")
    assert "parallel for" in text and "[0, 640)" in text, text  # 40 * 16 elements per run
    _check(graph, *_arrays([(2, 3, 40, 16), (2, 1, 3, 16)], seed=3))
    _check(graph, *_arrays([(2, 3, 40, 16), (2, 1, 3, 16)], seed=4), threads=1)


def test_concat_long_single_run_is_chunked() -> None:
    """1-D pieces longer than two chunks: one run cut into CHUNK-element parallel tasks."""
    n = 2 * CHUNK + 123
    graph = _concat_graph([(n,), (5,), (n + 7,)], axis=0)
    assert "min(" in emit(graph, "loops")
    _check(graph, *_arrays([(n,), (5,), (n + 7,)], seed=5))


def test_concat_of_strided_and_broadcast_views() -> None:
    """A transposed piece (no contiguous run) and an expanded piece (stride 0) still copy right."""
    b = GraphBuilder("cat_views")
    x = b.input("x", f32[5, 4])
    y = b.input("y", f32[1, 5])
    b.output(b.concat(b.transpose(x, perm=[1, 0]), b.expand(y, shape=[3, 5]), axis=0))
    graph = b.build()
    _check(graph, *_arrays([(5, 4), (1, 5)], seed=6))


@pytest.mark.parametrize("dtype", [DType.f16, DType.i64, DType.bool])
def test_concat_other_dtypes(dtype: DType) -> None:
    shapes = [(2, 3, 5), (2, 4, 5)]
    rng = np.random.default_rng(7)
    arrays = [(rng.standard_normal(s) > 0) if dtype == DType.bool else
              (rng.standard_normal(s) * 9).astype(dtype.numpy) for s in shapes]
    graph = _concat_graph(shapes, 1, dtype)
    got = compile_graph(graph, "llvm", pipeline="")(*arrays)[0]
    np.testing.assert_array_equal(got, run(graph, *arrays)[0])


# -- small-M GEMM on prepacked weights -------------------------------------------------------------
def _linear_graph(k: int, n: int, seed: int, epilogue: bool):
    """linear(x[M, k]) by a [n, k] parameter; with `epilogue`, + bias, gelu, + a residual."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("skinny")
    x = b.input("x", f32["M", k])
    w = b.param("w", f32[n, k], rng.standard_normal((n, k)).astype(np.float32))
    if not epilogue:
        b.output(b.linear(x, w))
        return b.build()
    bias = b.param("bias", f32[n], rng.standard_normal(n).astype(np.float32))
    r = b.input("r", f32["M", n])
    b.output(b.add(b.gelu(b.linear(x, w, bias), approximate="tanh"), r))
    return b.build()


ROWS = [*range(1, 14), 24, 25]  # full tiles only, tails only, both, and past the small-M path


@pytest.mark.parametrize("k,n", [(1, 1), (7, 37), (300, 100), (64, 16)], ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_skinny_gemm_rows_1_to_25(k: int, n: int, threads: int) -> None:
    """One module (symbolic M) called with every row count: K past one k block (300 > kc = 256),
    N with an edge panel (37, 100) or exact (16), K = 1."""
    graph = _linear_graph(k, n, seed=k + n, epilogue=False)
    set_threads(threads)
    try:
        compiled = compile_graph(graph, "llvm", pipeline="")
        rng = np.random.default_rng(threads)
        for m in ROWS:
            x = rng.standard_normal((m, k)).astype(np.float32)
            np.testing.assert_allclose(compiled(x)[0], run(graph, x)[0], **TOL)
    finally:
        set_threads(2)


def test_skinny_gemm_with_fused_epilogue() -> None:
    """Bias, gelu and residual applied at the last store by full and tail tiles alike."""
    graph = _linear_graph(96, 70, seed=1, epilogue=True)
    compiled = compile_graph(graph, "llvm")  # default pipeline: fused into the GEMM's epilogue
    calls = [line for line in emit(compiled.graph, "loops").splitlines() if "call gemm_param." in line]
    assert len(calls) == 1 and "gelu_tanh" in calls[0], calls
    rng = np.random.default_rng(2)
    for m in (1, 4, 5, 7, 8, 9, 12, 13):
        x = rng.standard_normal((m, 96)).astype(np.float32)
        r = rng.standard_normal((m, 70)).astype(np.float32)
        np.testing.assert_allclose(compiled(x, r)[0], run(graph, x, r)[0], **TOL)


# -- a decode block ---------------------------------------------------------------------------------
def test_decode_block_matches_interpreter() -> None:
    """LN, qkv linear, K/V append, one-query attention, out-proj, MLP: the bench's decode step at a
    small size, through the default pipeline."""
    rng = np.random.default_rng(8)
    bsz, heads, past, d = 3, 2, 9, 8
    dim = heads * d

    def p(name: str, *shape: int):
        return b.param(name, f32[shape], (rng.standard_normal(shape) * 0.3).astype(np.float32))

    b = GraphBuilder("decode")
    x = b.input("x", f32[bsz, 1, dim])
    pk, pv = (b.input(n, f32[bsz, heads, past, d]) for n in ("pk", "pv"))
    h = b.layer_norm(x, p("ln_w", dim), p("ln_b", dim))
    q, k, v = b.split(b.linear(h, p("qkv_w", 3 * dim, dim), p("qkv_b", 3 * dim)), axis=-1,
                      sizes=[dim, dim, dim])
    q, k, v = (b.transpose(b.reshape(t, shape=[bsz, 1, heads, d]), perm=[0, 2, 1, 3]) for t in (q, k, v))
    a = b.attention(q, b.concat(pk, k, axis=2), b.concat(pv, v, axis=2))
    a = b.reshape(b.transpose(a, perm=[0, 2, 1, 3]), shape=[bsz, 1, dim])
    x2 = b.add(x, b.linear(a, p("proj_w", dim, dim), p("proj_b", dim)))
    m = b.gelu(b.linear(x2, p("fc_w", 4 * dim, dim), p("fc_b", 4 * dim)), approximate="tanh")
    b.output(b.add(x2, b.linear(m, p("fc2_w", dim, 4 * dim), p("fc2_b", dim))), k, v)
    graph = b.build()
    inputs = _arrays([(bsz, 1, dim), (bsz, heads, past, d), (bsz, heads, past, d)], seed=9)
    _check(graph, *inputs, pipeline=None)


def test_row_tiling_computes_fewest_rows() -> None:
    """cheapest_full_rows (mr = 6, tail = 4, AVX2's tiles) JIT-ed alone: M = 8 is two 4-row tails,
    not 6 + 4; M = 5 one 6-row tile; and no M computes more rows than the best mix of the two."""
    import ctypes

    import llvmlite.binding as llvm
    from archir.backends.llvm.gemm_skinny import cheapest_full_rows
    from archir.backends.llvm.ir_loops import I64
    from archir.backends.llvm.target import create_module, host_target
    from llvmlite import ir

    module = create_module("rows")
    fn = ir.Function(module, ir.FunctionType(I64, [I64]), "full_rows")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(cheapest_full_rows(b, fn.args[0], 6, 4))
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(str(module)), host_target().target_machine())
    engine.finalize_object()
    full_rows = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(engine.get_function_address("full_rows"))
    assert [full_rows(m) for m in (1, 4, 5, 6, 7, 8, 9, 12, 14, 24)] == [0, 0, 6, 6, 0, 0, 6, 12, 6, 24]
    for m in range(1, 25):
        full = full_rows(m)
        assert full % 6 == 0 and full <= m + 5
        computed = full + -(-max(m - full, 0) // 4) * 4
        best = min(6 * a + 4 * -(-max(m - 6 * a, 0) // 4) for a in range(5))
        assert computed == best, (m, full, computed, best)
