"""The dependency view fusion passes plan on: one block at a time, and a partition into clusters.

A `Block` is a graph body or a region body with its node-to-node edges (a node reads a value when
it or anything in its regions reads it). A `Partition` grows clusters of a block's nodes while
keeping each one convex (no path leaves a cluster and comes back), the condition for replacing a
cluster by one node; `plan_copies` then decides which cheap producers each cluster recomputes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from archir.passes import fusion_cost as cost

from archir.ir import Graph, Node, Region, Value


def reads(node: Node) -> Iterator[Value]:
    """Every value `node` reads: its inputs and what its regions' nodes and yields read."""
    yield from node.inputs
    for region in node.regions:
        for inner in region.walk():
            yield from inner.inputs
        yield from region.results


@dataclass(eq=False, slots=True)
class Block:
    """The nodes of `owner` (a graph or a region) in schedule order, with their edges."""

    nodes: list[Node]
    owner: Graph | Region
    index: dict[Node, int] = field(default_factory=dict)
    users: dict[Value, list[Node]] = field(default_factory=dict)
    _readers: dict[Node, list[Node]] = field(default_factory=dict)

    @property
    def terminator(self) -> list[Value]:
        """The values read after the block: graph outputs or region yields."""
        return self.owner.outputs if isinstance(self.owner, Graph) else self.owner.results

    @terminator.setter
    def terminator(self, values: list[Value]) -> None:
        if isinstance(self.owner, Graph):
            self.owner.outputs = values
        else:
            self.owner.results = values

    def __post_init__(self) -> None:
        defined: set[Value] = set()
        for i, node in enumerate(self.nodes):
            self.index[node] = i
            defined.update(node.outputs)
        for node in self.nodes:
            for v in set(reads(node)):
                if v in defined:
                    self.users.setdefault(v, []).append(node)

    def producer(self, v: Value) -> Node | None:
        """The node of this block that makes `v`, if any."""
        node = v.producer
        return node if v.kind == "result" and node in self.index else None

    def readers(self, node: Node) -> list[Node]:
        """Nodes of this block reading any result of `node`, in schedule order."""
        if node not in self._readers:
            found = {r for v in node.outputs for r in self.users.get(v, ())}
            self._readers[node] = sorted(found, key=self.index.__getitem__)
        return self._readers[node]

    def escapes(self, node: Node) -> bool:
        """Is a result of `node` read after the block (a graph output or region yield)?"""
        return any(v in self.terminator for v in node.outputs)


@dataclass(eq=False, slots=True)
class Cluster:
    """Nodes that will become one fused group; `copies` are producers recomputed inside it."""

    members: list[Node]
    kind: str
    rule: str
    anchor: Node | None = None
    flash: bool = False
    copies: list[Node] = field(default_factory=list)

    def size(self) -> int:
        return sum(cost.group_size(n) for n in self.members) + len(self.copies)


class Partition:
    """Clusters over one block. Nodes join through `try_merge`, which keeps clusters convex."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self.cluster_of: dict[Node, Cluster] = {}
        self.copied_into: dict[Node, list[Cluster]] = {}
        self.clusters: list[Cluster] = []

    def new(self, node: Node, kind: str, rule: str, *, anchor: Node | None = None,
            flash: bool = False) -> Cluster:
        cluster = Cluster([node], kind, rule, anchor, flash)
        self.cluster_of[node] = cluster
        self.clusters.append(cluster)
        return cluster

    def try_add(self, cluster: Cluster, node: Node) -> bool:
        """Add a node outside any cluster to `cluster` when the result stays convex and small."""
        if node in self.cluster_of or node in self.copied_into:
            return False
        size = cluster.size() + cost.group_size(node)
        if not cost.fits(size) or not self._convex(set(cluster.members) | {node}):
            return False
        cluster.members.append(node)
        self.cluster_of[node] = cluster
        return True

    def try_merge(self, a: Cluster, b: Cluster) -> bool:
        """Fold cluster `b` into `a` (same rule assumed) when convex and small enough."""
        if a is b:
            return True
        if not cost.fits(a.size() + b.size()) or not self._convex(set(a.members) | set(b.members)):
            return False
        a.members.extend(b.members)
        for node in b.members:
            self.cluster_of[node] = a
        self.clusters.remove(b)
        a.anchor = a.anchor or b.anchor
        return True

    def _convex(self, members: set[Node]) -> bool:
        """No path from a member through a non-member back to a member."""
        index = self.block.index
        last = max(index[m] for m in members)
        stack = [r for m in members for r in self.block.readers(m)
                 if r not in members and index[r] < last]
        seen: set[Node] = set(stack)
        while stack:
            node = stack.pop()
            for r in self.block.readers(node):
                if r in members:
                    return False
                if r not in seen and index[r] < last:
                    seen.add(r)
                    stack.append(r)
        return True

    # -- finishing ----------------------------------------------------------------------------
    def drop_small(self, min_members: int) -> None:
        """Clusters with fewer members are not worth a group: their nodes stay as they are."""
        for cluster in list(self.clusters):
            if len(cluster.members) < min_members:
                self.dissolve(cluster)

    def drop_lone(self) -> None:
        """After `plan_copies`: a cluster left with one op and nothing copied in is no group.

        (Nothing was copied into it, so no copy decision depended on it.)
        """
        for cluster in list(self.clusters):
            if len(cluster.members) == 1 and not cluster.copies and cluster.members[0].op != "fused":
                self.dissolve(cluster)

    def dissolve(self, cluster: Cluster) -> None:
        self.clusters.remove(cluster)
        for node in cluster.members:
            del self.cluster_of[node]

    def units(self, node: Node) -> list[Cluster | Node]:
        """Where `node` will live: its cluster, the clusters it is copied into, or itself."""
        if node in self.cluster_of:
            return [self.cluster_of[node]]
        if node in self.copied_into:
            return list(self.copied_into[node])
        return [node]

    def reader_clusters(self, node: Node) -> list[Cluster] | None:
        """The clusters that read `node`, or None when something outside a cluster reads it."""
        if self.block.escapes(node):
            return None
        found: list[Cluster] = []
        for reader in self.block.readers(node):
            for unit in self.units(reader):
                if not isinstance(unit, Cluster):
                    return None
                if unit not in found:
                    found.append(unit)
        return found

    def plan_copies(self, copyable: Callable[[Node, int], bool]) -> None:
        """Copy producers outside any cluster into the clusters reading them (last to first, so
        chains of producers follow their readers in).

        A producer is copied when every reader is in a cluster, `copyable(node, groups)` allows
        it, the copy would not be an operand of a contraction (which reads each element many
        times, so an arithmetic copy would be recomputed as often; views and sources are free),
        and the producer does not itself depend on one of those clusters (a cycle). A member of
        a cluster is never copied: its group computes it once and writes it out if needed.
        """
        for node in reversed(self.block.nodes):
            if node.regions or node in self.cluster_of:
                continue
            targets = self.reader_clusters(node)
            if not targets or not copyable(node, len(targets)):
                continue
            if not all(cost.fits(t.size() + 1) for t in targets):
                continue
            if not cost.is_free(node) and self._feeds_contraction(node, targets):
                continue
            if self._depends_on(node, targets):
                continue
            self.copied_into[node] = targets
            for cluster in targets:
                cluster.copies.append(node)

    def _feeds_contraction(self, node: Node, targets: list[Cluster]) -> bool:
        """Would a copy of `node` in `targets` be read by a contraction there?"""
        for reader in self.block.readers(node):
            if isinstance(self.units(reader)[0], Cluster) and cost.reads_into_contraction(reader, node):
                return True
        return False

    def _depends_on(self, node: Node, targets: list[Cluster]) -> bool:
        """Does `node` read, through any chain of nodes and clusters, a result of `targets`?"""
        stack = [p for v in set(reads(node)) if (p := self.block.producer(v)) is not None]
        seen: set[Node] = set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            cluster = self.cluster_of.get(current)
            if cluster in targets:
                return True
            # a cluster is one node once fused: it reads what any of its parts reads
            parts = cluster.members + cluster.copies if cluster else [current]
            for part in parts:
                seen.add(part)
                stack.extend(p for v in set(reads(part)) if (p := self.block.producer(v)) is not None)
        return False


def for_each_block(graph: Graph, plan: Callable[[Block], list[Node]]) -> None:
    """Run `plan` on every block, innermost first, replacing each block's nodes by its result.

    Fused bodies are not entered: they are already one kernel. Fusion never crosses a region's
    boundary: a group inside a scan body reads what it needs from outside as inputs.
    """
    graph.nodes = _visit(graph.nodes, graph, plan)


def _visit(nodes: list[Node], owner: Graph | Region, plan: Callable[[Block], list[Node]]) -> list[Node]:
    for node in nodes:
        if node.op == "fused":
            continue
        for region in node.regions:
            region.nodes = _visit(region.nodes, region, plan)
    return plan(Block(nodes, owner))
