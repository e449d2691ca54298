"""What a memory plan says, and the kernel schedule it is made over, for passes and backends alike.

The `plan-memory` pass (archir.passes.plan_memory) computes a `MemoryPlan` and leaves it in
`graph.annotations["memory_plan"]`; backends and `archir.report` read it from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from archir.errors import ArchirError
from archir.ir import Graph, Node, Region, Value
from archir.symbolic import Dim, evaluate, free_symbols, mul
from archir.types import TensorType

ALIGNMENT = 64
PLAN_KEY = "memory_plan"

# Layout ops that backends implement as a new view (shape and strides) of their operand's buffer:
# they run no kernel and own no storage. The strided ones leave a non-contiguous view behind.
VIEW_OPS = frozenset({"reshape", "squeeze", "unsqueeze", "transpose", "expand", "slice", "split"})
STRIDED_VIEW_OPS = frozenset({"transpose", "expand", "slice", "split"})


class MemoryPlanError(ArchirError):
    """A graph whose buffers cannot be sized, such as one with unbound symbolic dims."""


@dataclass(slots=True)
class Schedule:
    """The top-level nodes in order; each is a kernel (fused group = one) or a free view.

    `root` maps each view's result to the value whose storage it reads (inputs, params and
    kernel results are their own roots).
    """

    nodes: list[Node]
    is_kernel: list[bool]
    root: dict[Value, Value] = field(default_factory=dict)

    def kernels(self) -> Iterator[Node]:
        for node, kernel in zip(self.nodes, self.is_kernel, strict=True):
            if kernel:
                yield node

    def root_of(self, value: Value) -> Value:
        return self.root.get(value, value)


def schedule_of(graph: Graph) -> Schedule:
    """Classify the top-level nodes. A reshape of a strided view must copy, so it is a kernel."""
    sched = Schedule(list(graph.nodes), [])
    strided: set[Value] = set()
    for node in graph.nodes:
        source = node.inputs[0] if node.inputs else None
        view = node.op in VIEW_OPS and source is not None
        if node.op == "reshape" and source in strided:
            view = False
        sched.is_kernel.append(not view)
        if not view or source is None:
            continue
        for out in node.outputs:
            sched.root[out] = sched.root_of(source)
            if node.op in STRIDED_VIEW_OPS or source in strided:
                strided.add(out)
    return sched


def external_reads(node: Node) -> list[Value]:
    """The values a node reads from outside itself: its inputs and what its regions capture."""
    regions = _regions_within(node)
    inside: set[Value] = set()
    for region in regions:
        inside.update(region.args)
        for inner in region.nodes:
            inside.update(inner.outputs)
    candidates = list(node.inputs)
    for region in regions:
        for inner in region.nodes:
            candidates.extend(inner.inputs)
        candidates.extend(region.results)
    reads: list[Value] = []
    seen: set[Value] = set()
    for v in candidates:
        if v not in inside and v not in seen:
            seen.add(v)
            reads.append(v)
    return reads


def _regions_within(node: Node) -> list[Region]:
    found: list[Region] = []
    for region in node.regions:
        found.append(region)
        for inner in region.nodes:
            found.extend(_regions_within(inner))
    return found


def byte_size(value: Value) -> Dim:
    """Bytes of a tensor value as a symbolic expression (0 for non-tensor values)."""
    t = value.type
    if not isinstance(t, TensorType):
        return 0
    return mul(t.numel(), t.dtype.itemsize)


def concrete_bytes(size: Dim, bindings: Mapping[str, int], what: str) -> int:
    missing = sorted(free_symbols(size) - set(bindings))
    if missing:
        raise MemoryPlanError(f"the size of {what} ({size} bytes) depends on unbound symbols "
                              f"{', '.join(missing)}",
                              hint=f"give sizes, e.g. plan-memory{{{','.join(f'{s}=2' for s in missing)}}}")
    return evaluate(size, bindings)


def aligned(size: int, alignment: int = ALIGNMENT) -> int:
    return -(-size // alignment) * alignment


@dataclass(frozen=True, slots=True)
class BufferPlan:
    """One intermediate's place in the arena. `first`/`last` index `Schedule.nodes`: the node
    that writes it and the last node that reads it or a view of it. `inplace_of` is the dying
    input of an elementwise kernel whose storage this value overwrites (same offset)."""

    value: Value
    offset: int
    size: int
    size_expr: Dim
    first: int
    last: int
    inplace_of: Value | None = None

    @property
    def end(self) -> int:
        return self.offset + aligned(self.size)

    def live_at(self, step: int) -> bool:
        return self.first <= step <= self.last


@dataclass(slots=True)
class MemoryPlan:
    """Offsets in one arena for every intermediate (not inputs, params or outputs), with reuse.

    `naive_bytes` is what one buffer per intermediate would take (each aligned);
    `peak_live_bytes` the most bytes live at one step, a lower bound for any placement.
    """

    bindings: dict[str, int]
    buffers: list[BufferPlan]
    arena_bytes: int
    naive_bytes: int
    peak_live_bytes: int
    schedule: Schedule
    strategy: str = "greedy by size, best fit"
    alignment: int = ALIGNMENT

    def buffer_of(self, value: Value) -> BufferPlan | None:
        """The buffer holding `value` (a view's is its root's); None outside the arena."""
        root = self.schedule.root_of(value)
        for buf in self.buffers:
            if buf.value is root:
                return buf
        return None

    def inplace(self) -> list[BufferPlan]:
        return [b for b in self.buffers if b.inplace_of is not None]

    def largest(self) -> BufferPlan | None:
        return max(self.buffers, key=lambda b: b.size, default=None)


def plan_of(graph: Graph) -> MemoryPlan | None:
    plan = graph.annotations.get(PLAN_KEY)
    return plan if isinstance(plan, MemoryPlan) else None
