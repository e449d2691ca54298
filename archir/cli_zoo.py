"""`archir zoo list` and `archir zoo check`: the example models, their references, and how each
backend fares against them (`zoo.check`: max abs error against the reference at each size).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from archir import zoo
from archir.backend import available_backends
from archir.errors import ArchirError, ArgumentError, BackendError
from archir.types import TensorType


@dataclass(slots=True)
class Outcome:
    """The checks of one example on one backend, or why they could not run."""

    entry: zoo.ZooEntry
    backend: str
    results: list[zoo.CheckResult] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.results)

    def cell(self) -> str:
        if self.error is not None:
            return "error"
        worst = max((r.max_abs_error for r in self.results), default=0.0)
        return f"{'ok' if self.ok else 'FAIL'} {worst:.1e}"


def run_check(entry: zoo.ZooEntry, path: Path, backend: str, seed: int = 0) -> Outcome:
    """`zoo.check`, with any failure to run it kept as the outcome's error rather than raised."""
    try:
        return Outcome(entry, backend, zoo.check(entry, path, backend, seed))
    except ArchirError as err:
        return Outcome(entry, backend, error=str(err).removeprefix("error: "))
    except Exception as err:  # a reference or backend crashing is a failed check, not a crashed CLI
        return Outcome(entry, backend, error=f"{type(err).__name__}: {err}")


def check_backends(names: list[str] | None, *, load: bool = True) -> list[str]:
    """The backends named (all when none are), after checking they exist.

    With `load=False` the plugins are not imported: their entry-point names stand for the backends
    they register, which spares `zoo list` the seconds that importing torch takes."""
    known = available_backends() if load else _plugin_names()
    for name in names or []:
        if name not in known:
            raise BackendError(f"unknown backend '{name}'", hint=f"available backends: {', '.join(known)}")
    return list(dict.fromkeys(names)) if names else known


def _plugin_names() -> list[str]:
    return sorted({"interp", *(e.name for e in entry_points(group="archir.backends"))})


# -- zoo list -------------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    backends = check_backends(args.backend, load=args.check)
    header = ["name", "family", "params", "reference", *backends]
    rows, outcomes = [], []
    for entry, path in zoo.entries():
        row = [entry.name, entry.family, param_count(entry, path), entry.reference]
        for backend in backends:
            if args.check:
                outcomes.append(run_check(entry, path, backend))
                row.append(outcomes[-1].cell())
            else:
                row.append("untested")
        rows.append(row)
    print(format_table(header, rows, right_aligned={2}))
    for outcome in outcomes:
        if outcome.error is not None:
            where = f"{outcome.entry.name} on {outcome.backend}"
            print(f"archir: error: {where}: {outcome.error}", file=sys.stderr)
    return 0 if all(o.ok for o in outcomes) else 1


def param_count(entry: zoo.ZooEntry, path: Path) -> str:
    """Number of parameter elements, from the built graph (building a zoo model takes milliseconds)."""
    try:
        _, graph = zoo.build(entry, path)
    except Exception as err:  # an example that does not build is shown, not fatal to the listing
        print(f"archir: {entry.name}: cannot build: {type(err).__name__}: {err}", file=sys.stderr)
        return "?"
    total = 0
    for p in graph.params:
        data = graph.param_data.get(p.name)
        if data is not None:
            total += int(data.size)
        elif isinstance(p.type, TensorType) and all(isinstance(d, int) for d in p.type.shape):
            total += _product(p.type.shape)
    return f"{total:,}"


def _product(dims: tuple[Any, ...]) -> int:
    size = 1
    for d in dims:
        size *= d
    return size


def format_table(header: list[str], rows: list[list[str]], right_aligned: set[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i in right_aligned else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- zoo check ------------------------------------------------------------------------------------
def check_command(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise ArgumentError("name zoo examples to check, or give --all (not both)",
                            hint="archir zoo check gpt2 --backend torch; `archir zoo list` shows the names")
    chosen = zoo.entries() if args.all else [zoo.find(name) for name in args.names]
    backends = check_backends(args.backend or ["interp"])
    passed = total = 0
    for entry, path in chosen:
        for backend in backends:
            outcome = run_check(entry, path, backend, args.seed)
            print_outcome(outcome)
            # One check per size; an example that could not run counts as one failed check.
            total += len(outcome.results) or 1
            passed += sum(r.ok for r in outcome.results)
    print(f"{passed} of {total} checks passed")
    return 0 if passed == total else 1


def print_outcome(outcome: Outcome) -> None:
    name, backend = outcome.entry.name, outcome.backend
    if outcome.error is not None:
        print(f"{name}  {backend}  error: {outcome.error}")
    for r in outcome.results:
        sizes = ",".join(f"{k}={v}" for k, v in r.sizes.items())
        print(f"{name}  {backend}  {sizes}  max_abs_error={r.max_abs_error:.3g}  "
              f"tol={outcome.entry.tolerance:.3g}  {'ok' if r.ok else 'FAIL'}")


# -- the parsers ----------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    zoo_parser = sub.add_parser("zoo", help="the example models and their checks against references")
    zoo_sub = zoo_parser.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")

    listing = zoo_sub.add_parser("list", help="table of the examples, with a status per backend")
    listing.add_argument("--check", action="store_true", help="run every check (slow) to fill the status")
    listing.add_argument("--backend", action="append", metavar="B",
                         help="a backend column (repeatable; default: every available backend)")
    listing.set_defaults(handler=list_command)

    check = zoo_sub.add_parser("check", help="check examples against their references")
    check.add_argument("names", nargs="*", metavar="NAME", help="zoo example names")
    check.add_argument("--all", action="store_true", help="check every example")
    check.add_argument("--backend", action="append", metavar="B",
                       help="backend to check (repeatable; default interp)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    check.set_defaults(handler=check_command)
