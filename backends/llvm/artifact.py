"""Artifacts of the llvm backend: object code, weights and a manifest in a directory, loaded
back without recompiling on a machine with the same CPU and features (refused elsewhere).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from archir.backends.llvm.target import host_target

from archir.errors import BackendError
from archir.parser import parse
from archir.printer import print_graph
from archir.types import DType

if TYPE_CHECKING:
    from archir.backends.llvm.module import LLVMModule

FORMAT = "archir-llvm-artifact/1"


def write_artifact(module: LLVMModule, directory: str | Path) -> list[Path]:
    """graph.o, params.npz and manifest.json in `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    obj, params, manifest = out / "graph.o", out / "params.npz", out / "manifest.json"
    obj.write_bytes(module.code)
    stored = {p.name: _storable(a) for p, a in zip(module.graph.params, module.params, strict=True)}
    with params.open("wb") as f:
        np.savez(f, **{f"p{i}": a for i, a in enumerate(stored.values())})
    target = host_target()
    manifest.write_text(json.dumps({
        "format": FORMAT,
        "backend": "llvm",
        "graph": print_graph(module.graph),
        "params": [{"name": p.name, "dtype": p.type.dtype.value} for p in module.graph.params],  # type: ignore[union-attr]
        "target": {"triple": target.triple, "cpu": target.cpu, "features": target.features},
        "options": module.options,
        "cache_key": module.key,
        "object_sha256": hashlib.sha256(module.code).hexdigest(),
        "layout": module.layout.to_json(),
    }, indent=2) + "\n")
    return [obj, params, manifest]


def _storable(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype.name == "bfloat16" else a


def load(directory: str | Path) -> LLVMModule:
    """The compiled module written to `directory` by `write_artifact`."""
    from archir.backends.llvm.module import LLVMModule, NativeLayout

    from archir.backend import CompileReport

    root = Path(directory)
    try:
        manifest = json.loads((root / "manifest.json").read_text())
        code = (root / "graph.o").read_bytes()
    except (OSError, ValueError) as err:
        raise BackendError(f"{root} is not an llvm artifact: {err}") from None
    if manifest.get("format") != FORMAT:
        raise BackendError(f"{root} has artifact format {manifest.get('format')!r}, expected {FORMAT!r}")
    _check_target(manifest["target"], root)
    if hashlib.sha256(code).hexdigest() != manifest["object_sha256"]:
        raise BackendError(f"{root / 'graph.o'} does not match its manifest (corrupt or replaced)")
    graph = parse(manifest["graph"])
    with np.load(root / "params.npz") as data:
        for i, entry in enumerate(manifest["params"]):
            array = data[f"p{i}"]
            if entry["dtype"] == "bf16":
                array = array.view(DType.bf16.numpy)
            graph.param_data[entry["name"]] = array
    report = CompileReport("llvm", kernels=1, notes=[f"object code: loaded from artifact {root}"])
    return LLVMModule(graph, code, NativeLayout.from_json(manifest["layout"]), key=manifest["cache_key"],
                      options=manifest["options"], report=report)


def _check_target(target: dict[str, Any], root: Path) -> None:
    host = host_target()
    if (target.get("triple"), target.get("cpu"), target.get("features")) != (host.triple, host.cpu,
                                                                               host.features):
        raise BackendError(
            f"artifact {root} was built for {target.get('cpu')} ({target.get('triple')}) with other CPU "
            f"features than this machine ({host.cpu})",
            hint="recompile the graph here (compile_graph(graph, 'llvm')) and write a new artifact")
