"""Loop IR -> llvmlite IR: one function `i32 graph_entry(i8** args, i64* dims)` per program.

args holds the inputs, parameters, outputs and the arena (in that order); the arena is carved
into the temporaries here with the same layout `arena_layout` computes on the Python side.
"""

from __future__ import annotations

from collections.abc import Callable

from archir.backends.llvm import codegen_expr as cx
from archir.backends.llvm.loops import (
    Assign,
    Buffer,
    Call,
    Expr,
    Fail,
    If,
    Kernel,
    Loop,
    Program,
    Stmt,
    Store,
    Var,
    While,
    buffers_used,
    dim_expr,
)
from llvmlite import ir

from archir.symbolic import evaluate

ENTRY = "graph_entry"
ALIGN = 64


def arena_layout(temps: list[Buffer], bindings: dict[str, int]) -> tuple[list[int], int]:
    """Byte offset of each temporary and the arena size, for concrete dims."""
    offsets, total = [], 0
    for t in temps:
        offsets.append(total)
        total += _aligned(evaluate(t.size, bindings) * t.dtype.itemsize)
    return offsets, total


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class FunctionBuilder(cx.ExprBuilder):
    """Generates the entry function of one program."""

    def __init__(self, module: ir.Module, program: Program,
                 externals: Callable[[ir.Module, str], ir.Function]) -> None:
        fnty = ir.FunctionType(cx.I32, [cx.I8.as_pointer().as_pointer(), cx.I64.as_pointer()])
        self.function = ir.Function(module, fnty, ENTRY)
        entry = self.function.append_basic_block("entry")
        super().__init__(module, ir.IRBuilder(entry))
        self.program = program
        self.externals = externals
        self._entry_block = entry
        self.slots: dict[str, tuple[int, Buffer]] = {}

    # -- prologue --------------------------------------------------------------------------------
    def build(self) -> ir.Function:
        args_ptr, dims_ptr = self.function.args
        b = self.b
        self._load_dims(dims_ptr)
        pointers: list[tuple[Buffer, ir.Value]] = []
        slot = 0
        for group in (self.program.inputs, self.program.params, self.program.outputs):
            for buffer in group:
                pointers.append((buffer, b.load(b.gep(args_ptr, [cx.i64(slot)], inbounds=True))))
                slot += 1
        arena = b.load(b.gep(args_ptr, [cx.i64(slot)], inbounds=True), name="arena")
        offset: ir.Value = cx.i64(0)
        for t in self.program.temps:
            pointers.append((t, b.gep(arena, [offset], inbounds=True)))
            size = b.mul(self.expr(dim_expr(t.size)), cx.i64(t.dtype.itemsize))
            offset = b.and_(b.add(size, b.add(offset, cx.i64(ALIGN - 1))), cx.i64(-ALIGN))
        # Kernels find every buffer in one table of pointers, in this order.
        self.table = b.alloca(cx.I8.as_pointer(), size=cx.i64(len(pointers)), name="buffers")
        self.dims_ptr = dims_ptr
        for k, (buffer, raw) in enumerate(pointers):
            b.store(raw, b.gep(self.table, [cx.i64(k)], inbounds=True))
            self.slots[buffer.name] = (k, buffer)
            self.buffers[buffer.name] = b.bitcast(raw, cx.storage_type(buffer.dtype).as_pointer())
        self.block(self.program.body)
        if not self.b.block.is_terminated:
            self.b.ret(cx.i32(0))
        return self.function

    def _load_dims(self, dims_ptr: ir.Value) -> None:
        for k, name in enumerate(self.program.symbols):
            self.dims[name] = self.b.load(self.b.gep(dims_ptr, [cx.i64(k)], inbounds=True), name=name)

    def kernel(self, s: Kernel) -> None:
        """The kernel's statements as a function `i32 (i8** buffers, i64* dims)`, called here."""
        fn = ir.Function(self.module, ir.FunctionType(cx.I32, [self.table.type, cx.I64.as_pointer()]),
                         f"archir_{s.name}")
        fn.linkage = "internal"
        fn.attributes.add("noinline")  # inlining them back would undo the split
        saved = (self.function, self.b, self._entry_block, self.locals, self.buffers, self.dims)
        entry = fn.append_basic_block("entry")
        self.function, self.b, self._entry_block = fn, ir.IRBuilder(entry), entry
        self.locals, self.buffers, self.dims = {}, {}, {}
        self._load_dims(fn.args[1])
        used = buffers_used(s.body)
        for name, (k, buffer) in self.slots.items():
            if name not in used:
                continue
            raw = self.b.load(self.b.gep(fn.args[0], [cx.i64(k)], inbounds=True))
            self.buffers[name] = self.b.bitcast(raw, cx.storage_type(buffer.dtype).as_pointer())
        self.block(s.body)
        if not self.b.block.is_terminated:
            self.b.ret(cx.i32(0))
        self.function, self.b, self._entry_block, self.locals, self.buffers, self.dims = saved
        status = self.b.call(fn, [self.table, self.dims_ptr])
        with self.b.if_then(self.b.icmp_signed("!=", status, cx.i32(0)), likely=False):
            self.b.ret(status)

    def local(self, var: Var) -> ir.AllocaInstr:
        slot = self.locals.get(var.name)
        if slot is None:
            with self.b.goto_entry_block():
                self.b.position_at_start(self._entry_block)
                slot = self.b.alloca(cx.compute_type(var.dtype), name=var.name)
            self.locals[var.name] = slot
        return slot

    # -- statements ------------------------------------------------------------------------------
    def block(self, stmts: list[Stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Loop):
            self.loop(s)
        elif isinstance(s, Store):
            self.store(s.buffer, s.index, s.value)
        elif isinstance(s, Assign):
            self.b.store(self.expr(s.value, fast=s.reduction), self.local(s.var))
        elif isinstance(s, If):
            self.branch(s)
        elif isinstance(s, While):
            self.while_loop(s)
        elif isinstance(s, Call):
            fn = self.externals(self.module, s.function)
            args = [self.call_arg(a, t) for a, t in zip(s.args, fn.function_type.args, strict=True)]
            self.b.call(fn, args)
        elif isinstance(s, Kernel):
            self.kernel(s)
        elif isinstance(s, Fail):
            self.b.ret(cx.i32(s.code))
            self.b.position_at_end(self.function.append_basic_block("after_fail"))
        else:
            raise TypeError(f"unknown loop-IR statement {s!r}")

    def call_arg(self, a: Expr, ty: ir.Type) -> ir.Value:
        value = self.expr(a)
        if isinstance(ty, ir.PointerType):
            return self.b.bitcast(value, ty)
        if value.type != ty:
            return self.b.trunc(value, ty) if value.type.width > ty.width else self.b.sext(value, ty)
        return value

    def loop(self, s: Loop) -> None:
        b = self.b
        var = self.local(s.var)
        start, stop = self.expr(s.start), self.expr(s.stop)
        if s.step > 0:
            b.store(start, var)
        else:
            b.store(b.sub(stop, cx.i64(1)), var)
        header = self.function.append_basic_block(f"{s.var.name}.head")
        body = self.function.append_basic_block(f"{s.var.name}.body")
        done = self.function.append_basic_block(f"{s.var.name}.done")
        b.branch(header)
        b.position_at_end(header)
        i = b.load(var)
        more = b.icmp_signed("<", i, stop) if s.step > 0 else b.icmp_signed(">=", i, start)
        b.cbranch(more, body, done)
        b.position_at_end(body)
        self.block(s.body)
        b.store(b.add(b.load(var), cx.i64(s.step)), var)
        b.branch(header)
        b.position_at_end(done)

    def branch(self, s: If) -> None:
        cond = self.expr(s.cond)
        with self.b.if_else(cond) as (then, orelse):
            with then:
                self.block(s.then)
            with orelse:
                self.block(s.orelse)

    def while_loop(self, s: While) -> None:
        b = self.b
        head = self.function.append_basic_block("while.head")
        body = self.function.append_basic_block("while.body")
        done = self.function.append_basic_block("while.done")
        b.branch(head)
        b.position_at_end(head)
        self.block(s.prelude)
        b.cbranch(self.expr(s.cond), body, done)
        b.position_at_end(body)
        self.block(s.body)
        b.branch(head)
        b.position_at_end(done)


def generate(module: ir.Module, program: Program,
             externals: Callable[[ir.Module, str], ir.Function]) -> ir.Function:
    return FunctionBuilder(module, program, externals).build()
