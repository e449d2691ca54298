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


def _as_array(value: Any, arg: Value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    if isinstance(value, int | float | bool | np.generic):
        return np.asarray(value)
    raise ArgumentError(f"argument '{arg.name}' must be an array, got {type(value).__name__}")


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
                    kwargs: Mapping[str, Any] | None = None) -> tuple[list[np.ndarray], dict[str, int]]:
    """Arrays in input order and the symbol bindings, or an ArgumentError naming the input."""
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


def _bind(arg: Value, array: np.ndarray, bindings: dict[str, int]) -> None:
    t = arg.type
    if not isinstance(t, TensorType):
        raise ArgumentError(f"input '{arg.name}' has type {t}, which cannot be passed from Python")
    if array.dtype != t.dtype.numpy:
        raise ArgumentError(f"{_expected(arg)} but got dtype {array.dtype}",
                            hint=f"convert it with .astype({t.dtype.numpy.name!r})")
    if array.ndim != t.rank:
        raise ArgumentError(f"{_expected(arg)} but got shape {list(array.shape)} "
                            f"(rank {array.ndim}, expected rank {t.rank})")
    for dim, size in zip(t.shape, array.shape, strict=True):
        name = dim.as_symbol() if isinstance(dim, SymExpr) else None
        if name is not None:
            if name in bindings and bindings[name] != size:
                raise ArgumentError(
                    f"{_expected(arg)} but got shape {list(array.shape)}: {name} is "
                    f"{bindings[name]} from an earlier input and {size} here"
                )
            bindings[name] = size


def _check_shape(arg: Value, array: np.ndarray, bindings: dict[str, int]) -> None:
    t = arg.type
    assert isinstance(t, TensorType)
    for dim, size in zip(t.shape, array.shape, strict=True):
        try:
            want = evaluate(dim, bindings)
        except ArchirError:
            raise ArgumentError(f"{_expected(arg)}: its dim {dim} has symbols no input binds") from None
        if want != size:
            raise ArgumentError(f"{_expected(arg)} but got shape {list(array.shape)}")

