"""Type-inference rules shared by many ops: operand checks, broadcasting, reduced shapes."""

from __future__ import annotations

from collections.abc import Sequence

from archir.errors import TypeInferenceError
from archir.symbolic import Dim
from archir.types import DType, TensorType, Type, broadcast_shapes, normalize_axis, promote_dtypes


def tensor(t: Type | None, what: str = "operand") -> TensorType:
    if not isinstance(t, TensorType):
        raise TypeInferenceError(f"{what} must be a tensor, got {t}")
    return t


def floating(t: Type | None, what: str = "operand") -> TensorType:
    tt = tensor(t, what)
    if not tt.dtype.is_float:
        raise TypeInferenceError(f"{what} must have a float dtype, got {tt}")
    return tt


def integer(t: Type | None, what: str = "operand") -> TensorType:
    tt = tensor(t, what)
    if not tt.dtype.is_int:
        raise TypeInferenceError(f"{what} must have an integer dtype, got {tt}")
    return tt


def rank_at_least(t: TensorType, rank: int, what: str = "operand") -> TensorType:
    if t.rank < rank:
        raise TypeInferenceError(f"{what} must have rank >= {rank}, got {t}")
    return t


def rank_exactly(t: TensorType, rank: int, what: str = "operand") -> TensorType:
    if t.rank != rank:
        raise TypeInferenceError(f"{what} must have rank {rank}, got {t}")
    return t


def same_dim(a: Dim, b: Dim, what: str) -> None:
    if a != b:
        raise TypeInferenceError(f"{what}: {a} != {b}")


def broadcast(*types: Type | None, dtype: DType | None = None) -> TensorType:
    """Broadcast shapes and promote dtypes of the given operands (None ones are skipped)."""
    tts = [tensor(t) for t in types if t is not None]
    shape = broadcast_shapes(*(t.shape for t in tts))
    return TensorType(shape, dtype or promote_dtypes(*(t.dtype for t in tts)))


def axes_of(axes: Sequence[int] | None, rank: int) -> tuple[int, ...]:
    """Normalised, sorted, de-duplicated axes; None means all axes."""
    if axes is None:
        return tuple(range(rank))
    norm = sorted({normalize_axis(a, rank) for a in axes})
    if len(norm) != len(axes):
        raise TypeInferenceError(f"axes {list(axes)} repeat an axis")
    return tuple(norm)


def reduced_shape(shape: Sequence[Dim], axes: Sequence[int], keepdims: bool) -> tuple[Dim, ...]:
    out: list[Dim] = []
    for i, d in enumerate(shape):
        if i in axes:
            if keepdims:
                out.append(1)
        else:
            out.append(d)
    return tuple(out)


def axis_in(axis: int, t: TensorType, what: str = "x") -> int:
    """`axis` normalised against `t`'s rank; the error names the axis, the rank and the operand."""
    if not -t.rank <= axis < t.rank:
        raise TypeInferenceError(f"axis {axis} is out of range for {what} of rank {t.rank} ({t})",
                                 hint=f"use an axis in [{-t.rank}, {t.rank - 1}]" if t.rank else
                                 "a rank-0 tensor has no axes")
    return axis % t.rank


def axes_in(axes: Sequence[int], t: TensorType, what: str = "x") -> tuple[int, ...]:
    """Normalised, sorted axes; out-of-range, repeated or no axes are errors naming the rank."""
    if not axes:
        raise TypeInferenceError(f"axes is empty for {what} of rank {t.rank} ({t})",
                                 hint="use axes = none to reduce over every axis")
    seen: dict[int, int] = {}
    for a in axes:
        norm = axis_in(a, t, what)
        if norm in seen:
            raise TypeInferenceError(
                f"axes {list(axes)} name axis {norm} twice ({seen[norm]} and {a}) for {what} "
                f"of rank {t.rank} ({t})")
        seen[norm] = a
    return tuple(sorted(seen))
