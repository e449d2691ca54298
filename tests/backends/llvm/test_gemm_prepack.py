"""Tests of the GEMM with a prepacked B (backends/llvm/gemm_prepack.py) against numpy in float64.

B is packed once by `pack_b_function` and read by `gemm_function(prepacked_b=True)`: small M (the
N-split path) and large M (the blocked path), edge tiles, transposed B (a linear's weight), tiny
cache blocks (many k blocks), accumulation, a bias epilogue, 1 and 2 threads, and one packing reused
for many calls with different A.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from archir.backends.llvm import threads
from archir.backends.llvm.gemm import Epilogue, gemm_function
from archir.backends.llvm.gemm_kernel import GemmBlocking, masked_load
from archir.backends.llvm.gemm_prepack import SKINNY_ROW_TILES, pack_b_function, packed_b_floats
from archir.backends.llvm.ir_loops import F32_PTR
from archir.backends.llvm.target import create_module, host_target
from llvmlite import ir

P, L = ctypes.c_void_p, ctypes.c_int64
BASE = [L, L, L, P, L, L, P, L, L, P, L, ctypes.c_int32]
GEMM_TYPE = ctypes.CFUNCTYPE(None, *BASE)
BIAS_GEMM_TYPE = ctypes.CFUNCTYPE(None, *BASE, P)
PACK_TYPE = ctypes.CFUNCTYPE(None, L, L, P, L, L, P)
VW = host_target().vector_width_f32
TINY = GemmBlocking(vw=VW, mr=6, nv=2, kc=8, mc=12, nc=2 * 2 * VW)
SKINNY_MAX_M = SKINNY_ROW_TILES * 6


def add_bias(b: ir.IRBuilder, acc: ir.Value, row: ir.Value, col: ir.Value, lanes: ir.Value,
             extra: list[ir.Value]) -> ir.Value:
    return b.fadd(acc, masked_load(b, b.gep(extra[0], [col]), lanes, acc.type.count))


@pytest.fixture(scope="module")
def fns() -> Iterator[dict[str, Callable[..., None]]]:
    module = create_module("gemm_prepack_test")
    pack_b_function(module, "pack")
    pack_b_function(module, "pack_tiny", blocking=TINY)
    gemm_function(module, "gemm", prepacked_b=True)
    gemm_function(module, "gemm_tiny", prepacked_b=True, blocking=TINY)
    bias = Epilogue(emit=add_bias, arg_types=(F32_PTR,))
    gemm_function(module, "gemm_bias", prepacked_b=True, epilogue=bias)
    engine = threads.compile_module(module)
    before = threads.get_threads()
    address = engine.get_function_address
    yield {"pack": PACK_TYPE(address("pack")), "pack_tiny": PACK_TYPE(address("pack_tiny")),
           "gemm": GEMM_TYPE(address("gemm")), "gemm_tiny": GEMM_TYPE(address("gemm_tiny")),
           "gemm_bias": BIAS_GEMM_TYPE(address("gemm_bias"))}
    threads.set_threads(before)


def _strides(x: np.ndarray) -> tuple[int, int]:
    return x.strides[0] // 4, x.strides[1] // 4


def aligned(floats: int) -> np.ndarray:
    """NaN-filled floats at a 64-byte boundary (the packed layout is read with aligned vector loads)."""
    raw = np.full(floats + 16, np.nan, dtype=np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + floats]


def pack(fns: dict, b: np.ndarray, variant: str = "pack", blocking: GemmBlocking | None = None) -> np.ndarray:
    k, n = b.shape
    out = aligned(packed_b_floats(n, k, blocking))
    fns[variant](n, k, b.ctypes.data, *_strides(b), out.ctypes.data)
    return out


def run(fn: Callable[..., None], a: np.ndarray, packed: np.ndarray, n: int, c: np.ndarray,
        accumulate: bool = False, *extra: np.ndarray) -> None:
    m, k = a.shape
    fn(m, n, k, a.ctypes.data, *_strides(a), packed.ctypes.data, 0, 0, c.ctypes.data, _strides(c)[0],
       int(accumulate), *(e.ctypes.data for e in extra))


def assert_gemm_close(c: np.ndarray, expected: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=0, atol=1e-5 * max(1.0, float(scale.max())))


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


SHAPES = [(1, 1, 1), (1, 7, 17), (5, 16, 256), (6, 17, 257), (8, 768, 300), (16, 2048, 64),
          (SKINNY_MAX_M, 33, 70), (SKINNY_MAX_M + 1, 33, 70), (7, 1, 65), (65, 17, 1000),
          (129, 200, 300), (300, 40, 20)]


@pytest.mark.parametrize("variant", ["gemm", "gemm_tiny"])
@pytest.mark.parametrize("transposed", [False, True], ids=["B", "Bt"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_prepacked_matches_numpy(fns: dict, variant: str, transposed: bool, shape: tuple[int, int, int],
                                 rng: np.random.Generator) -> None:
    m, n, k = shape
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    if transposed:  # a linear's weight: W is [n, k] row-major, B = W.T has rsB = 1, csB = k
        b = np.ascontiguousarray(b.T).T
    tiny = variant == "gemm_tiny"
    packed = pack(fns, b, "pack_tiny" if tiny else "pack", TINY if tiny else None)
    assert not np.isnan(packed).any()  # every float of the layout written (padding zeroed)
    c = np.full((m, n), np.nan, dtype=np.float32)
    run(fns[variant], a, packed, n, c)
    assert_gemm_close(c, reference(a, b), a, b)


@pytest.mark.parametrize("m", [3, 12, 100])
def test_one_packing_serves_many_calls(fns: dict, m: int, rng: np.random.Generator) -> None:
    b = rng.standard_normal((200, 150), dtype=np.float32)
    packed = pack(fns, b)
    kept = packed.copy()
    for _ in range(3):
        a = rng.standard_normal((m, 200), dtype=np.float32)
        c = np.empty((m, 150), dtype=np.float32)
        run(fns["gemm"], a, packed, 150, c)
        assert_gemm_close(c, reference(a, b), a, b)
    np.testing.assert_array_equal(packed, kept)  # the GEMM only reads the packed weight


@pytest.mark.parametrize("m", [4, 50])
def test_strided_a_and_c_accumulate(fns: dict, m: int, rng: np.random.Generator) -> None:
    n, k = 70, 90
    a = np.repeat(rng.standard_normal((m, k), dtype=np.float32), 2, axis=1)[:, ::2]  # csA = 2
    b = rng.standard_normal((k, n), dtype=np.float32)
    padded = np.full((m, n + 5), 7.0, dtype=np.float32)
    c = padded[:, 2:n + 2]
    c0 = rng.standard_normal((m, n), dtype=np.float32)
    c[...] = c0
    run(fns["gemm"], a, pack(fns, b), n, c, True)
    assert_gemm_close(c, c0 + reference(a, b), a, b)
    np.testing.assert_array_equal(padded[:, :2], 7.0)
    np.testing.assert_array_equal(padded[:, n + 2:], 7.0)


@pytest.mark.parametrize("m", [1, 9, 40])
def test_bias_epilogue(fns: dict, m: int, rng: np.random.Generator) -> None:
    n, k = 45, 600  # several k blocks: the epilogue must see the full sum, once
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    run(fns["gemm_bias"], a, pack(fns, b), n, c, False, bias)
    assert_gemm_close(c, reference(a, b) + bias, a, b)


def test_k_zero(fns: dict) -> None:
    a = np.ones((4, 0), dtype=np.float32)
    b = np.ones((0, 20), dtype=np.float32)
    packed = pack(fns, b)
    c = np.full((4, 20), 3.0, dtype=np.float32)
    run(fns["gemm"], a, packed, 20, c, True)
    np.testing.assert_array_equal(c, 3.0)
    run(fns["gemm"], a, packed, 20, c)
    np.testing.assert_array_equal(c, 0.0)


@pytest.mark.parametrize("m", [8, 300])
def test_one_and_two_threads_agree(fns: dict, m: int, rng: np.random.Generator) -> None:
    a = rng.standard_normal((m, 700), dtype=np.float32)
    b = np.ascontiguousarray(rng.standard_normal((900, 700), dtype=np.float32)).T
    packed = pack(fns, b)
    results = []
    for count in (1, 2):
        threads.set_threads(count)
        c = np.empty((m, 900), dtype=np.float32)
        run(fns["gemm"], a, packed, 900, c)
        results.append(c)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-5)
    assert_gemm_close(results[1], reference(a, b), a, b)
