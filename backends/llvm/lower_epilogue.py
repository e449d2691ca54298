"""The elementwise tail of a `gemm_epilogue` group as an epilogue of the GEMM's store: each tail op's
lowering rule is run on placeholders to get one expression over the accumulator and side operands
(bias, per-channel batch-norm scale and shift, residual, scalars), applied once per output element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from archir.backends.llvm.gemm_epilogue import (
    BINARY,
    COMPARE,
    LOGIC,
    UNARY,
    EpilogueProgram,
    const_token,
)
from archir.backends.llvm.loops import Binary, Cast, Const, Expr, Loop, Select, Unary, Var, dim_expr
from archir.backends.llvm.lower import RULES, Lowerer, View, compute_dtype
from archir.backends.llvm.row_plan import VIEW_OPS, is_elementwise_rule

from archir.ir import Node, Value
from archir.symbolic import Dim
from archir.types import DType, TensorType

ACC = Var("acc", DType.f32, "local")
POSITIONAL = ("iota", "tril", "triu")  # their value depends on the element's index: not captured here


class Unsupported(Exception):
    """The tail cannot run in the GEMM's store (the caller falls back to a row kernel)."""


@dataclass(frozen=True, slots=True)
class GridOperand:
    """An operand on one GEMM call's C grid: element (i, j) at offset + i * rows + j * cols."""

    view: View
    offset: Expr
    rows: Expr
    cols: Expr


@dataclass(frozen=True, slots=True)
class OutputEpilogue:
    """`expr` over ACC and Var(o<i>) placeholders; operand i is a view with the contraction output's
    shape (zero strides where it broadcasts)."""

    expr: Expr
    operands: tuple[View, ...]

    def after(self, inner: OutputEpilogue) -> OutputEpilogue:
        """This epilogue applied to the result of `inner` (a bias add before an activation, say)."""
        shift = len(inner.operands)
        renamed = {f"o{i}": Var(f"o{i + shift}", DType.f32, "local") for i in range(len(self.operands))}
        renamed["acc"] = inner.expr
        return OutputEpilogue(substitute(self.expr, renamed), (*inner.operands, *self.operands))

    def prepare(self, lw: Lowerer, fits: Callable[[View], bool]) -> OutputEpilogue:
        """Operands the GEMM cannot address (a column stride other than 0 or 1, rows that do not
        fold) or not f32 are copied once into a contiguous f32 buffer with the output's shape."""
        fixed: list[View] = []
        for view in self.operands:
            if view.dtype != DType.f32 or not fits(view):
                copy = lw.temp(DType.f32, view.shape)
                lw.copy(view, copy)
                view = copy
            fixed.append(view)
        return OutputEpilogue(self.expr, tuple(fixed))

    def on_grid(self, place: Callable[[View], GridOperand]) -> tuple[EpilogueProgram, list[Expr]]:
        """The program and the extra call arguments for one GEMM call, `place` mapping each
        operand onto that call's C grid."""
        kinds: list[str] = []
        args: list[Expr] = []
        from archir.backends.llvm.loops import Ptr

        for view in self.operands:
            g = place(view)
            by_row = not (isinstance(g.rows, Const) and g.rows.value == 0)
            by_col = isinstance(g.cols, Const) and g.cols.value == 1
            kinds.append(("mat" if by_col else "row") if by_row else ("col" if by_col else "one"))
            args.append(Ptr(view.buffer, g.offset))
            if by_row:
                args.append(g.rows)
        return EpilogueProgram(tuple(kinds), tuple(to_tokens(self.expr))), args


def broadcast_to(view: View, shape: Sequence[Dim]) -> View:
    """`view` under right-aligned broadcasting to `shape`: same rank, zero strides where it repeats."""
    lead = len(shape) - view.rank
    strides: list[Dim] = [0] * lead
    for d, s in zip(view.shape, view.strides, strict=True):
        strides.append(0 if d == 1 else s)
    return view.with_layout(tuple(shape), strides)


def along_axis(view: View, shape: Sequence[Dim], axis: int) -> View:
    """A per-channel vector `view` lined up with `axis` of `shape`."""
    strides: list[Dim] = [0] * len(shape)
    strides[axis] = view.strides[0]
    return view.with_layout(tuple(shape), strides)


def substitute(e: Expr, values: dict[str, Expr]) -> Expr:
    if isinstance(e, Var):
        return values.get(e.name, e)
    if isinstance(e, Binary):
        return Binary(e.op, substitute(e.a, values), substitute(e.b, values), e.dtype)
    if isinstance(e, Unary):
        return Unary(e.op, substitute(e.x, values), e.dtype)
    if isinstance(e, Select):
        return Select(substitute(e.cond, values), substitute(e.a, values), substitute(e.b, values), e.dtype)
    if isinstance(e, Cast):
        return Cast(substitute(e.x, values), e.dtype)
    return e


def to_tokens(e: Expr) -> list[str]:
    """The postfix program of an f32 expression, or Unsupported."""
    if e.dtype not in (DType.f32, DType.bool):
        raise Unsupported(f"{e.dtype} value")
    if isinstance(e, Var):
        if e.name == "acc" or e.name.startswith("o"):
            return [e.name]
        raise Unsupported(f"variable {e.name}")
    if isinstance(e, Const):
        if e.dtype != DType.f32:
            raise Unsupported("non-f32 constant")
        return [const_token(float(e.value))]
    if isinstance(e, Cast):
        if e.x.dtype != e.dtype:
            raise Unsupported(f"cast {e.x.dtype} -> {e.dtype}")
        return to_tokens(e.x)
    if isinstance(e, Unary) and e.op in UNARY:
        return [*to_tokens(e.x), e.op]
    if isinstance(e, Binary) and (e.op in BINARY or e.op in COMPARE or e.op in LOGIC):
        return [*to_tokens(e.a), *to_tokens(e.b), e.op]
    if isinstance(e, Select):
        return [*to_tokens(e.cond), *to_tokens(e.a), *to_tokens(e.b), "select"]
    raise Unsupported(f"expression {e}")


# -- capturing the tail ----------------------------------------------------------------------------
class _Placeholder:
    """What an elementwise rule sees as an operand: its shape, and its value at any index."""

    def __init__(self, v: Value, value: Expr | None) -> None:
        t = v.type
        self.shape = t.shape if isinstance(t, TensorType) else ()
        self.rank = len(self.shape)
        self.dtype = v.tensor_type.dtype
        self.value = value

    def load(self, idx: Sequence[Expr]) -> Expr:
        assert self.value is not None
        return self.value

    def store(self, idx: Sequence[Expr], value: Expr) -> tuple[str, Expr]:
        return ("store", value)


class _Capture:
    """A stand-in Lowerer for one elementwise rule: captures the expression it would store."""

    def __init__(self, tail: _Tail, node: Node) -> None:
        self.tail = tail
        self.target = _Placeholder(node.outputs[0], None)
        self.captured: Expr | None = None

    def view(self, v: Value) -> _Placeholder:
        return _Placeholder(v, self.tail.value(v))

    def result(self, v: Value) -> _Placeholder:
        return self.target

    @contextmanager
    def loops(self, shape: Sequence[Dim]) -> Iterator[list[Expr]]:
        yield [Const(0)] * len(shape)

    def parallel_loops(self, shape: Sequence[Dim], cost: int = 1) -> AbstractContextManager[list[Expr]]:
        return self.loops(shape)  # the GEMM's own loops are the parallel ones

    def emit(self, stmt: tuple[str, Expr]) -> None:
        self.captured = stmt[1]


class _Tail:
    """Values of the tail as expressions over ACC and operand placeholders."""

    def __init__(self, lw: Lowerer, anchor: Value) -> None:
        self.lw = lw
        self.shape = anchor.tensor_type.shape
        self.exprs: dict[Value, Expr] = {anchor: ACC}
        self.operands: list[View] = []
        self.pending: list[Callable[[], None]] = []  # code to emit once the whole tail is known to fit

    def operand(self, view: View) -> Expr:
        self.operands.append(broadcast_to(view, self.shape))
        return Var(f"o{len(self.operands) - 1}", DType.f32, "local")

    def value(self, v: Value) -> Expr:
        known = self.exprs.get(v)
        if known is None:
            view = self.lw.view(v)
            if compute_dtype(view.dtype) != DType.f32 or view.rank > len(self.shape):
                raise Unsupported(f"side operand %{v.name} of type {v.type}")
            known = self.exprs[v] = self.operand(view)
        return known

    def node(self, node: Node) -> None:
        if node.op in VIEW_OPS and not any(v in self.exprs for v in node.inputs):
            RULES[node.op](self.lw, node)  # a view of a side operand (a reshaped bias): no code
        elif node.op == "batch_norm" and node.inputs[0] in self.exprs:
            self.exprs[node.outputs[0]] = self.batch_norm(node)
        elif is_elementwise_rule(node.op) and node.op not in POSITIONAL \
                and (node.outputs[0].tensor_type.shape == self.shape or node.op == "full"):
            capture = _Capture(self, node)
            RULES[node.op](capture, node)  # type: ignore[arg-type]
            if capture.captured is None:
                raise Unsupported(node.op)
            self.exprs[node.outputs[0]] = capture.captured
        else:
            raise Unsupported(node.op)

    def batch_norm(self, node: Node) -> Expr:
        """x * scale + shift with scale = weight / sqrt(var + eps), shift = bias - mean * scale,
        computed once per channel into a small buffer before the GEMM."""
        x, mean, var, *rest = node.inputs
        weight, bias = [*rest, None, None][:2]
        axis = node.attrs["axis"] % len(self.shape)
        channels = self.shape[axis]
        table = self.lw.temp(DType.f32, (2, channels))
        lw = self.lw
        c = lw.fresh("c")
        with lw.block() as body:
            dt = DType.f32
            eps = Const(float(node.attrs["eps"]), dt)
            std = Unary("sqrt", Binary("add", self._channel(var, c), eps, dt), dt)
            scale: Expr = Binary("div", Const(1.0, dt), std, dt)
            if weight is not None:
                scale = Binary("mul", scale, self._channel(weight, c), dt)
            shift: Expr = Binary("mul", Unary("neg", self._channel(mean, c), dt), scale, dt)
            if bias is not None:
                shift = Binary("add", shift, self._channel(bias, c), dt)
            lw.emit(table.store([Const(0), c], scale))
            lw.emit(table.store([Const(1), c], shift))
        self.pending.append(lambda: lw.emit(Loop(c, Const(0), dim_expr(channels), body)))
        scale_v = table.with_layout((channels,), (1,))
        shift_v = table.with_layout((channels,), (1,), offset=dim_expr(channels))
        s = self._axis_operand(scale_v, axis)
        t = self._axis_operand(shift_v, axis)
        return Binary("add", Binary("mul", self.value(x), s, DType.f32), t, DType.f32)

    def _channel(self, v: Value, c: Expr) -> Expr:
        view = self.lw.view(v)
        if compute_dtype(view.dtype) != DType.f32:
            raise Unsupported("batch_norm statistics not f32")
        return view.load([c])

    def _axis_operand(self, view: View, axis: int) -> Expr:
        self.operands.append(along_axis(view, self.shape, axis))
        return Var(f"o{len(self.operands) - 1}", DType.f32, "local")


def plan_tail(lw: Lowerer, anchor: Value, tail: Sequence[Node],
              results: Sequence[Value]) -> OutputEpilogue | None:
    """The tail as one epilogue over `anchor` (the contraction's result), or None when some op,
    operand or result does not fit an in-store epilogue. Emits only views and the batch-norm table."""
    if anchor.tensor_type.dtype != DType.f32 or len(results) != 1 or not tail:
        return None
    if results[0] is not tail[-1].outputs[0] or results[0].tensor_type.dtype != DType.f32:
        return None
    state = _Tail(lw, anchor)
    try:
        for node in tail:
            state.node(node)
        expr = state.exprs[results[0]]
        to_tokens(expr)
    except Unsupported:
        return None
    for emit in state.pending:
        emit()
    return OutputEpilogue(expr, tuple(state.operands))
