"""Symbolic tensors of the DSL: Python operators and methods that record IR ops while tracing.

`x + 1`, `x @ w`, `x[:, -1]`, `x.reshape(B, T, 12, 64)`, `x.transpose(1, 2)` each add nodes to the
graph being traced; shapes are checked as they are built and errors point at the user's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archir.frontends.dsl.tracer import current_tracer

from archir.builder import user_location
from archir.errors import ArchirError
from archir.ir import Value
from archir.symbolic import Dim
from archir.types import DType, TensorType, normalize_axis

Scalar = int | float | bool
TO_END = 2**63 - 1  # a slice end meaning "to the end of the axis"


class Tensor:
    """A traced value. `shape` holds ints and symbolic dims (`B`, `T`, `B*T`)."""

    __slots__ = ("_value",)

    def __init__(self, value: Value) -> None:
        self._value = value

    @property
    def value(self) -> Value:
        return self._value

    @property
    def type(self) -> TensorType:
        t = self.value.type
        assert isinstance(t, TensorType)
        return t

    @property
    def shape(self) -> tuple[Dim, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"Tensor({self.type})"

    # -- helpers ------------------------------------------------------------------------------
    def _op(self, op: str, *others: Tensor | None, **attrs: Any) -> Any:
        return current_tracer().op(op, self, *others, **attrs)

    def _lift(self, other: Tensor | Scalar) -> Tensor:
        """A Python number becomes a scalar constant of this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, bool | int | float):
            dtype = self.dtype if (self.dtype.is_float or isinstance(other, bool | int)) \
                else DType.f32
            return constant(other, dtype)
        raise ArchirError(f"cannot combine a tensor with {type(other).__name__}",
                          loc=user_location())

    def _binary(self, op: str, other: Tensor | Scalar, reverse: bool = False) -> Tensor:
        rhs = self._lift(other)
        a, b = (rhs, self) if reverse else (self, rhs)
        return current_tracer().op(op, a, b)  # type: ignore[return-value]

    # -- arithmetic ---------------------------------------------------------------------------
    def __add__(self, o: Tensor | Scalar) -> Tensor: return self._binary("add", o)
    def __radd__(self, o: Scalar) -> Tensor: return self._binary("add", o, True)
    def __sub__(self, o: Tensor | Scalar) -> Tensor: return self._binary("sub", o)
    def __rsub__(self, o: Scalar) -> Tensor: return self._binary("sub", o, True)
    def __mul__(self, o: Tensor | Scalar) -> Tensor: return self._binary("mul", o)
    def __rmul__(self, o: Scalar) -> Tensor: return self._binary("mul", o, True)
    def __truediv__(self, o: Tensor | Scalar) -> Tensor: return self._binary("div", o)
    def __rtruediv__(self, o: Scalar) -> Tensor: return self._binary("div", o, True)
    def __pow__(self, o: Tensor | Scalar) -> Tensor: return self._binary("pow", o)
    def __matmul__(self, o: Tensor) -> Tensor: return self._binary("matmul", o)
    def __rmatmul__(self, o: Tensor) -> Tensor: return self._binary("matmul", o, True)
    def __neg__(self) -> Tensor: return self._op("neg")
    def __lt__(self, o: Tensor | Scalar) -> Tensor: return self._binary("lt", o)
    def __le__(self, o: Tensor | Scalar) -> Tensor: return self._binary("le", o)
    def __gt__(self, o: Tensor | Scalar) -> Tensor: return self._binary("gt", o)
    def __ge__(self, o: Tensor | Scalar) -> Tensor: return self._binary("ge", o)

    def __bool__(self) -> bool:
        raise ArchirError("a traced tensor has no truth value: Python `if` cannot branch on it",
                          loc=user_location(), hint="use archir.where(...) or archir.cond(...)")

    # -- shape methods ------------------------------------------------------------------------
    def reshape(self, *shape: Dim | str | Sequence[Dim]) -> Tensor:
        return self._op("reshape", shape=_dims(shape))

    view = reshape

    def transpose(self, a: int, b: int) -> Tensor:
        perm = list(range(self.ndim))
        a, b = _axis(a, self.ndim), _axis(b, self.ndim)
        perm[a], perm[b] = perm[b], perm[a]
        return self._op("transpose", perm=perm)

    def permute(self, *perm: int | Sequence[int]) -> Tensor:
        flat = list(perm[0]) if len(perm) == 1 and isinstance(perm[0], list | tuple) else list(perm)
        return self._op("transpose", perm=flat)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def unsqueeze(self, axis: int) -> Tensor:
        return self._op("unsqueeze", axes=[axis])

    def squeeze(self, axis: int) -> Tensor:
        return self._op("squeeze", axes=[axis])

    def expand(self, *shape: Dim | str | Sequence[Dim]) -> Tensor:
        return self._op("expand", shape=_dims(shape))

    def flatten(self, start: int = 0) -> Tensor:
        start = _axis(start, self.ndim)
        rest = self.shape[start:]
        total: Dim = 1
        for d in rest:
            total = total * d
        return self.reshape(*self.shape[:start], total)

    def split(self, sizes: int | Sequence[int], axis: int = -1) -> tuple[Tensor, ...]:
        if isinstance(sizes, int):
            dim = self.shape[_axis(axis, self.ndim)]
            if not isinstance(dim, int) or dim % sizes:
                raise ArchirError(f"cannot split dim {dim} into pieces of {sizes}", loc=user_location())
            sizes = [sizes] * (dim // sizes)
        result = self._op("split", axis=axis, sizes=list(sizes))
        return result if isinstance(result, tuple) else (result,)

    def chunk(self, n: int, axis: int = -1) -> tuple[Tensor, ...]:
        dim = self.shape[_axis(axis, self.ndim)]
        if not isinstance(dim, int) or dim % n:
            raise ArchirError(f"cannot chunk dim {dim} into {n} equal parts", loc=user_location())
        return self.split(dim // n, axis)

    def to(self, dtype: DType) -> Tensor:
        return self if dtype == self.dtype else self._op("cast", dtype=dtype)

    def float(self) -> Tensor:
        return self.to(DType.f32)

    # -- reductions and friends ---------------------------------------------------------------
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return self._op("sum", axes=_axes(axis), keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return self._op("mean", axes=_axes(axis), keepdims=keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return self._op("max", axes=_axes(axis), keepdims=keepdims)

    def argmax(self, axis: int = -1, keepdims: bool = False) -> Tensor:
        return self._op("argmax", axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return self._op("softmax", axis=axis)

    # -- indexing -----------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        return _index(self, index if isinstance(index, tuple) else (index,))


def _axis(axis: int, rank: int) -> int:
    try:
        return normalize_axis(axis, rank)
    except ArchirError as err:
        raise err.with_context(loc=user_location()) from None


def _axes(axis: int | Sequence[int] | None) -> list[int] | None:
    return [axis] if isinstance(axis, int) else (list(axis) if axis is not None else None)


def _dims(shape: tuple[Any, ...]) -> list[Any]:
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        return list(shape[0])
    return list(shape)


def constant(value: Scalar, dtype: DType = DType.f32) -> Tensor:
    """A scalar constant (a `full` node of shape [])."""
    return current_tracer().op("full", shape=[], value=float(value), dtype=dtype)  # type: ignore[return-value]


def _index(x: Tensor, items: tuple[Any, ...]) -> Tensor:
    """Basic indexing: ints, slices with int bounds, None and one Ellipsis."""
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise ArchirError("an index may hold at most one '...'", loc=user_location())
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if used > x.ndim:
        raise ArchirError(f"too many indices ({used}) for a tensor of rank {x.ndim}",
                          loc=user_location())
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1:]
    items = items + (slice(None),) * (x.ndim - used)
    axes, starts, ends, steps, drop, new = [], [], [], [], [], []
    axis = 0
    out_pos = 0
    for item in items:
        if item is None:
            new.append(out_pos)
            out_pos += 1
            continue
        if isinstance(item, bool) or not isinstance(item, int | slice):
            raise ArchirError(f"unsupported index {item!r}: use ints, slices, None or ...",
                              loc=user_location(), hint="use archir.gather / index_select for tensors")
        if isinstance(item, int):
            _check_in_range(item, x.shape[axis], axis)
            axes.append(axis)
            starts.append(item)
            ends.append(TO_END if item == -1 else item + 1)
            steps.append(1)
            drop.append(axis)
        elif item != slice(None):
            start, stop, step = item.start, item.stop, item.step
            step = 1 if step is None else step
            if step <= 0:
                raise ArchirError("slice steps must be positive", loc=user_location())
            axes.append(axis)
            starts.append(0 if start is None else start)
            ends.append(TO_END if stop is None else stop)
            steps.append(step)
            out_pos += 1
        else:
            out_pos += 1
        axis += 1
    if axes:
        x = x._op("slice", axes=axes, starts=starts, ends=ends,
                  steps=None if all(s == 1 for s in steps) else steps)
    if drop:
        x = x._op("squeeze", axes=drop)
    if new:
        x = x._op("unsqueeze", axes=new)
    return x


def _check_in_range(index: int, size: Dim, axis: int) -> None:
    """An int index outside a static axis would slice to nothing; report it where it is written."""
    if isinstance(size, int) and not -size <= index < size:
        raise ArchirError(f"index {index} is out of range for axis {axis} of size {size}",
                          loc=user_location(), hint=f"valid indices are {-size}..{size - 1}")
