"""archir: a compiler for neural-network architectures.

The core lives here: types, the graph IR, the op registry, the text format, the verifier,
the numpy interpreter and the pass manager. Frontends, passes and backends build on it.

This module is also the user's facade: `archir.nn` (the DSL), `archir.model` and one function per
op (`archir.relu`, `archir.attention`, ...) resolve lazily, so the core itself never imports
the frontends.
"""

from typing import Any

from archir.builder import GraphBuilder
from archir.errors import (
    ArchirError,
    ArgumentError,
    BackendError,
    Location,
    ModelSpecError,
    OpDefinitionError,
    ParseError,
    PassError,
    TypeInferenceError,
    VerifyError,
)
from archir.ir import Graph, Node, Region, Value
from archir.types import DType, TensorType, TupleType, bf16, boolean, f16, f32, f64, i8, i32, i64

__all__ = [
    "ArchirError", "ArgumentError", "BackendError", "DType", "Graph", "GraphBuilder", "Location",
    "ModelSpecError", "Node", "OpDefinitionError", "ParseError", "PassError", "Region",
    "TensorType", "TupleType", "TypeInferenceError", "Value", "VerifyError", "bf16", "boolean",
    "f16", "f32", "f64", "i8", "i32", "i64",
]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "nn":
        return importlib.import_module("archir.frontends.dsl")
    if name in ("compile", "load"):  # compile(graph, backend) and load(artifact_dir)
        backend = importlib.import_module("archir.backend")
        return backend.compile_graph if name == "compile" else backend.load
    if name in ("from_torch", "from_export"):  # the torch frontend; imports torch on first use
        return getattr(importlib.import_module("archir.frontends.torch"), name)
    dsl = importlib.import_module("archir.frontends.dsl")
    if name in ("model", "Module", "Parameter", "Tensor"):
        return getattr(dsl, name)
    return getattr(dsl.functional, name)
