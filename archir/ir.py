"""The graph IR: SSA values, nodes with typed attributes and regions, and graphs.

A `Graph` has inputs, named parameters (their numpy data held apart in `Graph.param_data`),
a list of nodes in schedule order and outputs. Region-holding nodes (`scan`, `cond`, `while`,
fused groups) own `Region`s: sub-blocks with their own arguments that may read any value
defined before the node in an enclosing scope (implicit capture, as in MLIR).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from archir.errors import Location
from archir.types import TensorType, Type

ValueKind = Literal["input", "param", "result", "region_arg"]
AttrValue = int | float | bool | str | None | tuple  # tuples hold ints, floats, dims or strings


@dataclass(eq=False, slots=True)
class Value:
    """One SSA value. Identity is the object; `name` is a printing hint (`x`, `blocks.0.w`)."""

    type: Type
    kind: ValueKind
    name: str | None = None
    producer: Node | None = None
    index: int = 0

    @property
    def tensor_type(self) -> TensorType:
        assert isinstance(self.type, TensorType), f"{self} is not a tensor"
        return self.type

    def __repr__(self) -> str:
        return f"Value(%{self.name or '?'}: {self.type})"


@dataclass(eq=False, slots=True)
class Region:
    """A block of nodes with arguments, ending in `yield` of `results`."""

    args: list[Value]
    nodes: list[Node] = field(default_factory=list)
    results: list[Value] = field(default_factory=list)
    name: str = "body"

    def walk(self) -> Iterator[Node]:
        for node in self.nodes:
            yield node
            for region in node.regions:
                yield from region.walk()


@dataclass(eq=False, slots=True)
class Node:
    """An op application: `outputs = op(inputs) {attrs}` with optional regions.

    `name` is the scope it came from (`blocks.3.attn.q_proj`); `loc` the source location.
    """

    op: str
    inputs: list[Value]
    attrs: dict[str, AttrValue]
    outputs: list[Value] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    name: str | None = None
    loc: Location | None = None

    def describe(self) -> str:
        ins = ", ".join(f"%{v.name or '?'}" for v in self.inputs)
        where = f" ({self.name})" if self.name else ""
        return f"{self.op}({ins}){where}"

    def replace_input(self, old: Value, new: Value) -> None:
        self.inputs = [new if v is old else v for v in self.inputs]


@dataclass(eq=False, slots=True)
class Graph:
    name: str
    inputs: list[Value]
    params: list[Value]
    nodes: list[Node]
    outputs: list[Value]
    param_data: dict[str, np.ndarray] = field(default_factory=dict)
    loc: Location | None = None
    # Analysis results that passes leave for later passes and backends (`memory_plan`); they are
    # not part of the IR: the printer, parser and verifier ignore them.
    annotations: dict[str, Any] = field(default_factory=dict)

    def walk(self) -> Iterator[Node]:
        """Every node, regions included, in schedule order (a node before its regions' nodes)."""
        for node in self.nodes:
            yield node
            for region in node.regions:
                yield from region.walk()

    def param(self, name: str) -> Value:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def output_types(self) -> list[Type]:
        return [v.type for v in self.outputs]

    def symbols(self) -> list[str]:
        """Symbolic dims of the inputs, in order of first appearance."""
        seen: list[str] = []
        for v in self.inputs:
            if isinstance(v.type, TensorType):
                for d in v.type.shape:
                    for s in sorted(getattr(d, "free_symbols", lambda: set())()):
                        if s not in seen:
                            seen.append(s)
        return seen


def users(graph: Graph) -> dict[Value, list[Node]]:
    """Map each value to the nodes (at any depth) reading it."""
    table: dict[Value, list[Node]] = {}
    for node in graph.walk():
        for v in node.inputs:
            table.setdefault(v, []).append(node)
    return table


def replace_all_uses(graph: Graph, old: Value, new: Value) -> None:
    """Point every reader of `old` (nodes at any depth, region yields, graph outputs) at `new`."""
    for node in graph.walk():
        node.replace_input(old, new)
        for region in node.regions:
            region.results = [new if v is old else v for v in region.results]
    graph.outputs = [new if v is old else v for v in graph.outputs]


def copy_graph(graph: Graph) -> Graph:
    """A structural copy that passes may rewrite without touching `graph`: new values, nodes and
    regions; types, attributes, locations and the weight arrays themselves are shared. Analysis
    annotations refer to the old values, so the copy starts without them."""
    table: dict[int, Value] = {}

    def value(v: Value | None) -> Value | None:
        if v is None:
            return None
        if id(v) not in table:  # graph inputs, params and region arguments (defined, not produced)
            table[id(v)] = Value(v.type, v.kind, v.name, None, v.index)
        return table[id(v)]

    def node(n: Node) -> Node:
        copied = Node(n.op, [value(v) for v in n.inputs], dict(n.attrs), name=n.name, loc=n.loc)  # type: ignore[misc]
        copied.regions = [region(r) for r in n.regions]
        for out in n.outputs:
            new = Value(out.type, out.kind, out.name, copied, out.index)
            table[id(out)] = new
            copied.outputs.append(new)
        return copied

    def region(r: Region) -> Region:
        args = [value(a) for a in r.args]
        nodes = [node(n) for n in r.nodes]
        return Region(args, nodes, [value(v) for v in r.results], r.name)  # type: ignore[arg-type]

    inputs = [value(v) for v in graph.inputs]
    params = [value(v) for v in graph.params]
    nodes = [node(n) for n in graph.nodes]
    return Graph(graph.name, inputs, params, nodes, [value(v) for v in graph.outputs],  # type: ignore[arg-type]
                 dict(graph.param_data), graph.loc)
