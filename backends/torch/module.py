"""The torch backend's compiled module: generated source, exec'd once, run with torch tensors.

Inputs may be numpy arrays or torch tensors (CPU or CUDA); outputs come back as the same kind.
`write_artifact` saves the generated code, the weights and a manifest to a directory.
"""

from __future__ import annotations

import json
import linecache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from archir.backends.torch.codegen import generate_source

from archir.backend import CompiledModule, CompileReport, register_backend
from archir.errors import BackendError
from archir.ir import Graph
from archir.printer import print_graph


def to_torch(array: Any, device: torch.device) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(device)
    array = np.asarray(array)
    if not array.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
        array = array.copy()
    if array.dtype.name == "bfloat16":  # numpy has no bf16 for torch to share: go through bits
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(array).to(device)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


class TorchModule(CompiledModule):
    def __init__(self, graph: Graph, device: str | None = None) -> None:
        self.source = generate_source(graph)
        filename = f"<archir-torch @{graph.name}>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        namespace: dict[str, Any] = {}
        exec(compile(self.source, filename, "exec"), namespace)
        self._forward = namespace["forward"]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        missing = [p.name for p in graph.params if p.name not in graph.param_data]
        if missing:
            raise BackendError(f"parameters without data: {', '.join(missing)}",
                               hint="load or initialise the weights before compiling")
        self.params = {p.name: to_torch(graph.param_data[p.name], self.device) for p in graph.params}
        report = CompileReport("torch", kernels=len(graph.nodes),
                               notes=[f"device: {self.device}", "generated code: module.source"])
        super().__init__(graph, report)

    def run(self, arrays: list[Any], bindings: dict[str, int]) -> list[Any]:
        as_torch = any(isinstance(a, torch.Tensor) for a in arrays)
        with torch.inference_mode():
            outputs = self._forward(self.params, *(to_torch(a, self.device) for a in arrays))
        return list(outputs) if as_torch else [to_numpy(t) for t in outputs]


def compile_torch(graph: Graph, device: str | None = None, **_: Any) -> TorchModule:
    return TorchModule(graph, device)


def write_artifact(graph: Graph, out_dir: str | Path) -> list[Path]:
    """model.py (generated code), graph.air, weights.npz and manifest.json in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "model.py", out / "graph.air", out / "weights.npz", out / "manifest.json"]
    files[0].write_text(generate_source(graph))
    files[1].write_text(print_graph(graph))
    np.savez(files[2], **{k: _storable(v) for k, v in graph.param_data.items()})
    manifest = {"graph": graph.name, "backend": "torch",
                "inputs": [f"{v.name}: {v.type}" for v in graph.inputs],
                "outputs": [str(v.type) for v in graph.outputs],
                "entry": "model.forward(params, *inputs)"}
    files[3].write_text(json.dumps(manifest, indent=2) + "\n")
    return files


def _storable(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype.name == "bfloat16" else a


register_backend("torch", compile_torch)
