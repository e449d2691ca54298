"""Tests of the LLVM backend's packed GEMM against numpy (float64 products) and PyTorch.

Shapes cover full tiles, edge tiles, several cache blocks (a variant with tiny blocks), strided and
transposed operands, accumulation, a bias + relu epilogue and the AVX-512 tile shape.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from archir.backends.llvm import threads
from archir.backends.llvm.gemm import Epilogue, gemm_function
from archir.backends.llvm.gemm_kernel import GemmBlocking, GemmBlockingError, masked_load
from archir.backends.llvm.ir_loops import F32_PTR
from archir.backends.llvm.target import create_module, host_target
from llvmlite import ir

P, L = ctypes.c_void_p, ctypes.c_int64
BASE = [L, L, L, P, L, L, P, L, L, P, L, ctypes.c_int32]
GEMM_TYPE = ctypes.CFUNCTYPE(None, *BASE)
BIAS_GEMM_TYPE = ctypes.CFUNCTYPE(None, *BASE, P)
VW = host_target().vector_width_f32
TINY = GemmBlocking(vw=VW, mr=6, nv=2, kc=8, mc=12, nc=2 * 2 * VW)  # many blocks on small shapes
AVX512_TILE = GemmBlocking(vw=16, mr=14, nv=2, kc=64, mc=28, nc=128)  # legalised to AVX2 here


def bias_relu(b: ir.IRBuilder, acc: ir.Value, row: ir.Value, col: ir.Value, lanes: ir.Value,
              extra: list[ir.Value]) -> ir.Value:
    """acc + bias[col:col+lanes], then max(., 0)."""
    width = acc.type.count
    bias = masked_load(b, b.gep(extra[0], [col]), lanes, width)
    value = b.fadd(acc, bias)
    zero = ir.Constant(acc.type, None)
    return b.select(b.fcmp_ordered(">", value, zero), value, zero)


@pytest.fixture(scope="module")
def gemms() -> Iterator[dict[str, Callable[..., None]]]:
    module = create_module("gemm_test")
    gemm_function(module, "gemm")
    gemm_function(module, "gemm_tiny", blocking=TINY)
    gemm_function(module, "gemm_avx512_tile", blocking=AVX512_TILE)
    gemm_function(module, "gemm_bias_relu", epilogue=Epilogue(emit=bias_relu, arg_types=(F32_PTR,)))
    gemm_function(module, "gemm_tiny_bias_relu", epilogue=Epilogue(emit=bias_relu, arg_types=(F32_PTR,)),
                  blocking=TINY)
    # A bare (builder, acc, row, col, lanes) callable, without extra arguments.
    gemm_function(module, "gemm_x2", epilogue=lambda b, acc, row, col, lanes: b.fmul(
        acc, ir.Constant(acc.type, [2.0] * acc.type.count)))
    engine = threads.compile_module(module)
    before = threads.get_threads()
    address = engine.get_function_address
    yield {
        "gemm": GEMM_TYPE(address("gemm")),
        "tiny": GEMM_TYPE(address("gemm_tiny")),
        "avx512_tile": GEMM_TYPE(address("gemm_avx512_tile")),
        "bias_relu": BIAS_GEMM_TYPE(address("gemm_bias_relu")),
        "tiny_bias_relu": BIAS_GEMM_TYPE(address("gemm_tiny_bias_relu")),
        "x2": GEMM_TYPE(address("gemm_x2")),
    }
    threads.set_threads(before)


def _strides(x: np.ndarray) -> tuple[int, int]:
    return x.strides[0] // 4, x.strides[1] // 4


def call(fn: Callable[..., None], a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool = False,
         *extra: np.ndarray) -> None:
    """C = (or +=) A @ B through the JIT-ed function; the views' strides are passed, not copies."""
    assert a.dtype == b.dtype == c.dtype == np.float32 and c.strides[1] == 4
    m, k = a.shape
    n = b.shape[1]
    fn(m, n, k, a.ctypes.data, *_strides(a), b.ctypes.data, *_strides(b), c.ctypes.data, _strides(c)[0],
       int(accumulate), *(e.ctypes.data for e in extra))


def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


def assert_gemm_close(c: np.ndarray, expected: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Error bound scaled by |A| @ |B| (what f32 rounding of the products and sums is relative to)."""
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=0, atol=1e-5 * max(1.0, float(scale.max())))


def _operands(rng: np.random.Generator, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32))


SHAPES = [(1, 1, 1), (1, 7, 17), (7, 1, 65), (17, 65, 7), (6, 16, 256), (7, 17, 257), (12, 32, 1),
          (65, 17, 1000), (1000, 17, 65), (128, 128, 128), (129, 200, 300), (64, 768, 50)]


@pytest.mark.parametrize("variant", ["gemm", "tiny", "avx512_tile"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_numpy(gemms: dict, variant: str, shape: tuple[int, int, int],
                       rng: np.random.Generator) -> None:
    m, n, k = shape
    a, b = _operands(rng, m, n, k)
    c = np.full((m, n), np.nan, dtype=np.float32)  # every element must be written
    call(gemms[variant], a, b, c)
    assert_gemm_close(c, reference(a, b), a, b)


def test_matches_torch_mm(gemms: dict, rng: np.random.Generator) -> None:
    a, b = _operands(rng, 300, 257, 513)
    c = np.empty((300, 257), dtype=np.float32)
    call(gemms["gemm"], a, b, c)
    expected = torch.mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["gemm", "tiny"])
@pytest.mark.parametrize("layout", ["At", "Bt", "AtBt", "strided"])
def test_transposed_and_strided_operands(gemms: dict, variant: str, layout: str,
                                         rng: np.random.Generator) -> None:
    m, n, k = 37, 45, 70
    a, b = _operands(rng, m, n, k)
    if "At" in layout:
        a = np.ascontiguousarray(a.T).T  # column-major view: rsA = 1, csA = m
    if "Bt" in layout:
        b = np.ascontiguousarray(b.T).T
    if layout == "strided":  # every other column of wider buffers, and C inside a padded buffer
        a = np.repeat(a, 2, axis=1)[:, ::2]
        b = np.repeat(b, 3, axis=1)[:, ::3]
    padded = np.full((m, n + 5), 7.0, dtype=np.float32)
    c = padded[:, 2:n + 2]
    call(gemms[variant], a, b, c)
    assert_gemm_close(c, reference(a, b), a, b)
    np.testing.assert_array_equal(padded[:, :2], 7.0)  # nothing written outside C
    np.testing.assert_array_equal(padded[:, n + 2:], 7.0)


@pytest.mark.parametrize("variant", ["gemm", "tiny"])
@pytest.mark.parametrize("shape", [(7, 17, 65), (64, 100, 300)], ids=str)
def test_accumulate_adds_into_c(gemms: dict, variant: str, shape: tuple[int, int, int],
                                rng: np.random.Generator) -> None:
    m, n, k = shape
    a, b = _operands(rng, m, n, k)
    c0 = rng.standard_normal((m, n), dtype=np.float32)
    c = c0.copy()
    call(gemms[variant], a, b, c, True)
    assert_gemm_close(c, c0 + reference(a, b), a, b)


def test_k_zero_writes_zeros_or_keeps_c(gemms: dict, rng: np.random.Generator) -> None:
    a, b = _operands(rng, 9, 20, 0)
    c = np.full((9, 20), 3.0, dtype=np.float32)
    call(gemms["gemm"], a, b, c, True)
    np.testing.assert_array_equal(c, 3.0)
    call(gemms["gemm"], a, b, c)
    np.testing.assert_array_equal(c, 0.0)


def test_empty_m_or_n_touches_nothing(gemms: dict) -> None:
    c = np.full((4, 4), 5.0, dtype=np.float32)
    a = np.ones((4, 4), dtype=np.float32)
    gemms["gemm"](0, 4, 4, a.ctypes.data, 4, 1, a.ctypes.data, 4, 1, c.ctypes.data, 4, 0)
    gemms["gemm"](4, -1, 4, a.ctypes.data, 4, 1, a.ctypes.data, 4, 1, c.ctypes.data, 4, 0)
    np.testing.assert_array_equal(c, 5.0)


@pytest.mark.parametrize("variant", ["bias_relu", "tiny_bias_relu"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 17, 65), (65, 33, 100), (130, 70, 20)], ids=str)
@pytest.mark.parametrize("accumulate", [False, True])
def test_bias_relu_epilogue(gemms: dict, variant: str, shape: tuple[int, int, int], accumulate: bool,
                            rng: np.random.Generator) -> None:
    """The epilogue sees the complete sum (after every k block, plus C when accumulating) once."""
    m, n, k = shape
    a, b = _operands(rng, m, n, k)
    bias = rng.standard_normal(n, dtype=np.float32)
    c0 = rng.standard_normal((m, n), dtype=np.float32)
    c = c0.copy()
    call(gemms[variant], a, b, c, accumulate, bias)
    ta, tb, tc0 = (torch.from_numpy(x).double() for x in (a, b, c0))
    expected = torch.relu((tc0 if accumulate else 0) + ta @ tb + torch.from_numpy(bias).double()).numpy()
    assert_gemm_close(c, expected, a, b)


def test_one_and_two_threads_agree(gemms: dict, rng: np.random.Generator) -> None:
    a, b = _operands(rng, 257, 300, 2000)
    results = []
    for count in (1, 2):
        threads.set_threads(count)
        c = np.empty((257, 300), dtype=np.float32)
        call(gemms["gemm"], a, b, c)
        results.append(c)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4, atol=1e-4)
    assert_gemm_close(results[1], reference(a, b), a, b)


def test_plain_callable_epilogue(gemms: dict, rng: np.random.Generator) -> None:
    """An epilogue can be a bare (builder, acc, row, col, lanes) callable with no extra arguments."""
    a, b = _operands(rng, 20, 30, 40)
    c = np.empty((20, 30), dtype=np.float32)
    call(gemms["x2"], a, b, c)
    assert_gemm_close(c, 2 * reference(a, b), a, b)


def test_avx512_tile_compiles_to_zmm_fmas() -> None:
    """On an AVX-512 CPU the 14 x 32 tile keeps its 28 accumulators in zmm registers (compile only:
    this host has no AVX-512; the numerical tests above run the same IR legalised to AVX2)."""
    import llvmlite.binding as llvm

    module = create_module("gemm_avx512")
    gemm_function(module, "gemm", blocking=GemmBlocking(vw=16, mr=14, nv=2, kc=256, mc=140, nc=4096))
    machine = llvm.Target.from_triple(host_target().triple).create_target_machine(
        cpu="znver4", features="", opt=3, reloc="pic", codemodel="default")
    parsed = llvm.parse_assembly(str(module))
    pto = llvm.PipelineTuningOptions(speed_level=3)
    builder = llvm.create_pass_builder(machine, pto)
    builder.getModulePassManager().run(parsed, builder)
    blocks = machine.emit_assembly(parsed).split("\n.LBB")
    k_loops = [blk for blk in blocks if blk.count("vfmadd231ps") >= 28]
    assert k_loops, "no basic block with the 28 FMAs of a 14 x 2 zmm tile"
    assert all("zmm" in line for line in k_loops[0].splitlines() if "vfmadd231ps" in line)


def test_bad_blocking_is_an_error() -> None:
    with pytest.raises(GemmBlockingError):
        GemmBlocking(vw=8, mr=6, nv=2, kc=256, mc=100, nc=4080)  # mc not a multiple of mr
