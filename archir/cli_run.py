"""`archir run` and `archir compile`: a model on any backend, on random inputs of its declared types.

`run --check` compares the backend with the numpy interpreter on the same inputs; `compile` writes
the backend's artifact (generated code, weights) to a directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from archir import zoo
from archir.backend import CompiledModule, available_backends, compile_graph
from archir.errors import ArchirError, ArgumentError, BackendError
from archir.ir import Graph
from archir.model_spec import load_model
from archir.types import DType, TensorType
from archir.verifier import verify

DEFAULT_SIZE = 2
DEFAULT_INT_HIGH = 10  # integer inputs are drawn from [0, DEFAULT_INT_HIGH), as the zoo does
# Max abs error `run --check` accepts per output dtype, unless --tol says otherwise.
TOLERANCES: dict[DType, float] = {DType.f64: 1e-7, DType.f32: 1e-4, DType.f16: 1e-2, DType.bf16: 5e-2}


# -- run ------------------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    verify(graph)
    compiled = compile_model(graph, args.backend, args.pipeline)
    defaults, int_high = zoo_defaults(args.model)
    sizes = bind_sizes(graph, parse_sizes(args.sizes), defaults)
    inputs = make_inputs(graph, sizes, np.random.default_rng(args.seed), int_high)
    drawn = f"random inputs of sizes {format_sizes(sizes) or '(static)'}, integers in [0, {int_high})"
    outputs = call_backend(compiled, args.backend, inputs, drawn)
    for i, out in enumerate(outputs):
        print(describe_output(i, out))
    if not args.check:
        return 0
    expected = call_backend(compile_graph(graph, "interp"), "interp", inputs, drawn)
    return report_check(outputs, expected, args.backend, args.tol)


def compile_model(graph: Graph, backend: str, pipeline: str | None = None) -> CompiledModule:
    if backend not in available_backends():
        raise BackendError(f"unknown backend '{backend}'",
                           hint=f"available backends: {', '.join(available_backends())}")
    return compile_graph(graph, backend, pipeline=pipeline)


def call_backend(compiled: CompiledModule, backend: str, inputs: list[np.ndarray],
                 drawn: str) -> list[np.ndarray]:
    """The outputs as numpy arrays; a backend failing on these inputs is one clean error."""
    try:
        return [np.asarray(o) for o in compiled(*inputs)]
    except ArchirError:
        raise
    except Exception as err:  # numpy / torch / native code rejecting the sizes, usually
        raise BackendError(f"backend {backend} failed: {type(err).__name__}: {err}",
                           hint=f"on {drawn}; --sizes sets other sizes") from None


def zoo_defaults(spec: str) -> tuple[dict[str, int], int]:
    """The first checked sizes and integer range of the zoo example `spec` names, if it names one."""
    file, _, name = spec.rpartition(":")
    if not file.endswith(".py"):
        return {}, DEFAULT_INT_HIGH
    path = Path(file).resolve()
    if path.parent != zoo.EXAMPLES.resolve():  # only examples/ holds zoo entries; skip importing them
        return {}, DEFAULT_INT_HIGH
    for entry, entry_path in zoo.entries():
        if entry_path.resolve() == path and entry.factory == name:
            return dict(entry.sizes[0]), entry.int_high
    return {}, DEFAULT_INT_HIGH


def parse_sizes(text: str | None) -> dict[str, int]:
    """`"B=2,T=16"` -> {"B": 2, "T": 16}."""
    sizes: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not name.isidentifier() or not value.isdigit() or int(value) < 1:
            raise ArgumentError(f"bad size '{item.strip()}' in --sizes",
                                hint="write --sizes B=2,T=16 (symbol=positive integer, comma-separated)")
        sizes[name] = int(value)
    return sizes


def bind_sizes(graph: Graph, given: dict[str, int], defaults: dict[str, int] | None = None) -> dict[str, int]:
    """A size for every symbol of the inputs: the given one, else the default, else DEFAULT_SIZE."""
    symbols = graph.symbols()
    unknown = sorted(set(given) - set(symbols))
    if unknown:
        known = ", ".join(symbols) or "none"
        raise ArgumentError(f"--sizes names symbols that @{graph.name} does not have: "
                            f"{', '.join(unknown)}", hint=f"its symbols: {known}")
    defaults = defaults or {}
    return {s: given.get(s, defaults.get(s, DEFAULT_SIZE)) for s in symbols}


def format_sizes(sizes: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sizes.items())


def make_inputs(graph: Graph, sizes: dict[str, int], rng: np.random.Generator,
                int_high: int) -> list[np.ndarray]:
    """Random arrays of the inputs' declared types: normal floats, ints in [0, int_high), bools."""
    for v in graph.inputs:
        if not isinstance(v.type, TensorType):
            raise ArgumentError(f"input '{v.name}' has type {v.type}; `archir run` makes tensors only")
    return zoo.random_inputs(graph, sizes, rng, int_high)


def describe_output(index: int, array: np.ndarray) -> str:
    """One line with the dtype, shape and full-precision checksums of an output."""
    wide = array.astype(np.float64)
    shape = ", ".join(str(d) for d in array.shape)
    return (f"output {index}: {dtype_name(array)}[{shape}] sum={float(wide.sum())!r} "
            f"sum_abs={float(np.abs(wide).sum())!r}")


def dtype_name(array: np.ndarray) -> str:
    try:
        return str(DType.from_numpy(array.dtype))
    except ArchirError:
        return array.dtype.name


# -- run --check ----------------------------------------------------------------------------------
def max_abs_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want|; equal infinities and NaN against NaN count as equal, other NaNs as inf."""
    if got.shape != want.shape:
        return float("inf")
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(g - w))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


def tolerance_for(array: np.ndarray, tol: float | None) -> float:
    if tol is not None:
        return tol
    try:
        return TOLERANCES.get(DType.from_numpy(array.dtype), 0.0)  # integers and bools: exact
    except ArchirError:
        return 0.0


def report_check(got: list[np.ndarray], want: list[np.ndarray], backend: str, tol: float | None) -> int:
    """Print the max abs error of each output against the interpreter; 1 if any is too large."""
    if len(got) != len(want):
        print(f"check: FAIL: {backend} gives {len(got)} outputs, the interpreter {len(want)}")
        return 1
    worst, ok = 0.0, True
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        error, limit = max_abs_error(g, w), tolerance_for(w, tol)
        verdict = "ok" if error <= limit else "FAIL"
        note = "" if g.shape == w.shape else f" (shape {list(g.shape)}, interpreter {list(w.shape)})"
        print(f"check: output {i} max_abs_error={error:.3g} tol={limit:.3g} {verdict}{note}")
        worst, ok = max(worst, error), ok and error <= limit
    print(f"check: {backend} vs interp max_abs_error={worst:.3g} {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


# -- compile --------------------------------------------------------------------------------------
ArtifactWriter = Callable[[Path], Any]


def compile_command(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    verify(graph)
    compiled = compile_model(graph, args.backend, args.pipeline)
    out = Path(args.output)
    written = artifact_writer(compiled, args.backend)(out)
    files = [Path(f) for f in written] if written else sorted(p for p in out.rglob("*") if p.is_file())
    for path in files:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


def artifact_writer(compiled: CompiledModule, backend: str) -> ArtifactWriter:
    """The compiled module's `write_artifact(dir)`, else its backend module's
    `write_artifact(graph, dir)` (in the module defining its class, or that module's package)."""
    method = getattr(compiled, "write_artifact", None)
    if callable(method):
        return method
    for module in _defining_modules(type(compiled)):
        function = getattr(module, "write_artifact", None)
        if callable(function):
            return lambda out: function(compiled.graph, out)
    raise BackendError(f"backend {backend} cannot write artifacts",
                       hint="`archir run --backend ...` runs a model without writing anything")


def _defining_modules(cls: type) -> list[ModuleType]:
    name = cls.__module__
    names = [name, name.rpartition(".")[0]] if name.count(".") >= 2 else [name]
    return [sys.modules[n] for n in names if n in sys.modules]


# -- the parsers ----------------------------------------------------------------------------------
def add_parsers(sub: Any, model_help: str) -> None:
    run = sub.add_parser("run", help="run a model on random inputs and print output checksums")
    run.add_argument("model", metavar="MODEL", help=model_help)
    run.add_argument("--backend", default="interp", help="a backend (see `archir backends`), default interp")
    run.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    run.add_argument("--sizes", metavar="B=2,T=16",
                     help=f"sizes of symbolic dims (default: a zoo example's first checked sizes, "
                          f"else {DEFAULT_SIZE} each)")
    run.add_argument("--check", action="store_true",
                     help="also run the interpreter on the same inputs and compare")
    run.add_argument("--tol", type=float, metavar="TOL",
                     help="max abs error --check accepts (default 1e-4 for f32, 1e-2 f16, 5e-2 bf16)")
    _pipeline_option(run)
    run.set_defaults(handler=run_command)

    comp = sub.add_parser("compile", help="compile a model and write the backend's artifact to a directory")
    comp.add_argument("model", metavar="MODEL", help=model_help)
    comp.add_argument("--backend", default="torch", help="a backend that writes artifacts (default torch)")
    comp.add_argument("-o", "--output", metavar="DIR", required=True, help="directory to write")
    _pipeline_option(comp)
    comp.set_defaults(handler=compile_command)


def _pipeline_option(parser: Any) -> None:
    parser.add_argument("--pipeline", metavar="PASSES",
                        help="passes to run before compiling (default: the backend's, canonicalize,fuse "
                             "for torch and llvm, none for interp; '' for none)")
