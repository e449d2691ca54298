"""What every backend returns, and how backends are found.

`compile_graph(graph, backend="torch")` looks the backend up (the built-in `interp`, or a plugin
of the `archir.backends` entry-point group) and returns a `CompiledModule`: call it with numpy
arrays or torch tensors; it checks the arguments against the graph's signature first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from archir.builder import user_location
from archir.errors import ArchirError, BackendError
from archir.ir import Graph
from archir.signature import Signature


@dataclass(slots=True)
class CompileReport:
    """What a backend made of a graph: kernel count, extern calls, arena size, notes."""

    backend: str
    kernels: int = 0
    extern_calls: list[str] = field(default_factory=list)
    arena_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"backend: {self.backend}", f"kernels: {self.kernels}"]
        if self.extern_calls:
            lines.append(f"extern calls: {', '.join(self.extern_calls)}")
        if self.arena_bytes:
            lines.append(f"arena: {self.arena_bytes} bytes")
        lines.extend(self.notes)
        return "\n".join(lines)


class CompiledModule:
    """Base of compiled graphs. Subclasses implement `run(arrays, bindings)`."""

    def __init__(self, graph: Graph, report: CompileReport) -> None:
        self.graph = graph
        self.report = report
        self.signature = Signature(graph)

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            arrays, bindings = self.signature.check(args, kwargs)
        except ArchirError as err:
            raise err.with_context(loc=user_location()) from None  # the caller's line
        return self.run(arrays, bindings)

    def run(self, arrays: list[Any], bindings: dict[str, int]) -> list[Any]:
        raise NotImplementedError


class InterpreterModule(CompiledModule):
    """The numpy interpreter behind the common interface (the `interp` backend)."""

    def run(self, arrays: list[Any], bindings: dict[str, int]) -> list[np.ndarray]:
        from archir.interpreter import run_checked

        return run_checked(self.graph, arrays, bindings)


BackendFn = Callable[..., CompiledModule]
_BACKENDS: dict[str, BackendFn] = {
    "interp": lambda graph, **_: InterpreterModule(graph, CompileReport("interp", len(graph.nodes))),
}
# The pass pipeline `compile_graph` runs when the caller names none. The interpreter is the
# ground truth and runs a graph as written; code generators get the clean-ups and fusion.
_PIPELINES: dict[str, str] = {"interp": ""}
DEFAULT_PIPELINE = "canonicalize,fuse"
_loaded = False


def register_backend(name: str, compile_fn: BackendFn, *, pipeline: str = DEFAULT_PIPELINE) -> None:
    """Make `compile_graph(graph, name)` call `compile_fn(graph, **options)` after running
    `pipeline` (the backend's default; callers may pass their own, "" for none)."""
    _BACKENDS[name] = compile_fn
    _PIPELINES[name] = pipeline


def default_pipeline(backend: str) -> str:
    _load_plugins()
    return _PIPELINES.get(backend, DEFAULT_PIPELINE)


LoadFn = Callable[[Any], CompiledModule]
_LOADERS: dict[str, LoadFn] = {}


def register_loader(name: str, load_fn: LoadFn) -> None:
    """How backend `name` loads an artifact directory it wrote (`archir.load`)."""
    _LOADERS[name] = load_fn


EmitFn = Callable[[Graph, str], str]
_EMITTERS: dict[str, tuple[EmitFn, tuple[str, ...]]] = {}


def register_emitter(name: str, emit_fn: EmitFn, stages: tuple[str, ...]) -> None:
    """How backend `name` shows its intermediate forms (`archir dump --backend B --emit STAGE`)."""
    _EMITTERS[name] = (emit_fn, stages)


def emit(graph: Graph, backend: str, stage: str | None = None) -> str:
    """The text of `backend`'s `stage` for `graph` (the backend's first stage by default)."""
    _load_plugins()
    if backend not in _EMITTERS:
        known = ", ".join(f"{b} ({'|'.join(st)})" for b, (_, st) in sorted(_EMITTERS.items()))
        raise BackendError(f"backend '{backend}' shows no intermediate stages", hint=f"these do: {known}")
    emit_fn, stages = _EMITTERS[backend]
    if stage is None:
        stage = stages[0]
    if stage not in stages:
        raise BackendError(f"backend '{backend}' has no stage '{stage}'", hint=f"stages: {', '.join(stages)}")
    return emit_fn(graph, stage)


def load(directory: Any) -> CompiledModule:
    """A compiled module from an artifact directory written by `archir compile -o DIR` (or a
    module's `write_artifact`), without recompiling; its manifest.json names the backend."""
    manifest_path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise BackendError(f"{manifest_path}: not a readable archir artifact manifest ({err})",
                           hint="write one with `archir compile MODEL --backend llvm -o DIR`") from None
    backend = manifest.get("backend") if isinstance(manifest, dict) else None
    _load_plugins()
    if backend not in _LOADERS:
        raise BackendError(f"{manifest_path}: backend {backend!r} has no artifact loader",
                           hint="torch artifacts are Python code: import the generated model.py")
    return _LOADERS[backend](directory)


_BROKEN: dict[str, str] = {}  # plugin name -> why it failed to import


def _load_plugins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for entry in entry_points(group="archir.backends"):
            try:
                entry.load()
            except Exception as err:  # one broken plugin must not take the other backends down
                _BROKEN[entry.name] = f"{type(err).__name__}: {err}"


def available_backends() -> list[str]:
    _load_plugins()
    return sorted(_BACKENDS)


def compile_graph(graph: Graph, backend: str = "interp", *, pipeline: str | None = None,
                  **options: Any) -> CompiledModule:
    """`graph` compiled by `backend`, after the pass `pipeline` (None: the backend's default,
    `canonicalize,fuse` for code generators; "": the graph as given). `graph` is not changed;
    the module's `.graph` is the optimised one and its report names the pipeline."""
    _load_plugins()
    if backend in _BROKEN and backend not in _BACKENDS:
        raise BackendError(f"backend '{backend}' failed to load: {_BROKEN[backend]}")
    if backend not in _BACKENDS:
        raise BackendError(f"unknown backend '{backend}'",
                           hint=f"available backends: {', '.join(available_backends())}")
    if pipeline is None:
        pipeline = _PIPELINES.get(backend, DEFAULT_PIPELINE)
    if pipeline:
        from archir.ir import copy_graph
        from archir.pass_manager import run_pipeline

        graph = run_pipeline(copy_graph(graph), pipeline)
    module = _BACKENDS[backend](graph, **options)
    module.report.notes.insert(0, f"pipeline: {pipeline or '(none)'}")
    return module
