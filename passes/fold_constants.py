"""Constant folding: evaluate nodes whose inputs are all constants, with the interpreter's semantics.

Constants are `full` and `iota` results and parameters that hold data. A folded splat becomes a
`full` node; other static results become new parameters (`<name>.folded`) when small enough.
Symbolic results are folded only when they are provably splats: elementwise or copying ops
whose inputs are all splats, so their value does not depend on the sizes the symbols take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from archir.errors import ArchirError
from archir.interpreter import run_node
from archir.ir import Graph, Node, Value
from archir.pass_manager import register_pass
from archir.registry import AttrKind, Trait, get_op
from archir.rewrite import Emit, make_node, producer, rewrite_graph
from archir.symbolic import free_symbols
from archir.types import TensorType

_MAX_PARAM_ELEMENTS = 1 << 20
_MAX_EVAL_ELEMENTS = 1 << 24  # never materialise a tensor larger than this while folding
_PROBE_SIZE = 8  # size given to every symbol to compute a splat's value
_SKIPPED_TRAITS = (Trait.SOURCE, Trait.RANDOM, Trait.SIDE_EFFECT)
# Ops whose every result element is a copy of some input element: splats in give splats out.
_COPY_OPS = frozenset({"reshape", "transpose", "expand", "squeeze", "unsqueeze", "concat", "slice",
                       "split"})


@register_pass("fold-constants")
def fold_constants(graph: Graph, /) -> Graph:
    """Replace computations on constants by `full` nodes or new parameters holding their values."""
    rewrite_graph(graph, _Folder(graph).fold)
    return graph


@dataclass(slots=True)
class _Folder:
    graph: Graph
    cache: dict[Value, np.ndarray] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.names = {v.name for v in self.graph.inputs + self.graph.params if v.name}

    def fold(self, node: Node, emit: Emit) -> Sequence[Value] | None:
        if not self._candidate(node):
            return None
        if _is_static(node):
            return self._fold_static(node, emit)
        return self._fold_symbolic(node, emit)

    def _candidate(self, node: Node) -> bool:
        op = get_op(node.op)
        if node.regions or not node.inputs or any(op.has(t) for t in _SKIPPED_TRAITS):
            return False
        return all(self._is_constant(v) for v in node.inputs)

    def _is_constant(self, v: Value) -> bool:
        if v.kind == "param":
            return v.name in self.graph.param_data
        return producer(v, "full") is not None or producer(v, "iota") is not None

    def _array(self, v: Value, bindings: dict[str, int]) -> np.ndarray:
        if v.kind == "param":
            return self.graph.param_data[v.name or ""]
        if bindings:  # symbolic sources are probed afresh, never cached
            return run_node(_producer(v), [], bindings)[v.index]
        if v not in self.cache:
            self.cache[v] = run_node(_producer(v), [], {})[v.index]
        return self.cache[v]

    # -- static shapes ------------------------------------------------------------------------
    def _fold_static(self, node: Node, emit: Emit) -> Sequence[Value] | None:
        if _too_large(node, {}):
            return None
        arrays = [self._array(v, {}) for v in node.inputs]
        results = _evaluate(node, arrays, {})
        if results is None:
            return None
        limit = max(_MAX_PARAM_ELEMENTS, sum(a.size for a in arrays))
        splats = [_splat_value(a) for a in results]
        if any(s is None and a.size > limit for s, a in zip(splats, results, strict=True)):
            return None
        folded: list[Value] = []
        for out, array, splat in zip(node.outputs, results, splats, strict=True):
            full = self._full(node, out, splat, emit) if splat is not None else None
            folded.append(full or self._new_param(node, out, array))
        return folded

    def _new_param(self, node: Node, out: Value, array: np.ndarray) -> Value:
        base = f"{node.name or node.op}.folded"
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}.{i}"
        self.names.add(name)
        param = Value(out.type, "param", name)
        self.graph.params.append(param)
        # A copy, so the new parameter never aliases another parameter's data.
        self.graph.param_data[name] = np.array(array, order="C", copy=True)
        return param

    # -- symbolic shapes ----------------------------------------------------------------------
    def _fold_symbolic(self, node: Node, emit: Emit) -> Sequence[Value] | None:
        if not (get_op(node.op).has(Trait.ELEMENTWISE) or node.op in _COPY_OPS):
            return None
        if not all(self._is_splat(v) for v in node.inputs):
            return None
        bindings = {name: _PROBE_SIZE for name in _node_symbols(node)}
        if _too_large(node, bindings):
            return None
        results = _evaluate(node, [self._array(v, bindings) for v in node.inputs], bindings)
        if results is None:
            return None
        splats = [_splat_value(a) for a in results]
        folded: list[Value] = []
        for out, splat in zip(node.outputs, splats, strict=True):
            full = self._full(node, out, splat, emit) if splat is not None else None
            if full is None:
                return None
            folded.append(full)
        return folded

    def _is_splat(self, v: Value) -> bool:
        """A splat whatever sizes the symbols take: a `full`, or static data that is one."""
        if producer(v, "full") is not None:
            return True
        t = v.type
        return isinstance(t, TensorType) and t.is_static() and \
            _splat_value(self._array(v, {})) is not None

    def _full(self, node: Node, out: Value, value: float, emit: Emit) -> Value | None:
        t = out.type
        if not isinstance(t, TensorType):
            return None
        try:
            full = make_node("full", [], {"shape": t.shape, "value": value, "dtype": t.dtype},
                             node.name, node.loc)
        except ArchirError:
            return None
        if full.outputs[0].type != t:
            return None
        full.outputs[0].name = out.name  # the printer keeps the name readers know
        emit(full)
        return full.outputs[0]


def _producer(v: Value) -> Node:
    if v.producer is None:
        raise ArchirError(f"value %{v.name or '?'} has no producer")
    return v.producer


def _evaluate(node: Node, arrays: list[np.ndarray],
              bindings: dict[str, int]) -> list[np.ndarray] | None:
    """The node's results, or None when it cannot run on these values (it is then left alone)."""
    try:
        with np.errstate(all="ignore"):
            return run_node(node, arrays, bindings)
    except (ArchirError, ValueError, ArithmeticError):
        return None


def _too_large(node: Node, bindings: dict[str, int]) -> bool:
    """Whether an operand or result would exceed the evaluation cap (or has no valid size)."""
    for v in node.inputs + node.outputs:
        if not isinstance(v.type, TensorType):
            return True
        try:
            shape = v.type.concrete_shape(bindings)
        except ArchirError:
            return True
        if any(d < 0 for d in shape) or math.prod(shape) > _MAX_EVAL_ELEMENTS:
            return True
    return False


def _is_static(node: Node) -> bool:
    for v in node.inputs + node.outputs:
        if not isinstance(v.type, TensorType) or not v.type.is_static():
            return False
    return not _dims_attr_symbols(node)


def _dims_attr_symbols(node: Node) -> set[str]:
    names: set[str] = set()
    for key, spec in get_op(node.op).attrs.items():
        if spec.kind is AttrKind.DIMS and node.attrs.get(key) is not None:
            for d in node.attrs[key]:
                names |= free_symbols(d)
    return names


def _node_symbols(node: Node) -> set[str]:
    names = _dims_attr_symbols(node)
    for v in node.inputs + node.outputs:
        if isinstance(v.type, TensorType):
            names |= v.type.free_symbols()
    return names


def _splat_value(array: np.ndarray) -> float | None:
    """The one value every element holds, as the float a `full` node stores exactly; else None."""
    if array.size == 0:
        return 0.0
    if array.dtype.kind == "f" or array.dtype.name == "bfloat16":
        wide = array.astype(np.float64).reshape(-1)
        first = wide[0]
        if np.isnan(first):
            return float(first) if bool(np.all(np.isnan(wide))) else None
        same = np.all(wide == first) and np.all(np.signbit(wide) == np.signbit(first))
        return float(first) if same else None
    flat = array.reshape(-1)
    if not bool(np.all(flat == flat[0])):
        return None
    exact = int(flat[0])
    value = float(exact)
    return value if int(value) == exact else None
