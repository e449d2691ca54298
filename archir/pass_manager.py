"""Named passes and pipelines: `PassManager("simplify,cse,dce").run(graph)`.

A pass is a function `(graph, **options) -> Graph`, registered under a name. Pipelines are
strings such as `"canonicalize,specialize-shapes{B=4,T=128}"`. The manager verifies after each
pass, times them, and prints the IR after the passes asked for.

Passes live outside the core (in `archir.passes` or any other package) and reach this registry
through the `archir.passes` entry-point group, loaded the first time a pass is looked up.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TextIO

from archir.errors import ArchirError, PassError
from archir.ir import Graph
from archir.printer import print_graph
from archir.verifier import verify

PassFn = Callable[..., Graph]


@dataclass(frozen=True, slots=True)
class PassInfo:
    name: str
    run: PassFn
    doc: str


_PASSES: dict[str, PassInfo] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register_pass(name: str, doc: str = "") -> Callable[[PassFn], PassFn]:
    """Decorator: make `fn(graph, **options) -> Graph` available in pipelines as `name`."""

    def wrap(fn: PassFn) -> PassFn:
        if name in _PASSES:
            raise PassError(f"pass '{name}' is registered twice")
        _PASSES[name] = PassInfo(name, fn, doc or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap


def register_alias(name: str, pipeline: str) -> None:
    """A name that stands for a whole pipeline, such as `canonicalize`."""
    _ALIASES[name] = pipeline


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points(group="archir.passes"):
        entry.load()


def all_passes() -> list[PassInfo]:
    _load_plugins()
    return sorted(_PASSES.values(), key=lambda p: p.name)


def all_aliases() -> dict[str, str]:
    """Every alias, by name, with the pipeline it stands for."""
    _load_plugins()
    return dict(sorted(_ALIASES.items()))


def get_pass(name: str) -> PassInfo:
    _load_plugins()
    if name not in _PASSES:
        known = ", ".join(sorted(list(_PASSES) + list(_ALIASES)))
        raise PassError(f"unknown pass '{name}'", hint=f"known passes: {known}")
    return _PASSES[name]


_STEP = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*(?:\{([^{}]*)\})?\s*\Z")


def parse_pipeline(text: str) -> list[tuple[str, dict[str, str]]]:
    """`"a,b{k=v,k2=v2}"` -> [("a", {}), ("b", {"k": "v", "k2": "v2"})], aliases expanded."""
    _load_plugins()
    steps: list[tuple[str, dict[str, str]]] = []
    for chunk in _split_top_level(text):
        match = _STEP.match(chunk)
        if not match:
            raise PassError(f"bad pipeline step '{chunk.strip()}' in '{text}'",
                            hint="write steps as name or name{key=value,...}, separated by commas")
        name, opts = match.group(1), match.group(2)
        if name in _ALIASES and opts is None:
            steps.extend(parse_pipeline(_ALIASES[name]))
            continue
        get_pass(name)
        options: dict[str, str] = {}
        for item in filter(None, (o.strip() for o in (opts or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise PassError(f"bad option '{item}' for pass '{name}'", hint="write key=value")
            options[key.strip()] = value.strip()
        steps.append((name, options))
    return steps


def _split_top_level(text: str) -> list[str]:
    chunks, depth, current = [], 0, ""
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            chunks.append(current)
            current = ""
        else:
            current += ch
    if current.strip() or chunks:
        chunks.append(current)
    return [c for c in chunks if c.strip()]


@dataclass(slots=True)
class PassManager:
    """Runs a pipeline. `print_after` holds pass names, or `{"all"}` for every pass."""

    pipeline: str
    verify_each: bool = True
    print_after: set[str] = field(default_factory=set)
    out: TextIO = sys.stdout
    timings: list[tuple[str, float]] = field(default_factory=list)

    def run(self, graph: Graph) -> Graph:
        steps = parse_pipeline(self.pipeline)
        unknown = self.print_after - {"all"} - {name for name, _ in steps}
        if unknown:
            raise PassError(f"--after names passes not in the pipeline: {', '.join(sorted(unknown))}")
        if self.verify_each:
            verify(graph)
        for name, options in steps:
            info = get_pass(name)
            start = time.perf_counter()
            try:
                graph = info.run(graph, **options)
            except ArchirError as err:
                err.message = f"in pass {name}: {err.message}"
                raise err.with_context() from None
            except TypeError as err:
                raise PassError(f"pass {name} rejected its options {options}: {err}") from None
            elapsed = time.perf_counter() - start
            self.timings.append((name, elapsed))
            if self.verify_each:
                try:
                    verify(graph)
                except ArchirError as err:
                    err.message = f"after pass {name}: {err.message}"
                    raise err.with_context() from None
            if "all" in self.print_after or name in self.print_after:
                self.out.write(f"# IR after {name} ({elapsed * 1e3:.2f} ms)\n")
                self.out.write(print_graph(graph))
        return graph

    def timing_report(self) -> str:
        total = sum(t for _, t in self.timings) or 1e-12
        lines = [f"{'pass':<24} {'ms':>9} {'share':>7}"]
        for name, t in self.timings:
            lines.append(f"{name:<24} {t * 1e3:>9.3f} {t / total:>6.1%}")
        lines.append(f"{'total':<24} {total * 1e3:>9.3f}")
        return "\n".join(lines)


def run_pipeline(graph: Graph, pipeline: str, *, verify_each: bool = True) -> Graph:
    return PassManager(pipeline, verify_each=verify_each).run(graph)
