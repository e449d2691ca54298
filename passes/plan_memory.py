"""plan-memory: liveness of every intermediate over the kernel schedule, and its place in one arena.

Storages are placed greedily by size (largest first), each in the best-fitting gap left by the
already placed storages it is live with, 64-byte aligned. An elementwise kernel whose input dies
there writes its result over that input. The plan goes to `graph.annotations["memory_plan"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from archir.errors import PassError
from archir.ir import Graph, Node, Value
from archir.memory_plan import (
    PLAN_KEY,
    BufferPlan,
    MemoryPlan,
    MemoryPlanError,
    Schedule,
    aligned,
    byte_size,
    concrete_bytes,
    external_reads,
    schedule_of,
)
from archir.pass_manager import register_pass
from archir.registry import Trait, get_op
from archir.types import TensorType


@register_pass("plan-memory")
def plan_memory_pass(graph: Graph, /, **sizes: str | int) -> Graph:
    """Place every intermediate in one arena with reuse; symbolic dims need sizes: plan-memory{B=2}."""
    graph.annotations[PLAN_KEY] = plan_memory(graph, _parse_sizes(sizes))
    return graph


def _parse_sizes(sizes: Mapping[str, str | int]) -> dict[str, int]:
    bindings: dict[str, int] = {}
    for name, text in sizes.items():
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise PassError(f"plan-memory: size {name}={text} is not a non-negative integer",
                            hint="write sizes as plan-memory{B=2,T=128}")
        bindings[name] = value
    return bindings


def plan_memory(graph: Graph, bindings: Mapping[str, int] | None = None) -> MemoryPlan:
    """Liveness, in-place reuse and arena offsets for `graph`'s intermediates under `bindings`.

    Every symbol an intermediate's size depends on must be bound (there is no default size).
    Values inside regions (fused groups, scan bodies) are the kernel's own business: not planned.
    """
    bound = dict(bindings or {})
    sched = schedule_of(graph)
    live = liveness(graph, sched)
    sizes = {v: _size(v, bound) for v in live}
    source = inplace_sources(sched, live)
    storages = _storages(live, sizes, source)
    offsets = place(storages)
    buffers: list[BufferPlan] = []
    for v, interval in live.items():
        home = _home(v, source)
        buffers.append(BufferPlan(v, offsets[home], sizes[v], byte_size(v), interval.first,
                                  interval.last, source.get(v)))
    naive = sum(aligned(size) for size in sizes.values())
    arena = max((offsets[s.value] + s.size for s in storages), default=0)
    return MemoryPlan(bound, buffers, arena, naive, peak_live_bytes(storages), sched)


def _size(v: Value, bindings: Mapping[str, int]) -> int:
    node = v.producer
    try:
        return concrete_bytes(byte_size(v), bindings, f"%{v.name}: {v.type}" if v.name else str(v.type))
    except MemoryPlanError as err:
        raise err.with_context(loc=node.loc if node else None,
                               node=node.describe() if node else None) from None


# -- liveness -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Interval:
    """Steps (indices into the schedule) from the writing kernel to the last reader, inclusive."""

    first: int
    last: int

    def overlaps(self, other: Interval) -> bool:
        return self.first <= other.last and other.first <= self.last


def liveness(graph: Graph, sched: Schedule) -> dict[Value, Interval]:
    """Every kernel result that lives in the arena, with its live interval.

    A read of a view counts as a read of the storage it views. Graph outputs (and storages that a
    returned view shows) live in the caller's output buffers, inputs and params in the caller's.
    """
    returned = {sched.root_of(v) for v in graph.outputs}
    live: dict[Value, Interval] = {}
    for step, node in enumerate(sched.nodes):
        for v in external_reads(node):
            root = sched.root_of(v)
            if root in live:
                live[root].last = step
        if not sched.is_kernel[step]:
            continue
        for out in node.outputs:
            if isinstance(out.type, TensorType) and out not in returned:
                live[out] = Interval(step, step)
    return live


# -- in-place -------------------------------------------------------------------------------------
def inplace_sources(sched: Schedule, live: Mapping[Value, Interval]) -> dict[Value, Value]:
    """result -> the input whose storage it overwrites.

    Legal when the kernel is elementwise (so element i is read before element i is written), the
    input is a whole arena storage of the result's exact type that dies at this kernel, and the
    kernel reads that storage through no other value (a transposed view of it, say).
    """
    source: dict[Value, Value] = {}
    taken: set[Value] = set()
    for step, node in enumerate(sched.nodes):
        if not sched.is_kernel[step] or not _is_elementwise(node):
            continue
        reads = [sched.root_of(v) for v in external_reads(node)]
        for out in node.outputs:
            if out not in live:
                continue
            for x in node.inputs:
                if x in taken or x not in live or live[x].last != step or x.type != out.type:
                    continue
                if sum(1 for r in reads if r is x) != 1:  # also read through a view of it
                    continue
                source[out] = x
                taken.add(x)
                break
    return source


def _is_elementwise(node: Node) -> bool:
    """An elementwise op, or a fused group made of elementwise ops only."""
    if node.regions:
        inner = [n for region in node.regions for n in region.walk()]
        return node.op == "fused" and bool(inner) and all(_is_elementwise(n) for n in inner)
    return get_op(node.op).has(Trait.ELEMENTWISE)


# -- placement ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Storage:
    """A run of values sharing one place (a value and the in-place results chained on it)."""

    value: Value
    size: int
    interval: Interval


def _home(v: Value, source: Mapping[Value, Value]) -> Value:
    while v in source:
        v = source[v]
    return v


def _storages(live: Mapping[Value, Interval], sizes: Mapping[Value, int],
              source: Mapping[Value, Value]) -> list[Storage]:
    by_home: dict[Value, Storage] = {}
    for v, interval in live.items():  # schedule order: a chain's head comes first
        home = _home(v, source)
        if home not in by_home:
            by_home[home] = Storage(home, aligned(sizes[v]), Interval(interval.first, interval.last))
        else:
            store = by_home[home]
            store.size = max(store.size, aligned(sizes[v]))
            store.interval.last = max(store.interval.last, interval.last)
    return list(by_home.values())


def place(storages: list[Storage]) -> dict[Value, int]:
    """Offsets: largest storage first, each in the smallest gap that fits among the storages
    already placed that are live at the same time, else above the highest of them."""
    order = sorted(range(len(storages)), key=lambda k: (-storages[k].size, storages[k].interval.first, k))
    offsets: dict[Value, int] = {}
    placed: list[Storage] = []
    for k in order:
        store = storages[k]
        busy = sorted((offsets[p.value], offsets[p.value] + p.size) for p in placed
                      if p.interval.overlaps(store.interval) and p.size)
        offsets[store.value] = _best_fit(busy, store.size)
        placed.append(store)
    return offsets


def _best_fit(busy: list[tuple[int, int]], size: int) -> int:
    best: tuple[int, int] | None = None  # (gap, offset)
    cursor = 0
    for lo, hi in busy:
        gap = lo - cursor
        if gap >= size and (best is None or gap < best[0]):
            best = (gap, cursor)
        cursor = max(cursor, hi)
    return cursor if best is None else best[1]


def peak_live_bytes(storages: list[Storage]) -> int:
    """The most aligned bytes live at one step: no placement can use a smaller arena."""
    steps = {s.interval.first for s in storages}
    return max((sum(s.size for s in storages if s.interval.first <= t <= s.interval.last)
                for t in steps), default=0)
