"""Call-time checks of a graph's arguments, shared by the interpreter and every backend.

Arguments are matched to inputs by position or name; dtypes must be exact, ranks and static
dims must match, and each symbol must take one size across all arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archir.errors import ArchirError, ArgumentError
from archir.ir import Graph, Value
from archir.symbolic import SymExpr, evaluate
from archir.types import TensorType


def _as_array(value: Any, arg: Value) -> Any:
    """numpy arrays and torch tensors pass as they are (no copy); Python scalars become arrays."""
    if isinstance(value, np.ndarray) or _is_torch(value):
        return value
    if isinstance(value, int | float | bool | np.generic):
        return np.asarray(value)
    raise ArgumentError(f"argument '{arg.name}' must be an array, got {type(value).__name__}")


def _is_torch(value: Any) -> bool:
    # Checked by name so the core does not import torch.
    return type(value).__module__.startswith("torch") and hasattr(value, "shape")


def _dtype_of(value: Any) -> np.dtype:
    if isinstance(value, np.ndarray):
        return value.dtype
    name = str(value.dtype).removeprefix("torch.")
    return np.dtype({"bool": "bool", "bfloat16": "bfloat16"}.get(name, name))


def order_arguments(graph: Graph, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    """Positional and keyword arguments in the order of the graph's inputs."""
    names = [v.name for v in graph.inputs]
    signature = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    if len(args) > len(names):
        raise ArgumentError(
            f"graph @{graph.name} takes {len(names)} inputs ({signature}), got {len(args)}"
        )
    ordered: list[Any] = list(args) + [None] * (len(names) - len(args))
    for key, value in kwargs.items():
        if key not in names:
            raise ArgumentError(f"graph @{graph.name} has no input '{key}'",
                                hint=f"its inputs: {signature}")
        index = names.index(key)
        if index < len(args):
            raise ArgumentError(f"input '{key}' is given twice")
        ordered[index] = value
    missing = [n for n, v in zip(names, ordered, strict=True) if v is None]
    if missing:
        raise ArgumentError(f"graph @{graph.name} is missing inputs {missing}",
                            hint=f"its inputs: {signature}")
    return ordered


def check_arguments(graph: Graph, args: Sequence[Any],
                    kwargs: Mapping[str, Any] | None = None) -> tuple[list[Any], dict[str, int]]:
    """Arrays (numpy or torch, unconverted) in input order and the symbol bindings.

    Raises an ArgumentError naming the input and its expected type on any mismatch."""
    values = order_arguments(graph, args, kwargs or {})
    arrays = [_as_array(v, arg) for v, arg in zip(values, graph.inputs, strict=True)]
    bindings: dict[str, int] = {}
    for array, arg in zip(arrays, graph.inputs, strict=True):
        _bind(arg, array, bindings)
    for array, arg in zip(arrays, graph.inputs, strict=True):
        _check_shape(arg, array, bindings)
    return arrays, bindings


def _expected(arg: Value) -> str:
    return f"input '{arg.name}' expects {arg.type}"


def _bind(arg: Value, array: Any, bindings: dict[str, int]) -> None:
    t = arg.type
    if not isinstance(t, TensorType):
        raise ArgumentError(f"input '{arg.name}' has type {t}, which cannot be passed from Python")
    try:
        dtype = _dtype_of(array)
    except TypeError:
        dtype = None
    if dtype != t.dtype.numpy:
        raise ArgumentError(f"{_expected(arg)} but got dtype {array.dtype}",
                            hint=f"convert it to {t.dtype.numpy.name}")
    if len(array.shape) != t.rank:
        raise ArgumentError(f"{_expected(arg)} but got shape {list(array.shape)} "
                            f"(rank {len(array.shape)}, expected rank {t.rank})")
    for dim, size in zip(t.shape, array.shape, strict=True):
        name = dim.as_symbol() if isinstance(dim, SymExpr) else None
        if name is not None:
            if name in bindings and bindings[name] != size:
                raise ArgumentError(
                    f"{_expected(arg)} but got shape {list(array.shape)}: {name} is "
                    f"{bindings[name]} from an earlier input and {size} here"
                )
            bindings[name] = size


def _check_shape(arg: Value, array: Any, bindings: dict[str, int]) -> None:
    t = arg.type
    assert isinstance(t, TensorType)
    for dim, size in zip(t.shape, array.shape, strict=True):
        try:
            want = evaluate(dim, bindings)
        except ArchirError:
            raise ArgumentError(f"{_expected(arg)}: its dim {dim} has symbols no input binds") from None
        if want != size:
            raise ArgumentError(f"{_expected(arg)} but got shape {list(array.shape)}")



class Signature:
    """A graph's argument check prepared once, for backends called in a hot loop: the common case
    (positional numpy arrays of the right types) costs a few comparisons; anything else, or any
    mismatch, goes through `check_arguments`, which builds the precise error."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.inputs: list[tuple[np.dtype, tuple[int | str | None, ...], bool]] | None = []
        for v in graph.inputs:
            if not isinstance(v.type, TensorType):
                self.inputs = None  # no fast path for non-tensor inputs
                return
            dims = tuple(_fast_dim(d) for d in v.type.shape)
            static = all(type(d) is int for d in dims)
            self.inputs.append((v.type.dtype.numpy, dims, static))

    def check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[list[Any], dict[str, int]]:
        fast = self._fast(args) if not kwargs else None
        return fast if fast is not None else check_arguments(self.graph, args, kwargs)

    def _fast(self, args: Sequence[Any]) -> tuple[list[Any], dict[str, int]] | None:
        specs = self.inputs
        if specs is None or len(args) != len(specs):
            return None
        bindings: dict[str, int] = {}
        for a, (dtype, dims, static) in zip(args, specs, strict=True):
            if type(a) is not np.ndarray or a.dtype != dtype:
                return None
            if static:  # every dim an int: one tuple comparison
                if a.shape != dims:
                    return None
                continue
            if a.ndim != len(dims):
                return None
            for want, size in zip(dims, a.shape, strict=True):
                if want is None:  # a compound expression such as T + 1: the full check decides
                    return None
                if isinstance(want, str):
                    if bindings.setdefault(want, size) != size:
                        return None
                elif want != size:
                    return None
        return list(args), bindings


def _fast_dim(dim: Any) -> int | str | None:
    if isinstance(dim, int):
        return dim
    name = dim.as_symbol() if isinstance(dim, SymExpr) else None
    return name
