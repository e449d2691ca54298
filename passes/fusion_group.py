"""Turns planned clusters into `fused` nodes: the nodes move into a closed body region.

Each cluster's members move into the body (a member that is already a fused group is inlined),
its copies are cloned in, every value read from outside becomes an input, and every value read
outside becomes a result. The block is then re-sorted: stable, so untouched nodes keep their order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from archir.passes.fusion_graph import Block, Cluster, Partition, reads

from archir.ir import Graph, Node, Region, Value
from archir.registry import get_op
from archir.rewrite import Substitution


@dataclass(slots=True)
class _Body:
    """A body under construction: `local` maps outer values to the values the body reads."""

    local: dict[Value, Value] = field(default_factory=dict)
    args: list[Value] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)

    def read(self, v: Value) -> Value:
        if v not in self.local:
            arg = Value(v.type, "region_arg")
            self.local[v] = arg
            self.args.append(arg)
            self.inputs.append(v)
        return self.local[v]

    def move(self, node: Node) -> None:
        node.inputs = [self.read(v) for v in node.inputs]
        self.nodes.append(node)
        for v in node.outputs:
            self.local[v] = v

    def clone(self, node: Node) -> None:
        copy = Node(node.op, [self.read(v) for v in node.inputs], dict(node.attrs),
                    name=node.name, loc=node.loc)
        copy.outputs = [Value(v.type, "result", None, copy, i) for i, v in enumerate(node.outputs)]
        self.nodes.append(copy)
        for old, new in zip(node.outputs, copy.outputs, strict=True):
            self.local[old] = new

    def inline(self, group: Node) -> None:
        body = group.regions[0]
        for arg, v in zip(body.args, group.inputs, strict=True):
            self.local[arg] = self.read(v)
        for inner in body.nodes:
            inner.inputs = [self.local[v] for v in inner.inputs]
            self.nodes.append(inner)
            for v in inner.outputs:
                self.local[v] = v
        for out, v in zip(group.outputs, body.results, strict=True):
            self.local[out] = self.local[v]


def rules_of(node: Node) -> list[str]:
    return node.attrs["rules"].split(",") if node.op == "fused" else []


def _unchanged(cluster: Cluster) -> bool:
    return not cluster.copies and len(cluster.members) == 1 and cluster.members[0].op == "fused"


def apply_partition(block: Block, partition: Partition) -> list[Node]:
    """The block's new node list, with each cluster replaced by one fused node."""
    clusters = [c for c in partition.clusters if not _unchanged(c)]
    if not clusters:
        return block.nodes
    subst = Substitution()
    order: dict[Node, int] = {}
    kept = [n for n in block.nodes if n not in partition.copied_into
            and (n not in partition.cluster_of or partition.cluster_of[n] not in clusters)]
    for node in kept:
        order[node] = block.index[node]
    for cluster in clusters:
        group = _build(block, partition, cluster, subst)
        order[group] = min(block.index[m] for m in cluster.members)
    for node in order:
        _redirect(node, subst)
    block.terminator = subst.resolve_all(block.terminator)
    return _stable_topological(order)


def _build(block: Block, partition: Partition, cluster: Cluster, subst: Substitution) -> Node:
    body = _Body()
    pieces = sorted(cluster.members + cluster.copies, key=block.index.__getitem__)
    members = set(cluster.members)
    for node in pieces:
        if node not in members:
            body.clone(node)
        elif node.op == "fused":
            body.inline(node)
        else:
            body.move(node)
    exported = [v for m in pieces if m in members for v in m.outputs
                if _read_outside(block, partition, cluster, v)]
    anchor = cluster.anchor or next((m for m in pieces if m.name), None)
    group = Node("fused", list(body.inputs), _attrs(cluster, pieces),
                 name=anchor.name if anchor else None, loc=anchor.loc if anchor else None)
    group.regions = [Region(body.args, body.nodes, [body.local[v] for v in exported], "body")]
    for i, v in enumerate(exported):
        out = Value(v.type, "result", v.name, group, i)
        group.outputs.append(out)
        subst.replace(v, out)
    return group


def _read_outside(block: Block, partition: Partition, cluster: Cluster, v: Value) -> bool:
    if v in block.terminator:
        return True
    return any(unit is not cluster for reader in block.users.get(v, ())
               for unit in partition.units(reader))


def _attrs(cluster: Cluster, pieces: list[Node]) -> dict[str, object]:
    rules: list[str] = []
    for rule in [r for n in pieces for r in rules_of(n)] + [cluster.rule]:
        if rule not in rules:
            rules.append(rule)
    flash = cluster.flash or any(n.op == "fused" and n.attrs["flash"] for n in pieces)
    key_tile = next((n.attrs["key_tile"] for n in pieces if n.op == "fused" and n.attrs["key_tile"]),
                    None)
    return get_op("fused").normalize_attrs(
        {"kind": cluster.kind, "rules": ",".join(rules), "flash": flash, "key_tile": key_tile})


def _redirect(node: Node, subst: Substitution) -> None:
    """Point `node` and everything in its regions at the groups' results.

    A fused body is closed (it reads only its arguments), so only the group's inputs change.
    """
    subst.apply_to_inputs(node)
    if node.op == "fused":
        return
    for region in node.regions:
        for inner in region.walk():
            subst.apply_to_inputs(inner)
            for r in inner.regions:
                subst.apply_to_yield(r)
        subst.apply_to_yield(region)


def _stable_topological(order: dict[Node, int]) -> list[Node]:
    """Nodes in an order that respects their reads, otherwise by their original position."""
    made_by = {v: n for n in order for v in n.outputs}
    waiting = {n: {made_by[v] for v in set(reads(n)) if v in made_by} for n in order}
    readers: dict[Node, list[Node]] = {}
    for node, deps in waiting.items():
        for d in deps:
            readers.setdefault(d, []).append(node)
    ready = [(order[n], i, n) for i, n in enumerate(order) if not waiting[n]]
    heapq.heapify(ready)
    tiebreak = len(order)
    result: list[Node] = []
    while ready:
        _, _, node = heapq.heappop(ready)
        result.append(node)
        for r in readers.get(node, ()):
            waiting[r].discard(node)
            if not waiting[r]:
                tiebreak += 1
                heapq.heappush(ready, (order[r], tiebreak, r))
    return result


def fused_rule_counts(graph: Graph) -> dict[str, int]:
    """How many fused groups (at any depth) each rule helped make."""
    counts: dict[str, int] = {}
    for node in graph.walk():
        for rule in rules_of(node):
            counts[rule] = counts.get(rule, 0) + 1
    return counts
