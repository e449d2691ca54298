"""Benchmark of the LLVM backend's packed GEMM against torch.mm (fp32, same thread count).

Run `python bench/gemm.py [--threads N] [--reps R] [--shapes 1024,2048] [--mc 144 --kc 256 --nc 4080]`:
interleaved repetitions in one process, medians, GFLOP/s, ratio, then the 1 -> N thread speed-up.
Each timed call starts after a short pause: idle OpenMP threads of torch (and briefly our pool's)
spin after a call, and would otherwise steal the core from the next library's timed call.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from archir.backends.llvm.gemm import gemm_function
from archir.backends.llvm.gemm_kernel import GemmBlocking, default_blocking
from archir.backends.llvm.target import create_module, host_target
from archir.backends.llvm.threads import compile_module, set_threads

P, L = ctypes.c_void_p, ctypes.c_int64
GEMM_TYPE = ctypes.CFUNCTYPE(None, L, L, L, P, L, L, P, L, L, P, L, ctypes.c_int32)
SQUARES = [(n, n, n) for n in (256, 512, 1024, 2048)]
MODEL_SHAPES = [(64, 768, 3072), (64, 3072, 768), (128, 768, 2304), (512, 768, 3072)]


def compile_gemm(blocking: GemmBlocking) -> tuple[Callable[..., None], object]:
    module = create_module("bench_gemm")
    gemm_function(module, "gemm", blocking=blocking)
    engine = compile_module(module)
    return GEMM_TYPE(engine.get_function_address("gemm")), engine


def archir_mm(fn: Callable[..., None], a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    m, k = a.shape
    n = b.shape[1]
    fn(m, n, k, a.ctypes.data, k, 1, b.ctypes.data, n, 1, c.ctypes.data, n, 0)


def time_pair(fn: Callable[..., None], shape: tuple[int, int, int], reps: int,
              gap: float) -> tuple[float, float]:
    """Median seconds of archir and torch.mm on one shape, runs interleaved."""
    m, n, k = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tc = torch.empty(m, n)
    archir_mm(fn, a, b, c)
    torch.mm(ta, tb, out=tc)
    error = float(np.abs(c - tc.numpy()).max() / max(1.0, float(np.abs(tc.numpy()).max())))
    if error > 1e-4:
        raise SystemExit(f"archir GEMM disagrees with torch.mm on {shape}: relative error {error:.2e}")
    ours: list[float] = []
    theirs: list[float] = []
    inner = max(1, int(2e8 // (2 * m * n * k)))  # batch tiny shapes so the timer resolves them
    for _ in range(reps):
        time.sleep(gap)
        start = time.perf_counter()
        for _ in range(inner):
            archir_mm(fn, a, b, c)
        ours.append((time.perf_counter() - start) / inner)
        time.sleep(gap)
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(ta, tb, out=tc)
        theirs.append((time.perf_counter() - start) / inner)
    return statistics.median(ours), statistics.median(theirs)


def gflops(shape: tuple[int, int, int], seconds: float) -> float:
    m, n, k = shape
    return 2.0 * m * n * k / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--shapes", type=str, default="", help="comma-separated square sizes only")
    parser.add_argument("--mc", type=int)
    parser.add_argument("--kc", type=int)
    parser.add_argument("--nc", type=int)
    parser.add_argument("--gap", type=float, default=0.25, help="seconds idle before each timed call")
    parser.add_argument("--no-speedup", action="store_true")
    args = parser.parse_args()
    base = default_blocking(host_target().vector_width_f32)
    blocking = GemmBlocking(vw=base.vw, mr=base.mr, nv=base.nv, kc=args.kc or base.kc, mc=args.mc or base.mc,
                            nc=args.nc or base.nc)
    fn, _engine = compile_gemm(blocking)
    shapes = [(n, n, n) for n in map(int, args.shapes.split(","))] if args.shapes else SQUARES + MODEL_SHAPES
    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"host {host_target().cpu}, threads {args.threads}, blocking {blocking}\n")
    print("| M x N x K | archir ms | torch.mm ms | archir GFLOP/s | torch GFLOP/s | archir / torch |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        ours, theirs = time_pair(fn, shape, args.reps, args.gap)
        print(f"| {'x'.join(map(str, shape))} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} "
              f"| {gflops(shape, ours):.1f} | {gflops(shape, theirs):.1f} | {theirs / ours:.2f} |",
              flush=True)
    if not args.no_speedup and args.threads > 1:
        speedup(fn, args.threads, args.reps, args.gap)


def speedup(fn: Callable[..., None], threads: int, reps: int, gap: float) -> None:
    """1-thread vs N-thread time of archir at 2048^3, interleaved (median and best of each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    c = np.empty((2048, 2048), dtype=np.float32)
    times: dict[int, list[float]] = {1: [], threads: []}
    for _ in range(reps):
        for count in times:
            set_threads(count)
            time.sleep(gap)
            start = time.perf_counter()
            archir_mm(fn, a, b, c)
            times[count].append(time.perf_counter() - start)
    one, many = statistics.median(times[1]), statistics.median(times[threads])
    best_one, best_many = min(times[1]), min(times[threads])
    print(f"\n2048^3: 1 thread {one * 1e3:.1f} ms, {threads} threads {many * 1e3:.1f} ms, "
          f"speed-up {one / many:.2f}x (medians); best {best_one * 1e3:.1f} / {best_many * 1e3:.1f} ms, "
          f"{best_one / best_many:.2f}x")
    set_threads(threads)


if __name__ == "__main__":
    main()
