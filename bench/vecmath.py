"""Throughput of the LLVM backend's f32 math functions against numpy/scipy and torch, one thread.

`python bench/vecmath.py [--n 16777216] [--repeats 7]` prints a markdown table of median times
over interleaved runs (archir kernel, numpy, torch in turn), all writing into preallocated output.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.special as sp
import torch
import torch.nn.functional as F
from archir.backends.llvm.target import host_target
from archir.backends.llvm.vecmath import FUNCTIONS
from archir.backends.llvm.vecmath_kernel import MathKernels
from llvmlite import ir

Runner = Callable[[], object]
SQRT_HALF = np.float32(math.sqrt(0.5))


def _numpy(name: str, x: np.ndarray, y: np.ndarray, out: np.ndarray) -> Runner:
    """What a numpy user writes: single ufuncs with out= where one exists, else expressions."""
    simple = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
              "sin": np.sin, "cos": np.cos, "sigmoid": sp.expit, "erf": sp.erf}
    if name in simple:
        return lambda: simple[name](x, out=out)
    if name == "pow":
        return lambda: np.power(x, y, out=out)
    if name == "silu":
        return lambda: np.multiply(x, sp.expit(x), out=out)
    if name == "gelu":
        return lambda: np.multiply(0.5 * x, 1 + sp.erf(x * SQRT_HALF), out=out)
    k = np.float32(math.sqrt(2 / math.pi))
    return lambda: np.multiply(0.5 * x, 1 + np.tanh(k * (x + np.float32(0.044715) * x * x * x)), out=out)


def _torch(name: str, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> Runner:
    simple = {"exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p,
              "tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos, "sigmoid": torch.sigmoid,
              "erf": torch.erf}
    if name in simple:
        return lambda: simple[name](x, out=out)
    if name == "pow":
        return lambda: torch.pow(x, y, out=out)
    if name == "silu":
        return lambda: out.copy_(F.silu(x))
    approximate = "tanh" if name == "gelu_tanh" else "none"
    return lambda: out.copy_(F.gelu(x, approximate=approximate))


def _inputs(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if name in ("log", "pow"):
        x = rng.uniform(1e-3, 100, n)
    elif name == "log1p":
        x = rng.uniform(-0.9, 100, n)
    elif name in ("sin", "cos"):
        x = rng.uniform(-100, 100, n)
    else:
        x = rng.uniform(-10, 10, n)
    return x.astype(np.float32), rng.uniform(-3, 3, n).astype(np.float32)


def _time(fn: Runner) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(n: int, repeats: int) -> list[str]:
    torch.set_num_threads(1)  # the kernels are single-threaded; compare like with like
    kernels = MathKernels(ir.FloatType())
    rng = np.random.default_rng(0)
    rows = ["| function | archir ms | Gelem/s | numpy ms | torch ms | vs numpy | vs torch |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(FUNCTIONS):
        x, y = _inputs(name, n, rng)
        out = np.empty_like(x)
        kernel = kernels.kernel(name)
        args = (x, y) if FUNCTIONS[name][1] == 2 else (x,)
        runners = {
            "archir": lambda kernel=kernel, args=args, out=out: kernel(*args, out=out),
            "numpy": _numpy(name, x, y, np.empty_like(x)),
            "torch": _torch(name, torch.from_numpy(x), torch.from_numpy(y), torch.empty(n)),
        }
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(repeats):  # interleaved so drifts in clock or load hit all three alike
            for key, fn in runners.items():
                times[key].append(_time(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(f"| {name} | {med['archir'] * 1e3:.1f} | {n / med['archir'] / 1e9:.2f} | "
                    f"{med['numpy'] * 1e3:.1f} | {med['torch'] * 1e3:.1f} | "
                    f"{med['numpy'] / med['archir']:.2f}x | {med['torch'] / med['archir']:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    target = host_target()
    load = os.getloadavg()[0]
    print(f"f32 elementwise math, n = {args.n}, one thread, {target.cpu} "
          f"(vector width {target.vector_width_f32}), median of {args.repeats}, load average "
          f"{load:.1f} on {os.cpu_count()} cores; 'vs' = their time / archir time (higher: archir faster)\n")
    print("\n".join(bench(args.n, args.repeats)))


if __name__ == "__main__":
    main()
