"""Model benchmarks: archir-llvm against torch eager, torch.compile (Inductor) and archir's torch
backend, same weights and inputs, fp32, interleaved repetitions in one process, medians.

Run `python bench/models.py [--threads N] [--reps R] [--only gpt2,lstm] [--contenders ...]`;
`--smoke` shrinks every workload (the test suite runs it that way). Prints markdown tables:
times and speed ratios, each contender's max abs error vs torch eager, and compile times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py and workloads.py beside us

import harness
from workloads import FULL, SMOKE, Sizes, Workload, block_graph, workloads

from archir.backend import compile_graph

CONTENDERS = ("torch-eager", "torch.compile", "archir-torch", "archir-llvm")
TOLERANCE = 1e-3  # max abs difference from torch eager before a result is marked WRONG


@dataclass(slots=True)
class Row:
    """What one workload produced: a cell per contender in each table."""

    name: str
    unit: str
    times: dict[str, str] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    compile: dict[str, str] = field(default_factory=dict)
    arena: str = "-"  # the llvm module's arena, from its compile report


def _build(row: Row, contender: str, w: Workload, tensors: list[torch.Tensor]) -> Callable[[], Any]:
    """The zero-argument call of one contender on the workload (compiling it first if it needs to)."""
    if contender == "torch-eager":
        return lambda: w.torch_module(*tensors)
    started = time.perf_counter()
    if contender == "torch.compile":
        compiled = torch.compile(w.torch_module, dynamic=False)
        compiled(*tensors)  # compile now, so no timed call pays for it
        row.compile[contender] = f"{time.perf_counter() - started:.2f} s"
        return lambda: compiled(*tensors)
    backend = contender.removeprefix("archir-")
    module = compile_graph(w.graph, backend)
    row.compile[contender] = f"{time.perf_counter() - started:.2f} s"
    how = [n.removeprefix("object code: ") for n in module.report.notes if n.startswith("object code:")]
    if how:  # the llvm backend says whether it compiled or read its disk cache
        row.compile[contender] += f" ({how[0]})"
    if backend == "llvm":
        arena = [n.removeprefix("arena: ") for n in module.report.notes if n.startswith("arena:")]
        row.arena = arena[0] if arena else "-"
        return lambda: module(*w.inputs)  # numpy in, numpy out: its native form, no conversion
    return lambda: module(*tensors)


def run_workload(w: Workload, contenders: list[str], args: Any) -> Row:
    row = Row(w.name, w.unit)
    tensors = [torch.from_numpy(a) for a in w.inputs]
    reference = w.torch_module(*tensors)
    runners: dict[str, Callable[[], Any]] = {}
    for contender in contenders:
        try:
            fn = _build(row, contender, w, tensors)
            error = harness.max_abs_error(fn(), reference)
        except Exception as err:  # a contender that cannot run this workload gets its error printed
            row.times[contender] = harness.error_cell(err)
            row.errors[contender] = "-"
            continue
        ok = error <= TOLERANCE  # False for nan too
        row.errors[contender] = f"{error:.1e} {'ok' if ok else 'WRONG'}"
        runners[contender] = fn
    timings = harness.interleaved(runners, reps=args.reps, warmup=args.warmup, gap=args.gap,
                                  min_sample_s=harness.sample_seconds(args, 0.005))
    for contender, timing in timings.items():
        row.medians[contender] = timing.median
        row.best[contender] = harness.format_seconds(timing.best, w.unit)
        cell = harness.format_seconds(timing.median, w.unit)
        row.times[contender] = cell if row.errors[contender].endswith("ok") else cell + " (WRONG)"
    return row


def _ratio(row: Row, over: str, under: str) -> str:
    """How many times faster `under` runs than `over` (> 1: `under` is faster)."""
    if over in row.medians and under in row.medians:
        return f"{row.medians[over] / row.medians[under]:.2f}x"
    return "-"


def tables(rows: list[Row], contenders: list[str]) -> str:
    ratios = [c for c in ("torch-eager", "torch.compile") if c in contenders and "archir-llvm" in contenders]
    headers = ["workload", *contenders, *[f"llvm vs {c}" for c in ratios]]
    body = [[r.name, *[r.times.get(c, "-") for c in contenders],
             *[_ratio(r, c, "archir-llvm") for c in ratios]] for r in rows]
    checked = [c for c in contenders if c != "torch-eager"]
    errors = [[r.name, *[r.errors.get(c, "-") for c in checked]] for r in rows]
    compiled = [c for c in contenders if c != "torch-eager"]
    compile_rows = [[r.name, *[r.compile.get(c, "-") for c in compiled]] for r in rows]
    best = [[r.name, *[r.best.get(c, "-") for c in contenders]] for r in rows]
    parts = ["## Median time per call (lower is better); `llvm vs X` = X's time / archir-llvm's time",
             harness.markdown_table(headers, body),
             "\n## Best sample per call (the least disturbed by other load on the machine)",
             harness.markdown_table(["workload", *contenders], best),
             f"\n## Max abs difference from torch eager (tolerance {TOLERANCE:g})",
             harness.markdown_table(["workload", *checked], errors)]
    if compiled:
        parts += ["\n## Compile time (first call of torch.compile; compile_graph for archir)",
                  harness.markdown_table(["workload", *compiled], compile_rows)]
    if "archir-llvm" in contenders:
        parts += ["\n## archir-llvm arena (its compile report: temps, bytes as a formula of the dims)",
                  harness.markdown_table(["workload", "arena"], [[r.name, r.arena] for r in rows])]
    return "\n".join(parts)


@contextlib.contextmanager
def fresh_cache_dirs(*variables: str) -> Iterator[None]:
    """Point each cache variable (ARCHIR_CACHE_DIR, TORCHINDUCTOR_CACHE_DIR) at a new empty
    directory for the duration, then restore it."""
    previous = {v: os.environ.get(v) for v in variables}
    with tempfile.TemporaryDirectory(prefix="archir-bench-caches-") as root:
        for v in variables:
            os.environ[v] = os.path.join(root, v.lower())
        try:
            yield
        finally:
            for v, value in previous.items():
                if value is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = value


def _timed_compile(sizes: Sizes) -> tuple[float, str]:
    """Seconds of compile_graph(block, "llvm") and how the backend says it got the code."""
    graph = block_graph(sizes)
    started = time.perf_counter()
    module = compile_graph(graph, "llvm")
    seconds = time.perf_counter() - started
    how = [n.removeprefix("object code: ") for n in module.report.notes if n.startswith("object code:")]
    return seconds, how[0] if how else "?"


def _probe_in_fresh_process(smoke: bool) -> str:
    command = [sys.executable, __file__, "--cache-probe"] + (["--smoke"] if smoke else [])
    probe = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if probe.returncode:
        return harness.error_cell(RuntimeError(" ".join(probe.stderr.strip().splitlines()[-1:])))
    result = json.loads(probe.stdout.splitlines()[-1])
    return f"{result['seconds']:.3f} s ({result['how']})"


def compile_time_table(sizes: Sizes, smoke: bool) -> str:
    """GPT-2 block through the llvm backend: cold (empty cache dir), then from the disk cache in
    this process and in a fresh one."""
    rows: list[list[str]] = []
    with fresh_cache_dirs("ARCHIR_CACHE_DIR"):
        try:
            for label in ("cold (empty ARCHIR_CACHE_DIR)", "from the disk cache, same process"):
                seconds, how = _timed_compile(sizes)
                rows.append([label, f"{seconds:.3f} s ({how})"])
            rows.append(["from the disk cache, fresh process (imports excluded)",
                         _probe_in_fresh_process(smoke)])
        except Exception as err:  # a failing backend is a table cell, not a crash
            rows.append(["failed", harness.error_cell(err)])
    title = f"\n## archir-llvm compile time of the GPT-2 block [1,{sizes.seqs[0]},{sizes.dim}]"
    return title + "\n" + harness.markdown_table(["case", "compile_graph(g, 'llvm')"], rows)


def parse_args() -> Any:
    parser = harness.bench_parser(__doc__)
    parser.add_argument("--contenders", type=str, default=",".join(CONTENDERS),
                        help=f"comma-separated subset of {', '.join(CONTENDERS)}")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: checks the script, times nothing real")
    parser.add_argument("--cold-caches", action="store_true",
                        help="empty ARCHIR_CACHE_DIR and TORCHINDUCTOR_CACHE_DIR for this run, so "
                             "the compile-time table shows cold compiles of both")
    parser.add_argument("--cache-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in args.contenders if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    if "torch-eager" not in args.contenders:
        args.contenders.insert(0, "torch-eager")  # the reference every result is checked against
    return args


def main() -> None:
    args = parse_args()
    sizes = SMOKE if args.smoke else FULL
    harness.set_threads(args.threads)
    if args.cache_probe:  # internal: time one compile from the cache in this fresh process
        seconds, how = _timed_compile(sizes)
        print(json.dumps({"seconds": seconds, "how": how}))
        return
    print("# archir model benchmarks" + (" (--smoke: tiny sizes, times mean nothing)" if args.smoke else ""))
    print("\n".join(harness.machine_info(args.threads)))
    print(f"- compile caches: {'empty at start (--cold-caches)' if args.cold_caches else 'as found'}\n",
          flush=True)
    caches = ("ARCHIR_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR") if args.cold_caches else ()
    rows: list[Row] = []
    with fresh_cache_dirs(*caches), torch.inference_mode():
        for name, build in workloads(sizes):
            if not harness.selected(name, args.only):
                continue
            torch.manual_seed(0)
            rows.append(run_workload(build(), args.contenders, args))
            print(f"<!-- done: {name} -->", flush=True)
    print(tables(rows, args.contenders))
    if "archir-llvm" in args.contenders and harness.selected("compile-time", args.only):
        print(compile_time_table(sizes, args.smoke))
    print(f"\nload average (1, 5, 15 min) at end: {harness.load_average()}")


if __name__ == "__main__":
    main()
