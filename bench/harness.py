"""Shared timing harness of the bench scripts: interleaved repetitions, medians, machine facts.

Contenders of one workload run in turn inside each repetition (the starting one rotates), so a
burst of load on this shared machine hits every contender alike; figures are medians of those runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Runner = Callable[[], Any]


@dataclass(slots=True)
class Timing:
    """Per-call seconds of one contender: every sample, and the calls batched into each."""

    samples: list[float] = field(default_factory=list)
    inner: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        """The least disturbed sample: on a loaded machine, the closest to the code's own speed."""
        return min(self.samples)


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every bench script shares: --threads, --reps, --warmup, --gap, --only."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for torch and archir alike (default: all cores)")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per contender first")
    parser.add_argument("--gap", type=float, default=0.02,
                        help="seconds idle before each timed sample: spinning idle threads of the "
                             "previous library would otherwise steal a core from the next")
    parser.add_argument("--sample-ms", type=float, default=None,
                        help="a sample is as many back-to-back calls as last this long (default: the "
                             "script's own, a few ms: single calls of ms-long workloads); e.g. 50 "
                             "times a workload in a loop, where the idle gap's cost is amortised")
    parser.add_argument("--only", type=str, default="",
                        help="comma-separated workload names (or parts of names) to run")
    return parser


def selected(name: str, only: str) -> bool:
    """Whether `--only` lets workload `name` through (empty = everything)."""
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    return not wanted or any(w in name for w in wanted)


def set_threads(count: int) -> None:
    """Give torch and archir's native thread pool the same number of threads."""
    torch.set_num_threads(count)
    try:
        from archir.backends.llvm.threads import set_threads as set_archir_threads
    except ImportError:  # the llvm backend (or llvmlite) is absent: torch-only runs still work
        return
    set_archir_threads(count)


def sample_seconds(args: argparse.Namespace, default: float) -> float:
    """The least duration of one sample: `--sample-ms` when given, else the script's default."""
    return default if args.sample_ms is None else args.sample_ms / 1e3


def calibrate(fn: Runner, min_sample_s: float) -> int:
    """How many calls make one sample last at least `min_sample_s` (so µs calls are resolvable)."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(min_sample_s / once))


def interleaved(runners: Mapping[str, Runner], *, reps: int, warmup: int, gap: float,
                min_sample_s: float = 0.002) -> dict[str, Timing]:
    """Median-ready per-call times of each runner, the runners cycled within each repetition."""
    timings: dict[str, Timing] = {}
    for name, fn in runners.items():
        for _ in range(warmup):
            fn()
        timings[name] = Timing(inner=calibrate(fn, min_sample_s))
    names = list(runners)
    for rep in range(reps):
        shift = rep % len(names)  # rotate who goes first, so no one always follows the same peer
        for name in names[shift:] + names[:shift]:
            fn, timing = runners[name], timings[name]
            if gap:
                time.sleep(gap)
            start = time.perf_counter()
            for _ in range(timing.inner):
                fn()
            timing.samples.append((time.perf_counter() - start) / timing.inner)
    return timings


def flat_arrays(result: Any) -> list[np.ndarray]:
    """Outputs of any contender (tensor, array, nested tuples/lists) as a flat list of arrays."""
    if isinstance(result, tuple | list):
        arrays: list[np.ndarray] = []
        for item in result:
            arrays.extend(flat_arrays(item))
        return arrays
    if isinstance(result, torch.Tensor):
        return [result.detach().cpu().numpy()]
    return [np.asarray(result)]


def max_abs_error(result: Any, reference: Any) -> float:
    """Largest |difference| over all outputs; inf when the outputs do not even line up."""
    ours, theirs = flat_arrays(result), flat_arrays(reference)
    if len(ours) != len(theirs):
        return float("inf")
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            worst = max(worst, float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
            if np.isnan(a).sum() != np.isnan(b).sum():
                return float("nan")
    return worst


def error_cell(err: BaseException, width: int = 90) -> str:
    """An exception squeezed into one markdown table cell."""
    text = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
    text = text.replace("|", "/")
    return "error: " + (text if len(text) <= width else text[: width - 3] + "...")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine_info(threads: int) -> list[str]:
    """Lines that say where and when a table was measured."""
    lines = [f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
             f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores visible)",
             f"- threads: {threads} (torch.set_num_threads and archir set_threads)",
             f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}"]
    try:
        import llvmlite
        from archir.backends.llvm.target import host_target

        target = host_target()
        lines.append(f"- llvmlite {llvmlite.__version__}, host target {target.cpu}, "
                     f"{target.vector_width_f32} f32 lanes")
    except Exception as err:  # only informative: a broken backend must not stop the bench
        lines.append(f"- llvm backend unavailable: {error_cell(err)}")
    lines.append(f"- load average (1, 5, 15 min) at start: {load_average()}")
    return lines


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def format_seconds(seconds: float, unit: str) -> str:
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    label = "µs" if unit == "us" else unit
    value = seconds * scale
    return f"{value:.1f} {label}" if value >= 100 else f"{value:.3g} {label}"
