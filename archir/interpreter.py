"""The numpy interpreter: runs any graph node by node with each op's reference semantics.

It is the ground truth every pass and backend is checked against. Low-precision floats
(f16, bf16) are computed in f32 and rounded at each op's output, as GPU kernels do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archir.errors import ArchirError, ArgumentError, VerifyError
from archir.ir import Graph, Node, Region, Value
from archir.registry import AttrKind, get_op
from archir.signature import check_arguments
from archir.symbolic import evaluate, free_symbols
from archir.types import DType, TensorType

_LOW_PRECISION = (DType.f16.numpy, DType.bf16.numpy)


class _Env:
    """Values computed so far; a region's env falls back on its enclosing one."""

    def __init__(self, parent: _Env | None = None) -> None:
        self.values: dict[Value, np.ndarray] = {}
        self.parent = parent

    def __getitem__(self, v: Value) -> np.ndarray:
        env: _Env | None = self
        while env is not None:
            if v in env.values:
                return env.values[v]
            env = env.parent
        raise ArchirError(f"value %{v.name or '?'} is read before it is computed")


def run(graph: Graph, *args: Any, params: Mapping[str, np.ndarray] | None = None,
        **kwargs: Any) -> list[np.ndarray]:
    """Run `graph` on numpy arrays (or torch tensors); returns the outputs as numpy arrays."""
    arrays, bindings = check_arguments(graph, args, kwargs)
    return run_checked(graph, arrays, bindings, params)


def run_checked(graph: Graph, arrays: Sequence[Any], bindings: dict[str, int],
                params: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """`run` on arguments `check_arguments` already accepted (compiled modules check them once)."""
    env = _Env()
    for v, a in zip(graph.inputs, arrays, strict=True):
        env.values[v] = a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()
    data = dict(graph.param_data)
    data.update(params or {})
    for p in graph.params:
        if p.name not in data:
            raise ArgumentError(f"parameter '{p.name}' has no data",
                                hint="load weights, or pass params={name: array}")
        env.values[p] = data[p.name]
    _run_nodes(graph.nodes, env, bindings)
    return [env[v] for v in graph.outputs]


def run_node(node: Node, arrays: Sequence[np.ndarray],
             bindings: Mapping[str, int] | None = None) -> list[np.ndarray]:
    """The results of one `node` whose inputs hold `arrays` (constant folding uses this), with the
    same low-precision rounding, DIMS resolution under `bindings` and result checks as `run`."""
    env = _Env()
    for v, a in zip(node.inputs, arrays, strict=True):
        env.values[v] = a
    return _run_node(node, env, dict(bindings or {}))


def _run_nodes(nodes: Sequence[Node], env: _Env, bindings: dict[str, int]) -> None:
    for node in nodes:
        results = _run_node(node, env, bindings)
        for v, r in zip(node.outputs, results, strict=True):
            env.values[v] = r


def _run_node(node: Node, env: _Env, bindings: dict[str, int]) -> list[np.ndarray]:
    op = get_op(node.op)
    inputs = [_compute_dtype(env[v]) for v in node.inputs]
    kwargs: dict[str, Any] = dict(node.attrs)
    for key, spec in op.attrs.items():
        if spec.kind is AttrKind.DIMS and kwargs[key] is not None:
            kwargs[key] = _concrete_dims(node, kwargs[key], bindings)
    if node.regions:
        kwargs["regions"] = [_region_callable(r, env, bindings) for r in node.regions]
    try:
        raw = op.impl(*op.pad_operands(inputs), **kwargs)
    except ArchirError as err:
        raise err.with_context(loc=node.loc, node=node.describe()) from None
    except (ValueError, IndexError, FloatingPointError) as err:
        raise ArchirError(f"{node.op} failed at run time: {err}", loc=node.loc,
                          node=node.describe()) from None
    results = list(raw) if isinstance(raw, list | tuple) else [raw]
    return [_conform(node, v, r, bindings) for v, r in zip(node.outputs, results, strict=True)]


def _concrete_dims(node: Node, dims: tuple, bindings: dict[str, int]) -> tuple[int, ...]:
    try:
        return tuple(evaluate(d, bindings) for d in dims)
    except ArchirError as err:
        raise err.with_context(loc=node.loc, node=node.describe()) from None


def _compute_dtype(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype in _LOW_PRECISION else a


def _conform(node: Node, v: Value, result: Any, bindings: dict[str, int]) -> np.ndarray:
    """Cast to the declared dtype and check the shape against the declared type."""
    t = v.type
    array = np.asarray(result)
    if not isinstance(t, TensorType):
        return array
    if array.dtype != t.dtype.numpy:
        array = array.astype(t.dtype.numpy)
    if all(free_symbols(d) <= bindings.keys() for d in t.shape):
        want = t.concrete_shape(bindings)
        if tuple(array.shape) != want:
            raise VerifyError(f"{node.op} produced shape {list(array.shape)} but its type is {t} "
                              f"(= {list(want)} here)", loc=node.loc, node=node.describe())
    return array


def _region_callable(region: Region, parent: _Env, bindings: dict[str, int]):  # noqa: ANN202
    def call(*arrays: np.ndarray) -> list[np.ndarray]:
        env = _Env(parent)
        for v, a in zip(region.args, arrays, strict=True):
            env.values[v] = a
        _run_nodes(region.nodes, env, bindings)
        return [env[v] for v in region.results]

    def result_shapes() -> list[tuple[tuple[int, ...], np.dtype] | None]:
        """(shape, dtype) of each tensor result under the bindings (None for other types): a scan
        of no steps builds its empty per-step outputs from them."""
        return [(v.type.concrete_shape(bindings), v.type.dtype.numpy) if isinstance(v.type, TensorType)
                else None for v in region.results]

    call.result_shapes = result_shapes  # type: ignore[attr-defined]
    return call
