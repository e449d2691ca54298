"""The model zoo: examples/*.py files that declare `ZOO = ZooEntry(...)`, checked against
independent references in tests/references/<name>.py.

A reference module defines `reference(model) -> callable` that maps numpy inputs to the list of
numpy outputs of an independent PyTorch implementation holding the same weights, and may
define `make_inputs(graph, sizes, rng)` when generic random inputs do not fit.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from archir.backend import compile_graph
from archir.errors import ArchirError, ModelSpecError
from archir.ir import Graph
from archir.symbolic import evaluate
from archir.types import DType, TensorType

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REFERENCES = ROOT / "tests" / "references"


@dataclass(frozen=True, slots=True)
class ZooEntry:
    """What `archir zoo` needs to know about one example."""

    name: str
    family: str
    factory: str  # a function of the example module returning the model with weights
    reference: str  # what the reference is, in words ("torch.nn.LSTM", "transformers GPT2LMHeadModel")
    sizes: tuple[dict[str, int], ...] = ({"B": 2},)
    int_high: int = 10  # integer inputs are drawn from [0, int_high)
    tolerance: float = 1e-4
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(slots=True)
class CheckResult:
    name: str
    backend: str
    sizes: dict[str, int]
    max_abs_error: float
    ok: bool


def load_module(path: Path, prefix: str) -> ModuleType:
    name = f"_archir_{prefix}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelSpecError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def entries() -> list[tuple[ZooEntry, Path]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.py")):
        if "ZOO = " not in path.read_text():
            continue
        entry = getattr(load_module(path, "example"), "ZOO", None)
        if isinstance(entry, ZooEntry):
            found.append((entry, path))
    return found


def find(name: str) -> tuple[ZooEntry, Path]:
    for entry, path in entries():
        if entry.name == name:
            return entry, path
    known = ", ".join(e.name for e, _ in entries())
    raise ModelSpecError(f"no zoo example named '{name}'", hint=f"known: {known}")


def build(entry: ZooEntry, path: Path) -> tuple[Any, Graph]:
    """The model object (weights set) and its graph."""
    model = getattr(load_module(path, "example"), entry.factory)()
    return model, model.to_graph()


def random_inputs(graph: Graph, sizes: dict[str, int], rng: np.random.Generator,
                  int_high: int = 10) -> list[np.ndarray]:
    arrays = []
    for v in graph.inputs:
        t = v.type
        assert isinstance(t, TensorType)
        shape = tuple(evaluate(d, sizes) for d in t.shape)
        if t.dtype.is_float:
            arrays.append(rng.standard_normal(shape).astype(t.dtype.numpy))
        elif t.dtype == DType.bool:
            arrays.append(rng.random(shape) < 0.8)
        else:
            arrays.append(rng.integers(0, int_high, shape).astype(t.dtype.numpy))
    return arrays


def check(entry: ZooEntry, path: Path, backend: str, seed: int = 0) -> list[CheckResult]:
    """Run the example on `backend` and its reference at each of the entry's sizes."""
    ref_path = REFERENCES / f"{entry.name}.py"
    if not ref_path.exists():
        raise ArchirError(f"zoo example '{entry.name}' has no reference at {ref_path}")
    ref_module = load_module(ref_path, "reference")
    model, graph = build(entry, path)
    compiled = compile_graph(graph, backend)
    reference = ref_module.reference(model)
    results = []
    for i, sizes in enumerate(entry.sizes):
        rng = np.random.default_rng(seed + i)
        make = getattr(ref_module, "make_inputs", None)
        inputs = make(graph, sizes, rng) if make else random_inputs(graph, sizes, rng, entry.int_high)
        got = [np.asarray(o) for o in compiled(*inputs)]
        want = [np.asarray(o) for o in reference(*inputs)]
        if len(got) != len(want):
            raise ArchirError(f"{entry.name}: {len(got)} outputs but the reference gives {len(want)}")
        error = 0.0
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape:
                raise ArchirError(f"{entry.name}: output shape {g.shape} != reference {w.shape}")
            error = max(error, float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)),
                                            initial=0.0)))
        results.append(CheckResult(entry.name, backend, sizes, error, error <= entry.tolerance))
    return results
