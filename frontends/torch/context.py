"""What a converter sees while one FX node is imported: the builder, the node's expected result
types (from torch's fake-tensor metadata), and helpers for constants, dtypes and axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from archir.frontends.torch.symbols import SymbolNames
from archir.frontends.torch.table import Unsupported

from archir.builder import GraphBuilder
from archir.errors import ArchirError
from archir.ir import Value
from archir.symbolic import Dim, SymExpr
from archir.types import DType, TensorType

_DTYPES: dict[torch.dtype, DType] = {
    torch.float64: DType.f64, torch.float32: DType.f32, torch.float16: DType.f16,
    torch.bfloat16: DType.bf16, torch.int64: DType.i64, torch.int32: DType.i32,
    torch.int8: DType.i8, torch.bool: DType.bool,
}


def archir_dtype(dtype: torch.dtype) -> DType:
    if dtype not in _DTYPES:
        raise Unsupported(f"torch dtype {dtype} has no archir dtype",
                          hint=f"archir has {', '.join(str(d) for d in _DTYPES.values())}")
    return _DTYPES[dtype]


class ImportContext:
    """Shared by every converter of one import; `node` is the FX node being converted."""

    def __init__(self, builder: GraphBuilder, symbols: SymbolNames) -> None:
        self.b = builder
        self.symbols = symbols
        self.node: torch.fx.Node | None = None

    # -- the current node's expected results --------------------------------------------------
    def tensor_type(self, fake: Any) -> TensorType:
        if not isinstance(fake, torch.Tensor):
            raise Unsupported(f"expected a tensor, got {type(fake).__name__}")
        return TensorType(tuple(self.symbols.dim(d) for d in fake.shape), archir_dtype(fake.dtype))

    def out(self, index: int = 0) -> TensorType:
        """The type torch computed for result `index` of the current node."""
        assert self.node is not None
        val = self.node.meta.get("val")
        if isinstance(val, list | tuple):
            val = val[index]
        return self.tensor_type(val)

    @property
    def out_shape(self) -> tuple[Dim, ...]:
        return self.out().shape

    @property
    def out_dtype(self) -> DType:
        return self.out().dtype

    # -- values -------------------------------------------------------------------------------
    def const(self, value: float | bool, dtype: DType) -> Value:
        """A scalar constant of `dtype` (rank 0, so it broadcasts against anything)."""
        return self.b.full(shape=[], value=float(value), dtype=dtype)

    def value(self, x: Value | float | bool, dtype: DType | None = None) -> Value:
        """`x` itself when it is a Value, else a scalar constant of `dtype` (default the node's)."""
        if isinstance(x, Value):
            return x
        if not isinstance(x, int | float | bool):
            raise Unsupported(f"expected a tensor or a number, got {x!r}")
        return self.const(x, dtype or self.out_dtype)

    def cast(self, x: Value, dtype: DType) -> Value:
        return x if x.tensor_type.dtype == dtype else self.b.cast(x, dtype=dtype)

    def dims(self, sizes: Sequence[Any]) -> list[Dim]:
        return [s if isinstance(s, int | SymExpr) else self.symbols.dim(s) for s in sizes]


def rank(x: Value) -> int:
    return x.tensor_type.rank


def axis(dim: int, x_rank: int) -> int:
    """A torch dim argument normalised; rank-0 tensors accept dim 0 and -1 as torch does."""
    if x_rank == 0 and dim in (0, -1):
        return 0
    if not -x_rank <= dim < x_rank:
        raise ArchirError(f"dim {dim} is out of range for a tensor of rank {x_rank}")
    return dim % x_rank


def axes(dims: Sequence[int] | int | None, x_rank: int) -> list[int] | None:
    """A torch dim list (None or [] = every axis) normalised and sorted."""
    if dims is None:
        return None
    if isinstance(dims, int):
        dims = [dims]
    if len(dims) == 0:
        return None
    return sorted(axis(d, x_rank) for d in dims)
