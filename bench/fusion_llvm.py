"""Fusion on vs off on the llvm backend, per zoo model: the same graph compiled after
`canonicalize` and after `canonicalize,fuse`, timed side by side (interleaved, medians), with
torch eager on the zoo reference module beside them and the two archir outputs compared.

    python bench/fusion_llvm.py                   # every zoo model, batch x8 of its last sizes
    python bench/fusion_llvm.py --only gpt2,resnet --batch-scale 32 --threads 1
"""

from __future__ import annotations

import sys
from typing import Any

import harness
import numpy as np
import torch

from archir import zoo
from archir.backend import compile_graph
from archir.report import graph_figures

UNFUSED, FUSED = "canonicalize", "canonicalize,fuse"


def bench_sizes(entry: zoo.ZooEntry, scale: int) -> dict[str, int]:
    """The entry's largest checked sizes with the batch symbol `B` scaled (sequence lengths stay:
    position tables bound them; pretrained models keep the batch of sentences they are checked on)."""
    sizes = dict(entry.sizes[-1])
    if "B" in sizes and "pretrained" not in entry.tags:  # pretrained inputs are real sentences
        sizes["B"] *= scale
    return sizes


def inputs_for(entry: zoo.ZooEntry, graph: Any, sizes: dict[str, int]) -> tuple[list[np.ndarray], Any]:
    """The zoo's inputs at `sizes` and the reference module (its `make_inputs` when it has one)."""
    ref = zoo.load_module(zoo.REFERENCES / f"{entry.name}.py", "reference")
    rng = np.random.default_rng(0)
    make = getattr(ref, "make_inputs", None)
    arrays = make(graph, sizes, rng) if make else zoo.random_inputs(graph, sizes, rng, entry.int_high)
    return arrays, ref


def measure(name: str, args: Any) -> list[str]:
    entry, path = zoo.find(name)
    model, graph = zoo.build(entry, path)
    sizes = bench_sizes(entry, args.batch_scale)
    arrays, ref = inputs_for(entry, graph, sizes)
    plain = compile_graph(graph, "llvm", pipeline=UNFUSED)
    fused = compile_graph(graph, "llvm", pipeline=FUSED)
    runners = {"llvm unfused": lambda: plain(*arrays), "llvm fused": lambda: fused(*arrays)}
    torch_module = getattr(ref, "torch_module", None)
    if torch_module is not None:
        module, to_args = torch_module(model)
        torch_args = to_args(*arrays)

        def eager() -> Any:
            with torch.inference_mode():
                return module(*torch_args)
        runners = {"torch eager": eager, **runners}
    timings = harness.interleaved(runners, reps=args.reps, warmup=args.warmup, gap=args.gap)
    error = harness.max_abs_error(fused(*arrays), plain(*arrays))
    kernels = f"{graph_figures(plain.graph, sizes).kernels} → {graph_figures(fused.graph, sizes).kernels}"
    eager = timings.get("torch eager")
    eager_ms = "-" if eager is None else harness.format_seconds(eager.median, "ms")
    off, on = timings["llvm unfused"].median, timings["llvm fused"].median
    return [name, ", ".join(f"{k}={v}" for k, v in sizes.items()), kernels, eager_ms,
            harness.format_seconds(off, "ms"), harness.format_seconds(on, "ms"), f"{off / on:.2f}x",
            f"{error:.1e}"]


def main(argv: list[str]) -> int:
    parser = harness.bench_parser(__doc__)
    parser.add_argument("--batch-scale", type=int, default=8, help="multiply the batch size B by this")
    args = parser.parse_args(argv)
    harness.set_threads(args.threads)
    print("\n".join(harness.machine_info(args.threads)))
    print(f"\n`{UNFUSED}` vs `{FUSED}` on the llvm backend; medians of {args.reps} interleaved runs; "
          "`fused vs unfused` = unfused time / fused time; `max diff` = fused vs unfused outputs.\n")
    rows = []
    for entry, _ in zoo.entries():
        if harness.selected(entry.name, args.only):
            try:
                rows.append(measure(entry.name, args))
            except Exception as err:  # one model failing must not hide the others' figures
                rows.append([entry.name, "-", "-", "-", "-", "-", "-", harness.error_cell(err)])
            print(f"<!-- done: {entry.name} -->", file=sys.stderr)
    print(harness.markdown_table(["model", "sizes", "kernels", "torch eager", "llvm unfused",
                                  "llvm fused", "fused vs unfused", "max diff"], rows))
    print(f"\n- load average at end: {harness.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
