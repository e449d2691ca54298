"""The programmatic way to make graphs: `GraphBuilder`.

    b = GraphBuilder("mlp")
    x = b.input("x", f32["B", 768])
    w = b.param("w1", f32[768, 3072])
    b.output(b.gelu(b.matmul(x, w), approximate="tanh"))
    graph = b.build()

Every op is inferred as it is added, so a shape mismatch is reported at the line that made it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from archir.errors import ArchirError, Location, OpDefinitionError, TypeInferenceError
from archir.ir import Graph, Node, Region, Value
from archir.registry import OpDef, get_op
from archir.types import TensorType, Type

RegionFn = Callable[..., Value | Sequence[Value]]
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(os.path.join(_ROOT, d) + os.sep for d in ("archir", "frontends", "passes", "backends"))


def infer_types(op: OpDef, inputs: Sequence[Value], attrs: dict[str, Any],
                regions: Sequence[Region] = ()) -> list[Type]:
    """Result types of `op` on `inputs`; attrs must already be normalised."""
    op.check_operand_count(len(inputs))
    args = op.pad_operands([v.type for v in inputs])
    kwargs = dict(attrs)
    if op.regions:
        kwargs["regions"] = list(regions)
    result = op.infer(*args, **kwargs)
    return list(result) if isinstance(result, list | tuple) else [result]


def user_location() -> Location | None:
    """The innermost stack frame outside archir's own packages: where the user's code is.

    archir's examples and tests count as user code, so their errors point at their lines.
    """
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return Location(filename, frame.f_lineno)
        frame = frame.f_back
    return None


def _is_internal(filename: str) -> bool:
    if filename.startswith("<"):
        return filename.startswith("<frozen")
    path = os.path.abspath(filename)
    if "importlib" in path:
        return True
    return path.startswith(_INTERNAL_DIRS)


class GraphBuilder:
    """Builds one `Graph`; `b.<op>(...)` is shorthand for `b.op("<op>", ...)`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.params: list[Value] = []
        self.param_data: dict[str, np.ndarray] = {}
        self.outputs: list[Value] = []
        self._blocks: list[list[Node]] = [[]]
        self._scope: list[str] = []

    # -- signature ----------------------------------------------------------------------------
    def input(self, name: str, type_: Type) -> Value:
        self._check_new_name(name)
        value = Value(type_, "input", name)
        self.inputs.append(value)
        return value

    def param(self, name: str, type_: TensorType, data: np.ndarray | None = None) -> Value:
        """A named parameter; `data` (optional until run time) must match the type exactly."""
        self._check_new_name(name)
        if data is not None:
            check_param_data(name, type_, data)
            self.param_data[name] = data
        value = Value(type_, "param", name)
        self.params.append(value)
        return value

    def output(self, *values: Value) -> None:
        self.outputs.extend(values)

    def build(self) -> Graph:
        if len(self._blocks) != 1:
            raise ArchirError("build() called inside a region")
        if not self.outputs:
            raise ArchirError(f"graph @{self.name} has no outputs", hint="call output(...)")
        return Graph(self.name, list(self.inputs), list(self.params), list(self._blocks[0]),
                     list(self.outputs), dict(self.param_data))

    def _check_new_name(self, name: str) -> None:
        if any(v.name == name for v in self.inputs + self.params):
            raise ArchirError(f"graph @{self.name} already has an input or parameter '{name}'")

    # -- naming scopes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Nodes made inside get names like `blocks.3.attn.<name>`."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    @contextlib.contextmanager
    def scope_path(self, path: str) -> Iterator[None]:
        """Replace the whole scope by `path` (a module's full name) for the nodes made inside."""
        saved = self._scope
        self._scope = path.split(".") if path else []
        try:
            yield
        finally:
            self._scope = saved

    def scoped_name(self, name: str | None = None) -> str | None:
        parts = self._scope + ([name] if name else [])
        return ".".join(parts) if parts else None

    # -- ops ----------------------------------------------------------------------------------
    def op(self, op_name: str, *inputs: Value, regions: Sequence[RegionFn] = (),
           name: str | None = None, loc: Location | None = None,
           **attrs: Any) -> Value | tuple[Value, ...]:
        """Add one node; returns its single result, or a tuple when it has several."""
        node = self.add_node(op_name, list(inputs), attrs, regions, name=name, loc=loc)
        return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)

    def add_node(self, op_name: str, inputs: list[Value], attrs: dict[str, Any],
                 regions: Sequence[RegionFn] = (), *, name: str | None = None,
                 loc: Location | None = None) -> Node:
        node = Node(op_name, inputs, {}, name=self.scoped_name(name), loc=loc)
        try:
            op = get_op(op_name)
            for v in inputs:
                if not isinstance(v, Value):
                    raise OpDefinitionError(f"{op_name} operands must be IR values, got {v!r}")
            node.attrs = op.normalize_attrs(attrs)
            op.check_operand_count(len(inputs))
            node.regions = self._build_regions(op, inputs, node.attrs, regions)
            types = infer_types(op, inputs, node.attrs, node.regions)
        except ArchirError as err:
            raise err.with_context(loc=loc or user_location(), node=node.describe()) from None
        node.outputs = [Value(t, "result", None, node, i) for i, t in enumerate(types)]
        self._blocks[-1].append(node)
        return node

    def _build_regions(self, op: OpDef, inputs: list[Value], attrs: dict[str, Any],
                       fns: Sequence[RegionFn]) -> list[Region]:
        if len(fns) != len(op.regions):
            raise OpDefinitionError(
                f"{op.name} takes {len(op.regions)} regions ({', '.join(op.regions) or 'none'}),"
                f" got {len(fns)}"
            )
        if not fns:
            return []
        assert op.region_args is not None
        arg_types = op.region_args(*op.pad_operands([v.type for v in inputs]), **attrs)
        return [self.region(name, types, fn)
                for name, types, fn in zip(op.regions, arg_types, fns, strict=True)]

    def region(self, name: str, arg_types: Sequence[Type], fn: RegionFn) -> Region:
        """Run `fn` on fresh region arguments; the values it returns are the region's yield."""
        args = [Value(t, "region_arg", None) for t in arg_types]
        self._blocks.append([])
        try:
            result = fn(*args)
        finally:
            nodes = self._blocks.pop()
        results = [result] if isinstance(result, Value) else list(result)
        return Region(args, nodes, results, name)

    def __getattr__(self, op_name: str) -> Callable[..., Any]:
        if op_name.startswith("_"):
            raise AttributeError(op_name)

        def make(*inputs: Value, **attrs: Any) -> Value | tuple[Value, ...]:
            return self.op(op_name, *inputs, **attrs)

        return make


def check_param_data(name: str, type_: TensorType, data: np.ndarray) -> None:
    if not isinstance(data, np.ndarray):
        raise ArchirError(f"parameter '{name}' data must be a numpy array, got {type(data).__name__}")
    if not type_.is_static():
        raise TypeInferenceError(f"parameter '{name}' has symbolic shape {type_}")
    if tuple(data.shape) != tuple(type_.shape) or data.dtype != type_.dtype.numpy:
        raise TypeInferenceError(
            f"parameter '{name}' is declared {type_} but its data is "
            f"{data.dtype}{list(data.shape)}"
        )
