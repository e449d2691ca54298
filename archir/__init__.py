"""archir: a compiler for neural-network architectures.

The core lives here: types, the graph IR, the op registry, the text format, the verifier,
the numpy interpreter and the pass manager. Frontends, passes and backends build on it.
"""

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
