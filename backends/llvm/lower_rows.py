"""Row kernels: a group of elementwise ops and last-axis reductions (softmax, log_softmax,
layer_norm, rms_norm, sum/mean/max/min) as ONE loop over the rows of its data shape.

Per row, each reduction is one vectorised pass over the row (the row stays in L1 between passes)
and a last pass writes every full-shape result; values are composed in registers per element, never
stored to a temporary. Rows are split over the thread pool when the work is large. Which groups
fit a row kernel is decided in row_plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from archir.backends.llvm.loops import (
    Assign,
    Binary,
    Cast,
    Const,
    Expr,
    Loop,
    Stmt,
    Unary,
    Var,
    dim_expr,
    unravel,
)
from archir.backends.llvm.lower import RULES, Lowerer, View, compute_dtype
from archir.backends.llvm.lower_elementwise import MATH_COST, broadcast_index, convert
from archir.backends.llvm.row_plan import REDUCTIONS, ROW_OPS, RowPlan, shape_of
from archir.backends.llvm.vecmath import FUNCTIONS

from archir.ir import Node, Value
from archir.symbolic import Dim, product
from archir.types import DType


# -- evaluation -------------------------------------------------------------------------------
class _Operand:
    """What an elementwise rule sees as an operand: its shape, and its value at an index."""

    def __init__(self, ev: RowEval, v: Value) -> None:
        self.ev, self.v = ev, v
        self.shape = shape_of(v)
        self.rank = len(self.shape)
        self.dtype = v.tensor_type.dtype

    def load(self, idx: Sequence[Expr]) -> Expr:
        # Broadcasting composes: the operand at its broadcast index equals it at the full index.
        return self.ev.value(self.v)

    def store(self, idx: Sequence[Expr], value: Expr) -> tuple[str, Expr]:
        return ("store", value)


class _Capture:
    """A stand-in Lowerer for one elementwise rule: captures the expression it would store."""

    def __init__(self, ev: RowEval, node: Node) -> None:
        self.ev = ev
        self.target = _Operand(ev, node.outputs[0])
        self.own_idx = broadcast_index(self.target, ev.full, ev.index())  # type: ignore[arg-type]
        self.captured: Expr | None = None

    def view(self, v: Value) -> _Operand:
        return _Operand(self.ev, v)

    def result(self, v: Value) -> _Operand:
        return self.target

    @contextmanager
    def loops(self, shape: Sequence[Dim]) -> Iterator[list[Expr]]:
        yield list(self.own_idx)

    def parallel_loops(self, shape: Sequence[Dim], cost: int = 1) -> AbstractContextManager[list[Expr]]:
        return self.loops(shape)  # the row kernel's own loop is the parallel one

    def emit(self, stmt: tuple[str, Expr]) -> None:
        self.captured = stmt[1]


class RowEval:
    """Values of the group at the current element (row index, column j) as scalar locals."""

    def __init__(self, lw: Lowerer, full: tuple[Dim, ...], views: dict[Value, View],
                 lead: list[Expr]) -> None:
        self.lw, self.full, self.views, self.lead = lw, full, views, lead
        self.scalars: dict[Value, Expr] = {}  # per row: reduction results
        self.derived: dict[Value, Callable[[], Expr]] = {}  # per element, from row scalars
        self.memo: dict[Value, Expr] = {}
        self.j: Expr = Const(0)
        self.scratch: dict[Value, View] = {}  # full-shape f32 results whose row may hold partials

    def index(self) -> list[Expr]:
        return [*self.lead, self.j]

    def start_pass(self, j: Expr) -> None:
        self.memo = {}
        self.j = j

    def local(self, e: Expr, prefix: str = "v") -> Var:
        var = self.lw.fresh(prefix, e.dtype, "local")
        self.lw.emit(Assign(var, e))
        return var

    def value(self, v: Value) -> Expr:
        known = self.scalars.get(v)
        if known is not None:
            return known
        known = self.memo.get(v)
        if known is not None:
            return known
        if v in self.views:
            view = self.views[v]
            e: Expr = view.load(broadcast_index(view, self.full, self.index()))
        elif v in self.derived:
            e = self.derived[v]()
        else:
            e = self._elementwise(v)
        var = self.local(e)
        self.memo[v] = var
        return var

    def _elementwise(self, v: Value) -> Expr:
        node = v.producer
        assert node is not None
        capture = _Capture(self, node)
        RULES[node.op](capture, node)  # type: ignore[arg-type]
        assert capture.captured is not None
        return convert(capture.captured, compute_dtype(v.tensor_type.dtype))

    # -- per-row passes ----------------------------------------------------------------------------
    def row_pass(self, init: Expr, combine: Callable[[Expr], Expr], fast: bool = True) -> Var:
        """acc = combine(acc, element) over the row's columns; returns the accumulator."""
        acc = self.lw.fresh("acc", init.dtype, "local")
        self.lw.emit(Assign(acc, init))
        with columns(self.lw, self.full[-1]) as j:
            self.start_pass(j)
            self.lw.emit(Assign(acc, combine(acc), reduction=fast))
        self.start_pass(Const(0))
        return acc

    def reduce(self, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        dt = compute_dtype(out.tensor_type.dtype)
        n = Cast(dim_expr(self.full[-1]), dt)
        if node.op in REDUCTIONS:
            self.scalars[out] = self.plain_reduce(node.op, x, dt, n)
        elif node.op in ("softmax", "log_softmax"):
            self.softmax(node, x, out, dt)
        else:
            self.norm(node, x, out, dt, n)

    def plain_reduce(self, op: str, x: Value, dt: DType, n: Expr) -> Expr:
        if op in ("max", "min"):
            fn = "f" + op
            init = Const(float("-inf") if op == "max" else float("inf"), dt)
            return self.row_pass(init, lambda acc: Binary(fn, acc, convert(self.value(x), dt), dt))
        total = self.row_pass(Const(0.0, dt), lambda acc: Binary("add", acc, convert(self.value(x), dt), dt))
        return self.local(Binary("div", total, n, dt), "mean") if op == "mean" else total

    def softmax(self, node: Node, x: Value, out: Value, dt: DType) -> None:
        m = self.plain_reduce("max", x, dt, Const(0.0, dt))

        def shifted() -> Expr:
            return Binary("sub", convert(self.value(x), dt), m, dt)

        out_view = self.scratch.get(out)
        if node.op == "softmax" and out_view is not None:
            self.softmax_in_place(x, out, out_view, m, dt)
            return
        s = self.row_pass(Const(0.0, dt), lambda acc: Binary("add", acc, Unary("exp", shifted(), dt), dt))
        if node.op == "softmax":
            inv = self.local(Binary("div", Const(1.0, dt), s, dt), "inv")
            self.derived[out] = lambda: Binary("mul", Unary("exp", shifted(), dt), inv, dt)
        else:
            log_s = self.local(Unary("log", s, dt), "logs")
            self.derived[out] = lambda: Binary("sub", shifted(), log_s, dt)

    def softmax_in_place(self, x: Value, out: Value, view: View, m: Expr, dt: DType) -> None:
        """One exp per element: the sum pass also writes exp(x - max) into the result's row,
        which the last pass scales in place (it reads each element before it writes it)."""
        acc = self.lw.fresh("acc", dt, "local")
        self.lw.emit(Assign(acc, Const(0.0, dt)))
        with columns(self.lw, self.full[-1]) as j:
            self.start_pass(j)
            e = self.local(Unary("exp", Binary("sub", convert(self.value(x), dt), m, dt), dt), "e")
            self.lw.emit(view.store(self.index(), e))
            self.lw.emit(Assign(acc, Binary("add", acc, e, dt), reduction=True))
        self.start_pass(Const(0))
        inv = self.local(Binary("div", Const(1.0, dt), acc, dt), "inv")
        self.derived[out] = lambda: Binary("mul", view.load(self.index()), inv, dt)

    def norm(self, node: Node, x: Value, out: Value, dt: DType, n: Expr) -> None:
        eps = Const(node.attrs["eps"], dt)
        weight = node.inputs[1] if len(node.inputs) > 1 else None
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        xv = lambda: convert(self.value(x), dt)  # noqa: E731
        if node.op == "layer_norm":
            mean = self.plain_reduce("mean", x, dt, n)
            centred = lambda: Binary("sub", xv(), mean, dt)  # noqa: E731
            sq = self.row_pass(Const(0.0, dt), lambda acc: Binary("add", acc, _square(centred(), dt), dt))
            var = Binary("div", sq, n, dt)
        else:
            centred = xv
            sq = self.row_pass(Const(0.0, dt), lambda acc: Binary("add", acc, _square(xv(), dt), dt))
            var = Binary("div", sq, n, dt)
        rstd = self.local(Binary("div", Const(1.0, dt), Unary("sqrt", Binary("add", var, eps, dt), dt), dt),
                          "rstd")

        def normalised() -> Expr:
            y: Expr = Binary("mul", centred(), rstd, dt)
            if weight is not None:
                y = Binary("mul", y, convert(self.value(weight), dt), dt)
            if bias is not None:
                y = Binary("add", y, convert(self.value(bias), dt), dt)
            return y

        self.derived[out] = normalised


def _square(e: Expr, dt: DType) -> Expr:
    return Binary("mul", e, e, dt)


# Vector iterations of a math-heavy column loop run side by side. 4 measured best on znver3
# (2 threads, x[4096,768]): LN->gelu chain 3.36 vs 3.62 ms at 2, softmax 3.14 vs 3.19, sigmoid/tanh
# gates 5.12 vs 6.09; 3 was the worst of the three (its remainder loop).
MATH_INTERLEAVE = 4


@contextmanager
def columns(lw: Lowerer, n: Dim) -> Iterator[Var]:
    """A loop over the row's columns, like `lw.loop`; when its body calls a vecmath function the
    loop asks LLVM to interleave vector iterations: a gelu or exp is a long dependent chain, and
    one chain at a time leaves most of the FP units idle."""
    j = lw.fresh("i")
    with lw.block() as body:
        yield j
    lw.emit(Loop(j, Const(0), dim_expr(n), body, interleave=MATH_INTERLEAVE if _calls_math(body) else 0))


def _calls_math(stmts: Sequence[Stmt]) -> bool:
    return _math_calls(stmts) > 0


def _math_calls(stmts: Sequence[Stmt]) -> int:
    """How many vecmath calls (and float pows) the statements hold."""
    count = 0
    pending: list[object] = list(stmts)
    while pending:
        item = pending.pop()
        if isinstance(item, Unary) and item.op in FUNCTIONS:
            count += 1
        elif isinstance(item, Binary) and item.op == "pow" and item.dtype.is_float:
            count += 1
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, Expr | Stmt):
            pending.extend(getattr(item, f) for f in item.__dataclass_fields__)  # type: ignore[attr-defined]
    return count


def _rows(full: tuple[Dim, ...]) -> Dim:
    return product(full[:-1])


def _unravel(r: Expr, lead: tuple[Dim, ...]) -> list[Expr]:
    """The multi-index of flat row r over the leading dims (row-major)."""
    if not lead:
        return []
    idx, first = unravel(r, lead[1:])
    return [first, *idx]


def lower_rows(lw: Lowerer, plan: RowPlan, views: dict[Value, View], results: Sequence[Value],
               outs: Sequence[View]) -> None:
    """Emit the row kernel: views bound, then one (parallel) loop over rows."""
    views = dict(views)
    for node in plan.views:
        for v in node.inputs:
            lw.bind(v, views[v])
        RULES[node.op](lw, node)
        views[node.outputs[0]] = lw.view(node.outputs[0])
    full = plan.full
    passes = 1 + sum(2 if n.op in ROW_OPS else 1 for n in plan.nodes if n.op in REDUCTIONS + ROW_OPS)
    r = lw.fresh("r")
    with lw.block() as body:
        ev = RowEval(lw, full, views, _unravel(r, full[:-1]))
        for v, out in zip(results, outs, strict=True):
            if shape_of(v) == full and out.dtype in (DType.f32, DType.f64) and out.buffer.kind != "input":
                ev.scratch.setdefault(v, out)
        for node in plan.nodes:
            if node.op in REDUCTIONS or node.op in ROW_OPS:
                ev.reduce(node)
        wide: list[tuple[Value, View]] = []
        for v, out in zip(results, outs, strict=True):
            if shape_of(v) == full:
                wide.append((v, out))
                continue
            ev.start_pass(Const(0))
            lead = ev.lead if len(out.shape) == len(full) - 1 else [*ev.lead, Const(0)]
            lw.emit(out.store(lead, convert(ev.value(v), compute_dtype(out.dtype))))
        if wide:
            with columns(lw, full[-1]) as j:
                ev.start_pass(j)
                for v, out in wide:
                    lw.emit(out.store(ev.index(), convert(ev.value(v), compute_dtype(out.dtype))))
    # Work per row in element-operations; a vecmath call costs about as much as MATH_COST plain
    # ones, so small but math-heavy kernels (an LSTM's gates: 16 x 512, five sigmoid/tanh per
    # element) still go to the thread pool.
    cost = passes + MATH_COST * _math_calls(body)
    work = Binary("mul", dim_expr(full[-1]), Const(cost), DType.i64)
    lw.emit(Loop(r, Const(0), dim_expr(_rows(full)), body, parallel=work))
