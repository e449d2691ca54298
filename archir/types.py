"""Types of IR values: dtypes, tensor types with int or symbolic dims, tuple types.

Broadcasting and dtype promotion are written once here; every op's inference uses them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from archir.errors import TypeInferenceError
from archir.symbolic import Dim, SymExpr, as_dim, evaluate, free_symbols, product


class DType(enum.Enum):
    """Element types. The value is the spelling in `.air` text."""

    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    i64 = "i64"
    i32 = "i32"
    i8 = "i8"
    bool = "bool"

    @property
    def is_float(self) -> bool:
        return self in _FLOAT_RANK

    @property
    def is_int(self) -> bool:
        return self in _INT_RANK

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self]

    @staticmethod
    def from_numpy(dtype: np.dtype) -> DType:
        for key, value in _NUMPY.items():
            if value == dtype:
                return key
        raise TypeInferenceError(f"numpy dtype {dtype} has no archir dtype")

    def __getitem__(self, dims: object) -> TensorType:
        """`f32["B", 768]` builds a tensor type; `f32[()]` is a scalar."""
        if not isinstance(dims, tuple):
            dims = (dims,)
        return TensorType(tuple(as_dim(d) for d in dims), self)

    def __str__(self) -> str:
        return self.value


_NUMPY: dict[DType, np.dtype] = {
    DType.f64: np.dtype(np.float64),
    DType.f32: np.dtype(np.float32),
    DType.f16: np.dtype(np.float16),
    DType.bf16: np.dtype(ml_dtypes.bfloat16),
    DType.i64: np.dtype(np.int64),
    DType.i32: np.dtype(np.int32),
    DType.i8: np.dtype(np.int8),
    DType.bool: np.dtype(np.bool_),
}
_FLOAT_RANK = {DType.f16: 1, DType.bf16: 1, DType.f32: 2, DType.f64: 3}
_INT_RANK = {DType.i8: 1, DType.i32: 2, DType.i64: 3}

f64, f32, f16, bf16 = DType.f64, DType.f32, DType.f16, DType.bf16
i64, i32, i8, boolean = DType.i64, DType.i32, DType.i8, DType.bool


class Type:
    """Base of value types. Subclasses are frozen dataclasses that print in `.air` syntax."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TensorType(Type):
    shape: tuple[Dim, ...]
    dtype: DType

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def numel(self) -> Dim:
        return product(self.shape)

    def free_symbols(self) -> set[str]:
        names: set[str] = set()
        for d in self.shape:
            names |= free_symbols(d)
        return names

    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def with_shape(self, shape: Iterable[Dim]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    def concrete_shape(self, bindings: dict[str, int]) -> tuple[int, ...]:
        return tuple(evaluate(d, bindings) for d in self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True, slots=True)
class TupleType(Type):
    elements: tuple[Type, ...]

    def __str__(self) -> str:
        return f"tuple<{', '.join(str(t) for t in self.elements)}>"


def scalar(dtype: DType) -> TensorType:
    return TensorType((), dtype)


# -- broadcasting and promotion -------------------------------------------------------------
def broadcast_dims(a: Dim, b: Dim) -> Dim:
    if a == b or b == 1:
        return a
    if a == 1:
        return b
    raise TypeInferenceError(f"cannot broadcast dims {a} and {b}")


def broadcast_shapes(*shapes: Sequence[Dim]) -> tuple[Dim, ...]:
    """NumPy broadcasting over int and symbolic dims; symbols broadcast only with 1 or themselves."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = [1] * rank
    for shape in shapes:
        padded = [1] * (rank - len(shape)) + list(shape)
        for i, d in enumerate(padded):
            try:
                out[i] = broadcast_dims(out[i], d)
            except TypeInferenceError:
                pretty = ", ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes)
                raise TypeInferenceError(f"shapes {pretty} do not broadcast") from None
    return tuple(out)


def promote_dtypes(*dtypes: DType) -> DType:
    """bool < ints < floats; within a kind the wider wins; f16 with bf16 gives f32."""
    result = dtypes[0]
    for dt in dtypes[1:]:
        result = _promote_pair(result, dt)
    return result


def _promote_pair(a: DType, b: DType) -> DType:
    if a == b:
        return a
    if a == DType.bool:
        return b
    if b == DType.bool:
        return a
    if a.is_float and b.is_float:
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:
            return DType.f32
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if a.is_float:
        return a
    if b.is_float:
        return b
    return a if _INT_RANK[a] > _INT_RANK[b] else b


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise TypeInferenceError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def is_symbolic(d: Dim) -> bool:
    return isinstance(d, SymExpr)
