"""Graph editing for passes: making inferred nodes, and one-walk rewrites that replace nodes.

`rewrite_graph` visits every block in schedule order and lets a rule replace each node by values
it computes (emitting new nodes before it); uses are redirected as the walk goes, in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from archir.builder import infer_types
from archir.errors import ArchirError, Location
from archir.ir import Graph, Node, Region, Value
from archir.registry import get_op

Emit = Callable[[Node], None]
RewriteRule = Callable[[Node, Emit], Sequence[Value] | None]


def make_node(op: str, inputs: Sequence[Value], attrs: dict[str, Any], name: str | None = None,
              loc: Location | None = None) -> Node:
    """A region-free node with normalised attributes and inferred result types (not yet placed)."""
    opdef = get_op(op)
    normalized = opdef.normalize_attrs(attrs)
    types = infer_types(opdef, inputs, normalized)
    node = Node(opdef.name, list(inputs), normalized, name=name, loc=loc)
    node.outputs = [Value(t, "result", None, node, i) for i, t in enumerate(types)]
    return node


@dataclass(slots=True)
class Substitution:
    """Values to read in place of others, applied while walking in schedule order.

    `ir.replace_all_uses` walks the whole graph per value; collecting replacements and applying
    them in the walk a pass already does keeps a pass linear in the graph size.
    """

    mapping: dict[Value, Value] = field(default_factory=dict)

    def replace(self, old: Value, new: Value) -> None:
        if old.type != new.type:
            # A pass bug, not a user error: every rewrite must keep the type of what it replaces.
            raise ArchirError(f"cannot replace a value of type {old.type} by one of type {new.type}")
        self.mapping[old] = new

    def replace_results(self, node: Node, values: Sequence[Value]) -> None:
        if len(values) != len(node.outputs):
            raise ArchirError(f"{node.op} has {len(node.outputs)} results, got {len(values)} "
                              "replacements")
        for old, new in zip(node.outputs, values, strict=True):
            self.replace(old, new)

    def resolve(self, v: Value) -> Value:
        while v in self.mapping:
            v = self.mapping[v]
        return v

    def resolve_all(self, values: Iterable[Value]) -> list[Value]:
        return [self.resolve(v) for v in values]

    def apply_to_inputs(self, node: Node) -> None:
        if self.mapping:
            node.inputs = self.resolve_all(node.inputs)

    def apply_to_yield(self, region: Region) -> None:
        if self.mapping:
            region.results = self.resolve_all(region.results)


@dataclass(slots=True)
class _Sweep:
    rule: RewriteRule
    subst: Substitution = field(default_factory=Substitution)
    changed: bool = False

    def block(self, nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            self.subst.apply_to_inputs(node)
            for region in node.regions:
                region.nodes = self.block(region.nodes)
                self.subst.apply_to_yield(region)
            emitted: list[Node] = []
            replacement = self.rule(node, emitted.append)
            out.extend(emitted)
            if replacement is None:
                out.append(node)
                continue
            self.subst.replace_results(node, replacement)
            self.changed = True
        return out


def rewrite_graph(graph: Graph, rule: RewriteRule) -> bool:
    """Apply `rule` to every node (regions first, then their owner); True when anything changed.

    The rule sees the node with its inputs already redirected. It returns None to keep the node,
    or one value per result to replace it (the node is then dropped); nodes it passes to `emit`
    are placed just before the node, in the same block.
    """
    sweep = _Sweep(rule)
    graph.nodes = sweep.block(graph.nodes)
    graph.outputs = sweep.subst.resolve_all(graph.outputs)
    return sweep.changed


def producer(v: Value, op: str) -> Node | None:
    """The node that made `v` when it is an `op` node, else None."""
    node = v.producer
    if v.kind == "result" and node is not None and node.op == op:
        return node
    return None
