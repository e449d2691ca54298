"""Prints graphs in the `.air` text format; `parser.parse` reads it back exactly.

Inputs and parameters print under their names; other values under their name hint when it is
free, else under the next free number. Attributes equal to their default are left out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from archir.ir import Graph, Node, Region, Value
from archir.registry import attr_equal, get_op
from archir.types import DType

_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_$.\-]+\Z")


def print_graph(graph: Graph) -> str:
    """The `.air` text of `graph`, ending in a newline."""
    return _Printer(graph).render()


def format_name(name: str, sigil: str = "%") -> str:
    return f"{sigil}{name}" if _SIMPLE_NAME.match(name) else f"{sigil}{json.dumps(name)}"


def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, DType):
        return value.value
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    return str(value)


class _Printer:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names: dict[Value, str] = {}
        self.taken: set[str] = set()
        # Names of inputs and params are kept verbatim, so no other value may take them first.
        self.reserved = {v.name for v in graph.inputs + graph.params if v.name is not None}
        self.counter = 0
        self.lines: list[str] = []

    def name_of(self, v: Value) -> str:
        if v not in self.names:
            return "%<undefined>"
        return format_name(self.names[v])

    def _assign(self, v: Value, keep_name: bool = False) -> str:
        hint = v.name
        if keep_name and hint is not None and hint not in self.taken:
            name = hint  # input and parameter names are the graph's interface, even odd ones
        elif hint and not hint.isdigit() and self._free(hint):
            name = hint
        else:
            while not self._free(str(self.counter)):
                self.counter += 1
            name = str(self.counter)
            self.counter += 1
        self.taken.add(name)
        self.names[v] = name
        return format_name(name)

    def _free(self, name: str) -> bool:
        return name not in self.taken and name not in self.reserved

    def _typed(self, v: Value, keep_name: bool = False) -> str:
        return f"{self._assign(v, keep_name)}: {v.type}"

    def render(self) -> str:
        g = self.graph
        ins = ", ".join(self._typed(v, keep_name=True) for v in g.inputs)
        outs = ", ".join(str(v.type) for v in g.outputs)
        header = f"graph {format_name(g.name, '@')}({ins}) -> {outs}"
        if g.params:
            params = ", ".join(self._typed(v, keep_name=True) for v in g.params)
            header += f"\n    params({params})"
        self.lines.append(header + " {")
        self._nodes(g.nodes, 1)
        self.lines.append("  return " + ", ".join(self.name_of(v) for v in g.outputs))
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def _nodes(self, nodes: list[Node], depth: int) -> None:
        for node in nodes:
            self._node(node, depth)

    def _node(self, node: Node, depth: int) -> None:
        pad = "  " * depth
        ins = ", ".join(self.name_of(v) for v in node.inputs)
        text = f"{node.op}({ins})"
        attrs = self._attrs(node)
        if attrs:
            text += " " + attrs
        text += " : " + ", ".join(str(v.type) for v in node.outputs)
        if node.name:
            text += " " + format_name(node.name, "@")
        outs = ", ".join(self._assign(v) for v in node.outputs)
        if not node.regions:
            self.lines.append(f"{pad}{outs} = {text}")
            return
        self.lines.append(f"{pad}{outs} = {text} {self._region_header(node.regions[0])} {{")
        for i, region in enumerate(node.regions):
            if i:
                self.lines.append(f"{pad}}} {self._region_header(region)} {{")
            self._nodes(region.nodes, depth + 1)
            results = ", ".join(self.name_of(v) for v in region.results)
            self.lines.append(f"{pad}  yield {results}".rstrip())
        self.lines.append(f"{pad}}}")

    def _region_header(self, region: Region) -> str:
        args = ", ".join(self._typed(v) for v in region.args)
        return f"{region.name}({args})"

    def _attrs(self, node: Node) -> str:
        op = get_op(node.op)
        parts = []
        for key, spec in op.attrs.items():
            value = node.attrs.get(key, spec.default)
            if not spec.required and attr_equal(value, spec.default):
                continue
            parts.append(f"{key} = {format_attr(value)}")
        return "{" + ", ".join(parts) + "}" if parts else ""

