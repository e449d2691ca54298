"""Pictures of graphs: DOT through the `graphviz` package, rendered to SVG or PNG by Graphviz `dot`.

Ops are boxes, inputs, outputs and parameters have shapes of their own, edges carry value types;
region-holding nodes (control flow, fused groups) and repeated blocks (`blocks.3.attn`) are clusters.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import graphviz

from archir.errors import ArchirError, BackendError
from archir.ir import Graph, Node, Region, Value
from archir.printer import format_attr
from archir.registry import attr_equal, get_op, has_op

PICTURE_FORMATS = ("dot", "svg", "png")
_MAX_ATTR_TEXT = 28
_PARAM_FILL = "#e0e0e0"


# -- grouping by scope ----------------------------------------------------------------------------
@dataclass(slots=True)
class ScopeTree:
    """DOT ids grouped by dotted scope: `items` sit directly in scope `path`, `children` nest."""

    path: str
    items: list[str] = field(default_factory=list)
    children: dict[str, ScopeTree] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.items) + sum(child.size() for child in self.children.values())


def scope_tree(entries: Iterable[tuple[str | None, str]]) -> ScopeTree:
    """Build the tree from `(scope, item)` pairs, then fold away clusters that would not help.

    A scope holding a single item is folded into its parent, and a scope whose only content is one
    sub-scope is replaced by it, so `blocks.0 > attn > q_proj` shows as the clusters a reader needs.
    """
    root = ScopeTree("")
    for scope, item in entries:
        node = root
        parts = scope.split(".") if scope else []
        for i in range(len(parts)):
            path = ".".join(parts[: i + 1])
            node = node.children.setdefault(parts[i], ScopeTree(path))
        node.items.append(item)
    _fold(root)
    return root


def _fold(tree: ScopeTree) -> None:
    folded: dict[str, ScopeTree] = {}
    for key, child in tree.children.items():
        _fold(child)
        while not child.items and len(child.children) == 1:
            child = next(iter(child.children.values()))
        if child.size() < 2:
            tree.items.extend(_all_items(child))
        else:
            folded[key] = child
    tree.children = folded


def _all_items(tree: ScopeTree) -> list[str]:
    items = list(tree.items)
    for child in tree.children.values():
        items.extend(_all_items(child))
    return items


def has_repeated_blocks(names: Iterable[str | None]) -> bool:
    """True when two names differ only in a numeric component after a common prefix (`blocks.0`,
    `blocks.1`): the shape of a stack of layers, where clusters per block make a picture readable."""
    indices: dict[str, set[str]] = {}
    for name in names:
        parts = name.split(".") if name else []
        for i, part in enumerate(parts):
            if part.isdigit():
                indices.setdefault(".".join(parts[:i]), set()).add(part)
    return any(len(found) > 1 for found in indices.values())


# -- labels ---------------------------------------------------------------------------------------
def _small(text: str, color: str = "#555555") -> str:
    return f'<font point-size="9" color="{color}">{html.escape(text)}</font>'


def _key_attrs(node: Node) -> list[str]:
    """`key=value` for attributes that differ from their default, shortened for a picture."""
    specs = get_op(node.op).attrs if has_op(node.op) else {}
    parts = []
    for key, value in node.attrs.items():
        spec = specs.get(key)
        if spec is not None and not spec.required and attr_equal(value, spec.default):
            continue
        text = f"{key}={format_attr(value)}"
        if len(text) > _MAX_ATTR_TEXT:
            text = text[: _MAX_ATTR_TEXT - 3] + "..."
        parts.append(text)
    return parts


def _node_label(node: Node) -> str:
    lines = [f"<b>{html.escape(node.op)}</b>"]
    if node.name:
        lines.append(_small(node.name))
    lines.extend(_small(text, "#000000") for text in _key_attrs(node))
    return "<" + "<br/>".join(lines) + ">"


def _value_label(title: str, value: Value) -> str:
    return f"<{html.escape(title)}<br/>{_small(str(value.type))}>"


def _cluster_label(node: Node) -> str:
    """`scan @rnn`; a fused group says what kind of kernel it is and which rules made it."""
    label = node.op
    if node.op == "fused":
        label += f" {node.attrs.get('kind')} kernel ({node.attrs.get('rules')})"
    return label + (f" @{node.name}" if node.name else "")


def _edge_label(value: Value) -> str:
    producer = value.producer
    if producer is not None and len(producer.outputs) > 1:
        return f"#{value.index} {value.type}"
    return str(value.type)


# -- the writer -----------------------------------------------------------------------------------
class _DotWriter:
    """Two phases: give every value the DOT id that provides it, then draw; edges go in last, at
    the top level, so clusters hold only the nodes declared inside them."""

    def __init__(self, graph: Graph, clusters: bool) -> None:
        self.graph = graph
        self.clusters = clusters
        self.dot = graphviz.Digraph(name=graph.name)
        self.source: dict[Value, str] = {}
        self.node_ids: dict[Node, str] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        self.cluster_count = 0

    def render(self) -> graphviz.Digraph:
        g = self.graph
        self.dot.attr(label=f"@{g.name}", labelloc="t", rankdir="TB", fontname="Helvetica")
        self.dot.attr("node", fontname="Helvetica", fontsize="10")
        self.dot.attr("edge", fontname="Helvetica", fontsize="8", color="#666666")
        self._assign_ids(g)
        for i, v in enumerate(g.inputs):
            self.dot.node(self.source[v], _value_label(v.name or f"input {i}", v),
                          shape="invhouse", style="filled", fillcolor="#d7ecff")
        self._draw_body(g)
        for i, v in enumerate(g.outputs):
            out_id = f"out{i}"
            self.dot.node(out_id, f"output {i}", shape="house", style="filled", fillcolor="#d9f2d9")
            self._edge(v, out_id)
        for tail, head, attrs in self.edges:
            self.dot.edge(tail, head, **attrs)
        return self.dot

    def _assign_ids(self, g: Graph) -> None:
        for i, v in enumerate(g.inputs):
            self.source[v] = f"in{i}"
        for i, p in enumerate(g.params):
            self.source[p] = f"p{i}"
        for k, node in enumerate(g.walk()):
            node_id = f"n{k}"
            self.node_ids[node] = node_id
            for out in node.outputs:
                self.source[out] = f"{node_id}_res" if node.regions else node_id
            for r, region in enumerate(node.regions):
                for a, arg in enumerate(region.args):
                    self.source[arg] = f"{node_id}_r{r}_a{a}"

    def _draw_body(self, g: Graph) -> None:
        entries: list[tuple[str | None, str]] = []
        for p in g.params:
            entries.append((p.name.rpartition(".")[0] if p.name else None, self.source[p]))
        for node in g.nodes:
            entries.append((node.name, self.node_ids[node]))
        draw = {self.source[p]: p for p in g.params} | {self.node_ids[n]: n for n in g.nodes}
        tree = scope_tree(entries) if self.clusters else ScopeTree("", [item for _, item in entries])
        self._draw_tree(self.dot, tree, draw)

    def _draw_tree(self, target: graphviz.Digraph, tree: ScopeTree,
                   draw: dict[str, Node | Value]) -> None:
        for item in tree.items:
            thing = draw[item]
            if isinstance(thing, Node):
                self._draw_node(target, thing)
            else:
                self._draw_param(target, thing)
        for child in tree.children.values():
            with target.subgraph(name=self._cluster_name()) as sub:
                sub.attr(label=child.path, style="rounded", color="#9a9a9a", fontsize="11")
                self._draw_tree(sub, child, draw)

    def _cluster_name(self) -> str:
        self.cluster_count += 1
        return f"cluster_{self.cluster_count}"

    def _draw_param(self, target: graphviz.Digraph, p: Value) -> None:
        target.node(self.source[p], _value_label(p.name or "param", p), shape="box",
                    style="filled", fillcolor=_PARAM_FILL, color="#9a9a9a")

    def _draw_node(self, target: graphviz.Digraph, node: Node) -> None:
        node_id = self.node_ids[node]
        for v in node.inputs:
            self._edge(v, node_id)
        if not node.regions:
            target.node(node_id, _node_label(node), shape="box", style="rounded")
            return
        with target.subgraph(name=self._cluster_name()) as sub:
            sub.attr(label=_cluster_label(node), style="dashed", color="#4a6fa5")
            sub.node(node_id, _node_label(node), shape="box", style="bold")
            for r, region in enumerate(node.regions):
                self._draw_region(sub, node, r, region)
            sub.node(f"{node_id}_res", f"{node.op} results", shape="box", style="rounded,dotted")

    def _draw_region(self, target: graphviz.Digraph, node: Node, r: int, region: Region) -> None:
        node_id = self.node_ids[node]
        yield_id = f"{node_id}_r{r}_yield"
        with target.subgraph(name=self._cluster_name()) as sub:
            sub.attr(label=region.name, style="rounded", color="#7f9cc7")
            for a, arg in enumerate(region.args):
                sub.node(self.source[arg], _value_label(arg.name or f"arg {a}", arg),
                         shape="ellipse", fontsize="9")
                self.edges.append((node_id, self.source[arg], {"style": "dashed"}))
            for inner in region.nodes:
                self._draw_node(sub, inner)
            sub.node(yield_id, "yield", shape="box", style="rounded", fontsize="9")
        for v in region.results:
            self._edge(v, yield_id)
        self.edges.append((yield_id, f"{node_id}_res", {"style": "dashed"}))

    def _edge(self, value: Value, head: str) -> None:
        tail = self.source.get(value)
        if tail is None:
            # An ill-formed graph (a value nobody defines) still draws, with the break visible.
            tail = f"undefined_{id(value)}"
            self.dot.node(tail, f"undefined %{value.name or '?'}", shape="octagon", color="red")
        self.edges.append((tail, head, {"label": _edge_label(value)}))


def to_dot(graph: Graph, *, clusters: bool | None = None) -> graphviz.Digraph:
    """The DOT picture of `graph`. `clusters` groups top-level nodes and parameters by scope;
    by default it is on when the graph has repeated blocks."""
    if clusters is None:
        names: list[str | None] = [n.name for n in graph.nodes]
        clusters = has_repeated_blocks(names + [p.name for p in graph.params])
    return _DotWriter(graph, clusters).render()


# -- files ----------------------------------------------------------------------------------------
def write_picture(graph: Graph, path: str | Path, fmt: str,
                  *, clusters: bool | None = None) -> Path:
    """Write `graph` as DOT text, SVG or PNG at `path`; returns the path written."""
    if fmt not in PICTURE_FORMATS:
        raise ArchirError(f"unknown picture format '{fmt}'", hint=f"use one of {', '.join(PICTURE_FORMATS)}")
    target = Path(path)
    digraph = to_dot(graph, clusters=clusters)
    if fmt == "dot":
        _write(target, digraph.source.encode())
        return target
    if shutil.which("dot") is None:
        dot_path = target.with_suffix(".dot")
        _write(dot_path, digraph.source.encode())
        raise BackendError(
            f"cannot render {fmt}: the Graphviz `dot` program is not installed; "
            f"the DOT file is at {dot_path}",
            hint="apt-get install -y graphviz (Debian/Ubuntu) to get pictures, "
                 "or render the .dot file on another machine",
        )
    try:
        data = digraph.pipe(format=fmt)
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as err:
        raise BackendError(f"Graphviz `dot` failed to render {fmt}: {err}") from None
    _write(target, data)
    return target


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise ArchirError(f"cannot write {path}: {err.strerror}") from None

