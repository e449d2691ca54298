"""Lowering of a graph to the loop IR: values become strided views of buffers, nodes become loops.

Layout ops (reshape, transpose, slice, ...) only make new views; every other op writes a fresh
contiguous buffer (a graph output buffer when its value is returned, else an arena temporary).
Rules per op live in lower_*.py and register themselves in `RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archir.backends.llvm.loops import (
    Buffer,
    Const,
    Expr,
    Kernel,
    Load,
    Loop,
    Program,
    Stmt,
    Store,
    Var,
    dim_expr,
    iadd,
    imul,
)

from archir.builder import GraphBuilder
from archir.errors import BackendError
from archir.ir import Graph, Node, Value, users
from archir.registry import get_op
from archir.symbolic import Dim, mul, product
from archir.types import DType, TensorType

if TYPE_CHECKING:
    from archir.backends.llvm.lower_pieces import Pieces

Rule = Callable[["Lowerer", Node], None]
RULES: dict[str, Rule] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return register


def compute_dtype(dtype: DType) -> DType:
    """16-bit floats are computed in f32, as the interpreter does."""
    return DType.f32 if dtype in (DType.f16, DType.bf16) else dtype


def row_major(shape: Sequence[Dim]) -> tuple[Dim, ...]:
    strides: list[Dim] = []
    step: Dim = 1
    for d in reversed(shape):
        strides.append(step)
        step = mul(step, d)
    return tuple(reversed(strides))


@dataclass(frozen=True, slots=True)
class View:
    """Elements of `buffer` at offset + sum(index[i] * strides[i]) for index in `shape`."""

    buffer: Buffer
    offset: Expr
    shape: tuple[Dim, ...]
    strides: tuple[Dim, ...]

    @property
    def dtype(self) -> DType:
        return self.buffer.dtype

    @property
    def rank(self) -> int:
        return len(self.shape)

    def index(self, idx: Sequence[Expr]) -> Expr:
        total = self.offset
        for i, s in zip(idx, self.strides, strict=True):
            total = iadd(total, imul(i, dim_expr(s)))
        return total

    def load(self, idx: Sequence[Expr]) -> Load:
        return Load(self.buffer, self.index(idx), compute_dtype(self.dtype))

    def store(self, idx: Sequence[Expr], value: Expr) -> Store:
        return Store(self.buffer, self.index(idx), value)

    def is_contiguous(self) -> bool:
        want = row_major(self.shape)
        return all(d == 1 or s == w for d, s, w in zip(self.shape, self.strides, want, strict=True))

    def with_layout(self, shape: Sequence[Dim], strides: Sequence[Dim], offset: Expr | None = None) -> View:
        return View(self.buffer, self.offset if offset is None else offset, tuple(shape), tuple(strides))


def contiguous_view(buffer: Buffer, shape: Sequence[Dim]) -> View:
    return View(buffer, Const(0), tuple(shape), row_major(shape))


class Lowerer:
    """State of one graph's lowering: views of values, buffers, the statement block being filled."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.env: dict[Value, View] = {}
        self.temps: list[Buffer] = []
        self.errors: list[str] = []
        self._blocks: list[list[Stmt]] = [[]]
        self._counter = 0
        self._claimed: dict[Value, View] = {}  # graph outputs written in place by their producer
        # Concat results read only as attention keys / values: never written, kept as their pieces
        # (lower_pieces.Pieces); `readers` is who reads each value (nodes at any depth).
        self.pieces: dict[Value, Pieces] = {}
        self.readers: dict[Value, list[Node]] = users(graph)

    # -- names and blocks ------------------------------------------------------------------------
    def fresh(self, prefix: str, dtype: DType = DType.i64, kind: str = "loop") -> Var:
        self._counter += 1
        return Var(f"{prefix}{self._counter}", dtype, kind)  # type: ignore[arg-type]

    def emit(self, stmt: Stmt) -> None:
        self._blocks[-1].append(stmt)

    @contextmanager
    def block(self) -> Iterator[list[Stmt]]:
        """Statements emitted inside go to the returned list instead of the current block."""
        stmts: list[Stmt] = []
        self._blocks.append(stmts)
        try:
            yield stmts
        finally:
            self._blocks.pop()

    @contextmanager
    def loop(self, stop: Expr | Dim, start: Expr | int = 0, step: int = 1) -> Iterator[Var]:
        var = self.fresh("i")
        stop_e = stop if isinstance(stop, Expr) else dim_expr(stop)
        start_e = start if isinstance(start, Expr) else Const(start)
        with self.block() as body:
            yield var
        self.emit(Loop(var, start_e, stop_e, body, step))

    @contextmanager
    def loops(self, shape: Sequence[Dim]) -> Iterator[list[Expr]]:
        """A loop nest over `shape`, outermost first; yields the index variables."""
        with self._nest(list(shape), []) as idx:
            yield idx

    @contextmanager
    def parallel_loops(self, shape: Sequence[Dim], cost: int = 1) -> Iterator[list[Expr]]:
        """`loops(shape)` whose outermost axis of extent other than 1 may run on the thread pool
        (the body must not fail or read enclosing locals other than loop indices); one iteration's
        work is `cost` x the elements of the axes inside it."""
        with self.loops(shape) as idx:
            yield idx
        loop = self._blocks[-1][-1]
        for k, d in enumerate(shape):
            assert isinstance(loop, Loop)
            if d != 1:
                loop.parallel = imul(Const(cost), dim_expr(product(list(shape[k + 1:]))))
                return
            inner = loop.body[-1] if loop.body else None
            if not isinstance(inner, Loop):
                return
            loop = inner

    @contextmanager
    def _nest(self, shape: list[Dim], idx: list[Expr]) -> Iterator[list[Expr]]:
        if not shape:
            yield idx
            return
        with self.loop(shape[0]) as var, self._nest(shape[1:], [*idx, var]) as inner:
            yield inner

    def fail(self, message: str, node: Node) -> int:
        self.errors.append(f"{message}\n  in: {node.describe()}")
        return len(self.errors)

    # -- buffers ---------------------------------------------------------------------------------
    def temp(self, dtype: DType, shape: Sequence[Dim]) -> View:
        buffer = Buffer(f"t{len(self.temps)}", dtype, product(list(shape)), "temp", len(self.temps))
        self.temps.append(buffer)
        return contiguous_view(buffer, shape)

    # -- claims: a place chosen in advance for a value (a graph output's buffer, a scan carry's
    # next slot); the value's producer takes it and writes there instead of into a temporary.
    def claim(self, value: Value, target: View) -> None:
        """Ask `value`'s producer to write it into `target` (the first claim of a value stands)."""
        self._claimed.setdefault(value, target)

    def is_claimed(self, value: Value) -> bool:
        return value in self._claimed

    def take_claim(self, value: Value) -> View | None:
        """The view claimed for `value` (its producer now owes it a write there), or None."""
        return self._claimed.pop(value, None)

    def result(self, value: Value) -> View:
        """A fresh contiguous view to write `value` into: its output buffer when it is returned."""
        t = value.tensor_type
        claimed = self.take_claim(value)
        if claimed is not None:
            self.env[value] = claimed
            return claimed
        view = self.temp(t.dtype, t.shape)
        self.env[value] = view
        return view

    def view(self, value: Value) -> View:
        try:
            return self.env[value]
        except KeyError:
            name = value.name or "?"
            raise BackendError(f"llvm backend: value %{name} used before it is lowered") from None

    def bind(self, value: Value, view: View) -> None:
        self.env[value] = view

    def copy(self, src: View, dst: View) -> None:
        with self.loops(dst.shape) as idx:
            self.emit(dst.store(idx, src.load(idx)))

    def materialize(self, view: View) -> View:
        if view.is_contiguous():
            return view
        out = self.temp(view.dtype, view.shape)
        self.copy(view, out)
        return out

    # -- nodes -----------------------------------------------------------------------------------
    def lower_nodes(self, nodes: Sequence[Node]) -> None:
        for node in nodes:
            if len(self._blocks) > 1:
                self.lower_node(node)
                continue
            with self.block() as body:
                self.lower_node(node)
            if body:
                self.emit(Kernel(f"k{len(self._blocks[0])}_{node.op}", body))

    def lower_node(self, node: Node) -> None:
        fn = RULES.get(node.op)
        if fn is not None:
            fn(self, node)
            return
        op = get_op(node.op)
        if op.decompose is None:
            raise BackendError(f"llvm backend cannot lower op '{node.op}'", node=node.describe(),
                               hint="use another backend (torch, interp) for this graph")
        self.lower_decomposition(node)

    def lower_decomposition(self, node: Node) -> None:
        op = get_op(node.op)
        b = GraphBuilder(f"{node.op}_decomposition")
        inputs = op.pad_operands(list(node.inputs))
        result = op.decompose(b, *inputs, **node.attrs)
        results = [result] if isinstance(result, Value) else list(result)
        self.lower_nodes(b._blocks[0])
        for out, value in zip(node.outputs, results, strict=True):
            claimed = self.take_claim(out)
            if claimed is not None:
                self.copy(self.view(value), claimed)
                self.env[out] = claimed
            else:
                self.env[out] = self.view(value)


def lower_graph(graph: Graph) -> Program:
    """The whole graph as one loop-IR program."""
    from archir.backends.llvm import (  # noqa: F401  # noqa: F401
        lower_attention,
        lower_control,
        lower_elementwise,
        lower_fused,
        lower_index,
        lower_layout,
        lower_linalg,
        lower_reduce,
    )

    lw = Lowerer(graph)
    inputs = [_argument(lw, v, "input", i) for i, v in enumerate(graph.inputs)]
    params = [_argument(lw, v, "param", i) for i, v in enumerate(graph.params)]
    outputs = []
    for i, v in enumerate(graph.outputs):
        t = _tensor(v)
        buffer = Buffer(f"out{i}", t.dtype, t.numel(), "output", i)
        outputs.append(buffer)
        if v.kind == "result":
            lw.claim(v, contiguous_view(buffer, t.shape))
    lw.lower_nodes(graph.nodes)
    with lw.block() as copies:
        for i, (v, buffer) in enumerate(zip(graph.outputs, outputs, strict=True)):
            view = lw.view(v)
            if view.buffer is not buffer:
                lw.copy(view, contiguous_view(buffer, _tensor(graph.outputs[i]).shape))
    if copies:
        lw.emit(Kernel("outputs", copies))
    return Program(graph.name, graph.symbols(), inputs, params, outputs, lw.temps, lw._blocks[0],
                   lw.errors)


def _tensor(v: Value) -> TensorType:
    if not isinstance(v.type, TensorType):
        raise BackendError(f"llvm backend: value %{v.name} has non-tensor type {v.type}")
    return v.type


def _argument(lw: Lowerer, v: Value, kind: str, index: int) -> Buffer:
    t = _tensor(v)
    buffer = Buffer(f"{kind}{index}", t.dtype, t.numel(), kind, index)  # type: ignore[arg-type]
    lw.bind(v, contiguous_view(buffer, t.shape))
    return buffer
