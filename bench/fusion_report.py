"""Report figures for every zoo model (first sizes): `canonicalize,fuse,plan-memory` against
`canonicalize,plan-memory`, as a markdown table for bench/RESULTS.md.

    python bench/fusion_report.py            # all zoo models
    python bench/fusion_report.py gpt2 resnet
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from archir import zoo
from archir.pass_manager import all_aliases, all_passes, run_pipeline
from archir.report import GraphFigures, format_bytes, graph_figures

PLAIN = "canonicalize,plan-memory{%s}"
FUSED = "canonicalize,fuse,plan-memory{%s}"


def fuse_available() -> bool:
    return "fuse" in all_aliases() or any(p.name == "fuse" for p in all_passes())


def figures(name: str, pipeline: str) -> tuple[dict[str, int], GraphFigures]:
    entry, path = zoo.find(name)
    sizes = dict(entry.sizes[0])
    _, graph = zoo.build(entry, path)
    options = ",".join(f"{k}={v}" for k, v in sizes.items())
    return sizes, graph_figures(run_pipeline(graph, pipeline % options), sizes)


def _largest(f: GraphFigures) -> str:
    if f.largest is None:
        return "none"
    return f"{f.largest.type} {format_bytes(f.largest.bytes)}"


def _attention(f: GraphFigures) -> str:
    temp = f.composite_temps.get("attention")
    return "-" if temp is None else f"{temp.type}"


def _cell(plain: GraphFigures, after: GraphFigures | None, show: Callable[[GraphFigures], str]) -> str:
    before = show(plain)
    if after is None or (before == "-" and show(after) == "-"):
        return before
    return f"{before} → {show(after)}"


def _arena(f: GraphFigures | None) -> str:
    return "-" if f is None else f"{format_bytes(f.arena_bytes)} / {format_bytes(f.naive_bytes)}"


def _rules(f: GraphFigures | None) -> str:
    return "-" if f is None else (", ".join(f"{r} x{n}" for r, n in f.rules.items()) or "none")


def row(name: str, fused: bool) -> str:
    sizes, plain = figures(name, PLAIN)
    after = figures(name, FUSED)[1] if fused else None
    cells = [
        name,
        ", ".join(f"{k}={v}" for k, v in sizes.items()),
        _cell(plain, after, lambda f: str(f.kernels)),
        _cell(plain, after, lambda f: format_bytes(f.bytes_moved)),
        _arena(plain),
        _arena(after),
        _cell(plain, after, _largest),
        _cell(plain, after, _attention),
        _rules(after),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| model | sizes | kernels | bytes moved | arena / naive (unfused) | arena / naive (fused) "
          "| largest intermediate | attention temp (T x T) | rules fired |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str]) -> int:
    names = argv or [entry.name for entry, _ in zoo.entries()]
    fused = fuse_available()
    if not fused:
        print("> `fuse` is not registered yet: only the unfused pipeline "
              f"`{PLAIN % '...'}` is reported; the fused columns show '-'.\n")
    else:
        print(f"> `{PLAIN % '...'}` → `{FUSED % '...'}`; sizes are each zoo model's first.\n")
    print(HEADER)
    for name in names:
        print(row(name, fused))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
