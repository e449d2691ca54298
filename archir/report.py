"""Figures that show what a pass pipeline did to a graph: ops and kernels, bytes moved, arena vs
naive sum of intermediates, fusion rules fired, the largest buffers; `archir dump --report`.

Every figure is estimated from the IR alone, under given sizes for the symbolic dims.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from archir import zoo
from archir.builder import GraphBuilder
from archir.errors import ArchirError
from archir.ir import Graph, Node, Value, copy_graph
from archir.memory_plan import (
    VIEW_OPS,
    MemoryPlan,
    Schedule,
    byte_size,
    concrete_bytes,
    external_reads,
    plan_of,
)
from archir.pass_manager import get_pass, run_pipeline
from archir.registry import Trait, get_op
from archir.symbolic import substitute
from archir.types import TensorType


@dataclass(frozen=True, slots=True)
class Buffer:
    """One tensor the report points at: its type, bytes under the sizes, and who makes it."""

    type: str
    bytes: int
    made_by: str

    def __str__(self) -> str:
        return f"{self.type} {format_bytes(self.bytes)} ({self.made_by})"


@dataclass(frozen=True, slots=True)
class GraphFigures:
    """The report's figures for one graph.

    `kernels`: top-level nodes that are not free layout views (a fused group is one kernel).
    `bytes_moved`: every kernel reads each value it reads once and writes its results once.
    `composite_temps`: per composite op left unfused, the largest temporary its decomposition
    makes (what a backend lowering it op by op materialises, e.g. attention's score matrix).
    A fused group keeps its body in registers and tiles, except a non-flash attention group,
    which stores its scores: its largest body value is listed under "fused attention".
    """

    nodes: int
    ops: dict[str, int]
    kernels: int
    bytes_moved: int
    arena_bytes: int
    naive_bytes: int
    peak_live_bytes: int
    inplace: int
    largest: Buffer | None
    composite_temps: dict[str, Buffer]
    rules: dict[str, int]


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    bindings: dict[str, int]
    pipeline: str
    before: GraphFigures
    after: GraphFigures


def graph_figures(graph: Graph, bindings: Mapping[str, int]) -> GraphFigures:
    """Figures for `graph`; plans its memory (plan-memory) unless a plan for `bindings` is there."""
    plan = _plan(graph, dict(bindings))
    sched = plan.schedule
    largest = plan.largest()
    return GraphFigures(
        nodes=len(graph.nodes),
        ops=dict(sorted(Counter(n.op for n in graph.nodes).items())),
        kernels=sum(sched.is_kernel),
        bytes_moved=bytes_moved(sched, bindings),
        arena_bytes=plan.arena_bytes,
        naive_bytes=plan.naive_bytes,
        peak_live_bytes=plan.peak_live_bytes,
        inplace=len(plan.inplace()),
        largest=None if largest is None else _buffer(largest.value, largest.size, bindings),
        composite_temps=composite_temps(sched, bindings),
        rules=rules_fired(graph),
    )


def _plan(graph: Graph, bindings: dict[str, int]) -> MemoryPlan:
    plan = plan_of(graph)
    if plan is None or plan.bindings != bindings:
        # Through the pass registry: the core does not import archir.passes.
        get_pass("plan-memory").run(graph, **bindings)
        plan = plan_of(graph)
        assert plan is not None, "plan-memory left no plan"
    return plan


def _buffer(value: Value, size: int, bindings: Mapping[str, int], inside: Node | None = None) -> Buffer:
    """`value` described with its shape under `bindings`; `inside` is the composite it is a temp of."""
    node = value.producer
    made_by = "?" if node is None else node.op
    where = inside or node
    if inside is not None:
        made_by += f" in {inside.op}"
    if where is not None and where.name:
        made_by += f" @{where.name}"
    return Buffer(_concrete_type(value, bindings), size, made_by)


def _concrete_type(value: Value, bindings: Mapping[str, int]) -> str:
    t = value.type
    if not isinstance(t, TensorType):
        return str(t)
    return str(t.with_shape(substitute(d, dict(bindings)) for d in t.shape))


def bytes_moved(sched: Schedule, bindings: Mapping[str, int]) -> int:
    """Sum over kernels of the bytes they read and write; a broadcast view reads its source."""
    total = 0
    for node in sched.kernels():
        for v in external_reads(node):
            source = _unbroadcast(v)
            total += concrete_bytes(byte_size(source), bindings, f"%{source.name or '?'}")
        for out in node.outputs:
            total += concrete_bytes(byte_size(out), bindings, node.describe())
    return total


def _unbroadcast(v: Value) -> Value:
    while v.producer is not None and v.producer.op == "expand":
        v = v.producer.inputs[0]
    return v


def composite_temps(sched: Schedule, bindings: Mapping[str, int]) -> dict[str, Buffer]:
    """Per composite op kind among the kernels, the largest temporary of its decomposition."""
    largest: dict[str, Buffer] = {}
    for node in sched.kernels():
        op = get_op(node.op)
        if node.op == "fused" and node.attrs.get("kind") == "attention" and not node.attrs.get("flash"):
            key, temps = "fused attention", _body_temps(node)
        elif op.has(Trait.COMPOSITE) and op.decompose is not None:
            key, temps = node.op, _decomposition_temps(node)
        else:
            continue
        for temp in temps:
            size = concrete_bytes(byte_size(temp), bindings, f"a temporary of {node.describe()}")
            best = largest.get(key)
            if best is None or size > best.bytes:
                largest[key] = _buffer(temp, size, bindings, inside=node)
    return dict(sorted(largest.items()))


def _body_temps(node: Node) -> list[Value]:
    temps: list[Value] = []
    for region in node.regions:
        for inner in region.nodes:
            if inner.op not in VIEW_OPS:
                temps.extend(v for v in inner.outputs if v not in region.results)
    return temps


def _decomposition_temps(node: Node) -> list[Value]:
    """Values the op's decomposition computes on the way to its results (free views left out)."""
    op = get_op(node.op)
    assert op.decompose is not None
    result = op.decompose(GraphBuilder(f"{node.op}_decomposition"), *op.pad_operands(node.inputs),
                          **node.attrs)
    results = [result] if isinstance(result, Value) else list(result)
    outside = set(node.inputs)
    temps: list[Value] = []
    seen: set[int] = set()
    stack = [v for v in results if v not in outside]
    while stack:
        inner = stack.pop().producer
        if inner is None or id(inner) in seen:
            continue
        seen.add(id(inner))
        if inner.op not in VIEW_OPS:
            temps.extend(v for v in inner.outputs if v not in results)
        stack.extend(v for v in inner.inputs if v not in outside)
    return temps


def rules_fired(graph: Graph) -> dict[str, int]:
    """How many fused groups (at any depth) each fusion rule made, from their `rules` attr."""
    fired: Counter[str] = Counter()
    for node in graph.walk():
        if node.op != "fused":
            continue
        rules = node.attrs.get("rules")
        names = rules.split(",") if isinstance(rules, str) else list(rules or ())
        fired.update(str(name).strip() for name in names if str(name).strip())
    return dict(sorted(fired.items()))


# -- whole reports --------------------------------------------------------------------------------
def pipeline_report(graph: Graph, pipeline: str, bindings: Mapping[str, int]) -> Report:
    """Figures of `graph` as given and after `pipeline` (run on a copy)."""
    after = run_pipeline(copy_graph(graph), pipeline)
    return Report(graph.name, dict(bindings), pipeline, graph_figures(graph, bindings),
                  graph_figures(after, bindings))


def parse_sizes(text: str) -> dict[str, int]:
    """`"B=1,T=8"` -> {"B": 1, "T": 8}."""
    sizes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if not name.strip().isidentifier() or not value.strip().isdigit():
            raise ArchirError(f"bad size '{item}'", hint="write sizes as B=1,T=8")
        sizes[name.strip()] = int(value)
    return sizes


def report_sizes(graph: Graph, model: str, given: str | None) -> dict[str, int]:
    """The sizes to report under: `given`, else the zoo's first sizes when `model` is a zoo
    example (examples/NAME.py:...), else none; every symbol of the inputs must end up bound."""
    if given is not None:
        sizes = parse_sizes(given)
    else:
        sizes = {}
        file = Path(model.rpartition(":")[0] or model).resolve()
        for entry, path in zoo.entries():
            if path.resolve() == file:
                sizes = dict(entry.sizes[0])
    missing = [s for s in graph.symbols() if s not in sizes]
    if missing:
        raise ArchirError(f"@{graph.name} has symbolic dims {', '.join(missing)}: the report needs sizes",
                          hint=f"add --sizes {','.join(f'{s}=2' for s in missing)}")
    return sizes


def format_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} x{n}" for name, n in counts.items()) or "none"


def format_report(report: Report) -> str:
    """The figures as a plain-text table, then the buffers, op counts and rules as lines."""
    sizes = ", ".join(f"{k}={v}" for k, v in report.bindings.items()) or "static shapes"
    b, a = report.before, report.after
    rows: list[tuple[str, str, str]] = [
        ("", "before", "after"),
        ("nodes", str(b.nodes), str(a.nodes)),
        ("kernels", str(b.kernels), str(a.kernels)),
        ("bytes moved", format_bytes(b.bytes_moved), format_bytes(a.bytes_moved)),
        ("arena peak", format_bytes(b.arena_bytes), format_bytes(a.arena_bytes)),
        ("naive sum of intermediates", format_bytes(b.naive_bytes), format_bytes(a.naive_bytes)),
        ("most bytes live at once", format_bytes(b.peak_live_bytes), format_bytes(a.peak_live_bytes)),
        ("in-place results", str(b.inplace), str(a.inplace)),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"report for @{report.name} ({sizes}), pipeline \"{report.pipeline}\""]
    for name, before, after in rows:
        lines.append(f"  {name:<{width[0]}}  {before:>{width[1]}}  {after:>{width[2]}}")
    lines.append(f"largest intermediate before: {b.largest or 'none'}")
    lines.append(f"largest intermediate after:  {a.largest or 'none'}")
    for op in sorted(set(b.composite_temps) | set(a.composite_temps)):
        lines.append(f"largest temp inside {op}: before {b.composite_temps.get(op, 'none')}; "
                     f"after {a.composite_temps.get(op, 'none')}")
    lines.append(f"ops before: {_counts(b.ops)}")
    lines.append(f"ops after: {_counts(a.ops)}")
    lines.append(f"fusion rules fired: {_counts(a.rules)}")
    return "\n".join(lines) + "\n"
