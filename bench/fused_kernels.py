"""Benchmark of the llvm backend's fused kernels (row kernels, fused elementwise chains, GEMM
epilogues, flash attention) against torch eager, fp32, same thread count, interleaved runs.

Run `python bench/fused_kernels.py [--threads 2] [--reps 15] [--gap 0.02] [--sample-ms 50]
[--only softmax,ln_chain]`: prints a markdown table of medians (ms per call) for llvm with
`canonicalize,fuse`, llvm unfused and torch eager, timed by bench/harness.py like the other benches
(the contenders take turns, each sample after the same idle gap; `--sample-ms 50` times calls
back to back as in a model's loop instead of single calls after the gap).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py beside us

import harness

from archir.backend import compile_graph
from archir.parser import parse
from archir.pass_manager import run_pipeline


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    air: str
    shapes: list[tuple[int, ...]]  # inputs then params
    n_inputs: int
    torch_fn: Callable[..., torch.Tensor]


def _ln_chain(x: torch.Tensor, r: torch.Tensor, g: torch.Tensor, b: torch.Tensor, s: torch.Tensor,
              c: torch.Tensor) -> torch.Tensor:
    y = F.layer_norm(x, (x.shape[-1],), g, b) * s + c
    return F.gelu(y, approximate="tanh") + r


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _linear_gelu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.gelu(F.linear(x, w, b), approximate="tanh")


def _rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w


WORKLOADS = [
    Workload("ln_chain", """
graph @ln_chain(%x: f32[N, 768], %r: f32[N, 768]) -> f32[N, 768]
    params(%g: f32[768], %b: f32[768], %s: f32[768], %c: f32[768]) {
  %0 = layer_norm(%x, %g, %b) : f32[N, 768]
  %1 = mul(%0, %s) : f32[N, 768]
  %2 = add(%1, %c) : f32[N, 768]
  %3 = gelu(%2) {approximate = "tanh"} : f32[N, 768]
  %4 = add(%3, %r) : f32[N, 768]
  return %4
}""", [(4096, 768), (4096, 768), (768,), (768,), (768,), (768,)], 2, _ln_chain),
    Workload("softmax", """
graph @softmax(%x: f32[N, M]) -> f32[N, M] {
  %0 = softmax(%x) : f32[N, M]
  return %0
}""", [(4096, 4096)], 1, lambda x: torch.softmax(x, -1)),
    Workload("log_softmax", """
graph @log_softmax(%x: f32[N, M]) -> f32[N, M] {
  %0 = log_softmax(%x) : f32[N, M]
  return %0
}""", [(4096, 4096)], 1, lambda x: torch.log_softmax(x, -1)),
    Workload("layer_norm", """
graph @layer_norm(%x: f32[N, 768]) -> f32[N, 768] params(%g: f32[768], %b: f32[768]) {
  %0 = layer_norm(%x, %g, %b) : f32[N, 768]
  return %0
}""", [(4096, 768), (768,), (768,)], 1, lambda x, g, b: F.layer_norm(x, (768,), g, b)),
    Workload("rms_norm", """
graph @rms_norm(%x: f32[N, 768]) -> f32[N, 768] params(%w: f32[768]) {
  %0 = rms_norm(%x, %w) : f32[N, 768]
  return %0
}""", [(4096, 768), (768,)], 1, _rms),
    Workload("linear_gelu", """
graph @linear_gelu(%x: f32[N, 768]) -> f32[N, 3072] params(%w: f32[3072, 768], %b: f32[3072]) {
  %0 = linear(%x, %w, %b) : f32[N, 3072]
  %1 = gelu(%0) {approximate = "tanh"} : f32[N, 3072]
  return %1
}""", [(512, 768), (3072, 768), (3072,)], 1, _linear_gelu),
    Workload("attention_causal", """
graph @attn(%q: f32[1, 12, T, 64], %k: f32[1, 12, T, 64], %v: f32[1, 12, T, 64]) -> f32[1, 12, T, 64] {
  %0 = attention(%q, %k, %v) {causal = true} : f32[1, 12, T, 64]
  return %0
}""", [(1, 12, 512, 64)] * 3, 3, _attention),
]


def compiled(w: Workload, fuse: bool, rng: np.random.Generator) -> tuple[Callable[..., list], list]:
    graph = parse(w.air)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in w.shapes]
    graph.param_data = {p.name: a for p, a in zip(graph.params, arrays[w.n_inputs:], strict=True)}
    if fuse:
        data = graph.param_data
        graph = run_pipeline(graph, "canonicalize,fuse")
        graph.param_data = data
    return compile_graph(graph, "llvm", pipeline=""), arrays  # the pipeline is chosen above


def bench(w: Workload, args: argparse.Namespace) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(0)
    fused, arrays = compiled(w, True, rng)
    plain, _ = compiled(w, False, rng)
    inputs = arrays[: w.n_inputs]
    tensors = [torch.from_numpy(a) for a in arrays]
    want = w.torch_fn(*tensors).numpy()
    got = fused(*inputs)[0]
    error = float(np.abs(got - want).max())
    runners = {"fused": lambda: fused(*inputs), "plain": lambda: plain(*inputs),
               "torch": lambda: w.torch_fn(*tensors)}
    timings = harness.interleaved(runners, reps=args.reps, warmup=args.warmup, gap=args.gap,
                                  min_sample_s=harness.sample_seconds(args, 0.002))
    t_fused, t_plain, t_torch = (1e3 * timings[k].median for k in runners)
    return t_fused, t_plain, t_torch, error


def main() -> None:
    args = harness.bench_parser(__doc__).parse_args()
    harness.set_threads(args.threads)
    sample = 1e3 * harness.sample_seconds(args, 0.002)
    print(f"threads = {args.threads}, medians of {args.reps} interleaved samples (ms per call), "
          f"{1e3 * args.gap:g} ms idle before each sample, samples of >= {sample:g} ms of calls\n")
    print("| workload | llvm fused | llvm unfused | torch eager | eager / fused | max abs err vs torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        if not harness.selected(w.name, args.only):
            continue
        f, p, t, err = bench(w, args)
        print(f"| {w.name} | {f:.2f} | {p:.2f} | {t:.2f} | {t / f:.2f}x | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
