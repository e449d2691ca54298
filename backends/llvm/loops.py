"""The loop-level IR of the LLVM backend: buffers, scalar expressions, loops, stores, calls.

Lowering turns a graph into one `Program` of this IR; codegen turns the program into LLVM IR.
`print_program` shows it (`archir dump MODEL --backend llvm --emit loops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from archir.symbolic import Dim, FloorDiv, SymExpr
from archir.types import DType

BufferKind = Literal["input", "param", "output", "temp"]


@dataclass(eq=False, slots=True)
class Buffer:
    """A flat array: a graph input, parameter or output (pointer argument) or an arena temporary."""

    name: str
    dtype: DType
    size: Dim  # elements; symbolic sizes are evaluated at run time
    kind: BufferKind
    index: int = 0  # position among buffers of its kind (argument order, arena slot)

    def __str__(self) -> str:
        return f"%{self.name}"


# -- expressions: every expression has a dtype; index arithmetic is i64 -------------------------
class Expr:
    __slots__ = ()
    dtype: DType


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: float | int | bool
    dtype: DType = DType.i64

    def __str__(self) -> str:
        return str(self.value) if self.dtype in (DType.i64, DType.bool) else f"{self.value}:{self.dtype}"


@dataclass(frozen=True, slots=True)
class Var(Expr):
    """A loop index, a run-time dim (`kind="dim"`) or a mutable scalar local (`kind="local"`)."""

    name: str
    dtype: DType = DType.i64
    kind: Literal["loop", "dim", "local"] = "loop"

    def __str__(self) -> str:
        return f"${self.name}" if self.kind == "dim" else self.name


@dataclass(frozen=True, slots=True)
class Load(Expr):
    buffer: Buffer
    index: Expr
    dtype: DType  # compute dtype: f16/bf16 buffers load as f32

    def __str__(self) -> str:
        return f"{self.buffer}[{self.index}]"


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """neg abs sqrt rsqrt reciprocal floor not isnan, and the math functions of vecmath."""

    op: str
    x: Expr
    dtype: DType

    def __str__(self) -> str:
        return f"{self.op}({self.x})"


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """add sub mul div floordiv mod min max fmax fmin pow and or; lt le eq ne gt ge (bool result)."""

    op: str
    a: Expr
    b: Expr
    dtype: DType

    def __str__(self) -> str:
        symbol = _INFIX.get(self.op)
        return f"({self.a} {symbol} {self.b})" if symbol else f"{self.op}({self.a}, {self.b})"


_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "lt": "<",
          "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "and": "&&", "or": "||"}


@dataclass(frozen=True, slots=True)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr
    dtype: DType

    def __str__(self) -> str:
        return f"({self.cond} ? {self.a} : {self.b})"


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    x: Expr
    dtype: DType

    def __str__(self) -> str:
        return f"{self.dtype}({self.x})"


@dataclass(frozen=True, slots=True)
class Ptr(Expr):
    """The address of `buffer[offset]`, passed to calls."""

    buffer: Buffer
    offset: Expr
    dtype: DType = DType.i64

    def __str__(self) -> str:
        return f"&{self.buffer}[{self.offset}]"


# -- statements --------------------------------------------------------------------------------
class Stmt:
    __slots__ = ()


@dataclass(slots=True)
class Loop(Stmt):
    var: Var
    start: Expr
    stop: Expr
    body: list[Stmt] = field(default_factory=list)
    step: int = 1  # +1 or -1 (a reversed walk runs from stop - 1 down to start)
    # Work per iteration (elements): when set, the iterations may run on the thread pool, split
    # when trip count x work is large. The body then reads only buffers, dims and its own locals.
    parallel: Expr | None = None
    # A hint for LLVM's loop vectoriser (0: its own choice): run this many vector iterations
    # side by side. Long math bodies (gelu, exp) are latency-bound; interleaved chains hide it.
    interleave: int = 0


@dataclass(slots=True)
class Store(Stmt):
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(slots=True)
class Assign(Stmt):
    """Set a mutable scalar local (declared by its first assignment)."""

    var: Var
    value: Expr
    reduction: bool = False  # an accumulation LLVM may reorder (fast-math reassoc)


@dataclass(slots=True)
class If(Stmt):
    cond: Expr
    then: list[Stmt] = field(default_factory=list)
    orelse: list[Stmt] = field(default_factory=list)


@dataclass(slots=True)
class While(Stmt):
    """Run `prelude`, leave when `cond` is false, else run `body` and repeat."""

    prelude: list[Stmt]
    cond: Expr
    body: list[Stmt]


@dataclass(slots=True)
class Call(Stmt):
    """A call to a runtime function (`gemm`), arguments are i64 / i32 expressions and Ptrs."""

    function: str
    args: list[Expr]


@dataclass(slots=True)
class Kernel(Stmt):
    """The statements of one graph node, generated as a function of their own: LLVM's passes
    are super-linear in function size, so many small functions compile much faster than one."""

    name: str
    body: list[Stmt]


@dataclass(slots=True)
class Fail(Stmt):
    """Return error `code` from the entry point (an out-of-range index, say)."""

    code: int


@dataclass(slots=True)
class Program:
    """One graph as a single function over its argument buffers and one arena."""

    name: str
    symbols: list[str]
    inputs: list[Buffer]
    params: list[Buffer]
    outputs: list[Buffer]
    temps: list[Buffer]
    body: list[Stmt]
    errors: list[str]  # message of each Fail code, code i at errors[i - 1]


# -- helpers to build expressions --------------------------------------------------------------
def const(value: float | int | bool, dtype: DType = DType.i64) -> Const:
    return Const(value, dtype)


def dim_expr(d: Dim) -> Expr:
    """A symbolic dim as an i64 expression over run-time dims."""
    if isinstance(d, int):
        return Const(d)
    total: Expr | None = None
    for mono, coef in d.terms:
        term: Expr = Const(coef)
        for atom in mono:
            factor = Var(atom, kind="dim") if isinstance(atom, str) else _floordiv_expr(atom)
            term = factor if isinstance(term, Const) and term.value == 1 else imul(term, factor)
        total = term if total is None else iadd(total, term)
    assert total is not None
    return total


def _floordiv_expr(atom: FloorDiv) -> Expr:
    return Binary("floordiv", dim_expr(atom.num), Const(atom.den), DType.i64)


def iadd(a: Expr, b: Expr) -> Expr:
    if isinstance(a, Const) and a.value == 0:
        return b
    if isinstance(b, Const) and b.value == 0:
        return a
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(int(a.value) + int(b.value))
    return Binary("add", a, b, DType.i64)


def imul(a: Expr, b: Expr) -> Expr:
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(int(a.value) * int(b.value))
    for x, y in ((a, b), (b, a)):
        if isinstance(x, Const) and x.value == 0:
            return Const(0)
        if isinstance(x, Const) and x.value == 1:
            return y
    return Binary("mul", a, b, DType.i64)


def isub(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 0:
        return a
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(int(a.value) - int(b.value))
    return Binary("sub", a, b, DType.i64)


def unravel(flat: Expr, sizes: Sequence[Dim | Expr]) -> tuple[list[Expr], Expr]:
    """The row-major indices of `flat` over the trailing axes `sizes` (the last moves fastest), and
    the quotient left for the axes before them: unravel(f, [3, 4]) = ([f // 4 % 3, f % 4], f // 12)."""
    idx: list[Expr] = []
    rest = flat
    for size in reversed(sizes):
        e = size if isinstance(size, Expr) else dim_expr(size)
        if isinstance(e, Const) and e.value == 1:
            idx.append(Const(0))
            continue
        idx.append(Binary("mod", rest, e, DType.i64))
        rest = Binary("floordiv", rest, e, DType.i64)
    return list(reversed(idx)), rest


def as_dim_text(d: Dim) -> str:
    return str(d) if isinstance(d, int | SymExpr) else repr(d)


def buffers_used(stmts: list[Stmt]) -> set[str]:
    """Names of the buffers the statements read or write."""
    names: set[str] = set()
    pending: list[object] = list(stmts)
    while pending:
        item = pending.pop()
        if isinstance(item, Buffer):
            names.add(item.name)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, Expr | Stmt):
            pending.extend(getattr(item, f) for f in item.__dataclass_fields__)  # type: ignore[attr-defined]
    return names


# -- printer -----------------------------------------------------------------------------------
def print_program(program: Program) -> str:
    lines = [f"func @{program.name}(dims: [{', '.join(program.symbols)}]) {{"]
    for group in (program.inputs, program.params, program.outputs, program.temps):
        for b in group:
            lines.append(f"  {b.kind} {b}: {b.dtype}[{as_dim_text(b.size)}]")
    _print_block(program.body, lines, 1)
    lines.append("}")
    for code, message in enumerate(program.errors, start=1):
        lines.append(f"// error {code}: {message}")
    return "\n".join(lines) + "\n"


def _print_block(stmts: list[Stmt], lines: list[str], depth: int) -> None:
    pad = "  " * depth
    for s in stmts:
        if isinstance(s, Loop):
            reverse = " reversed" if s.step < 0 else ""
            kind = "parallel for" if s.parallel is not None else "for"
            hint = f" interleave({s.interleave})" if s.interleave else ""
            lines.append(f"{pad}{kind} {s.var} in [{s.start}, {s.stop}){reverse}{hint} {{")
            _print_block(s.body, lines, depth + 1)
            lines.append(f"{pad}}}")
        elif isinstance(s, Store):
            lines.append(f"{pad}{s.buffer}[{s.index}] = {s.value}")
        elif isinstance(s, Assign):
            lines.append(f"{pad}{s.var} = {s.value}{'  // reduce' if s.reduction else ''}")
        elif isinstance(s, If):
            lines.append(f"{pad}if {s.cond} {{")
            _print_block(s.then, lines, depth + 1)
            if s.orelse:
                lines.append(f"{pad}}} else {{")
                _print_block(s.orelse, lines, depth + 1)
            lines.append(f"{pad}}}")
        elif isinstance(s, While):
            lines.append(f"{pad}loop {{")
            _print_block(s.prelude, lines, depth + 1)
            lines.append(f"{pad}  break unless {s.cond}")
            _print_block(s.body, lines, depth + 1)
            lines.append(f"{pad}}}")
        elif isinstance(s, Call):
            lines.append(f"{pad}call {s.function}({', '.join(str(a) for a in s.args)})")
        elif isinstance(s, Kernel):
            lines.append(f"{pad}kernel {s.name} {{")
            _print_block(s.body, lines, depth + 1)
            lines.append(f"{pad}}}")
        elif isinstance(s, Fail):
            lines.append(f"{pad}fail {s.code}")
