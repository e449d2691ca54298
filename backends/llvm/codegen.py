"""Loop IR -> llvmlite IR: one function `i32 graph_entry(i8** args, i64* dims)` per program.

args holds the inputs, parameters, outputs and the arena (in that order); the arena is carved
into the temporaries here with the same layout `arena_layout` computes on the Python side.
"""

from __future__ import annotations

from collections.abc import Callable

from archir.backends.llvm import codegen_expr as cx
from archir.backends.llvm.codegen_parallel import parallel_loop
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
        self.slots: dict[str, Buffer] = {}  # every buffer by name, in argument order

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
        self.dims_ptr = dims_ptr
        for buffer, raw in pointers:
            self.slots[buffer.name] = buffer
            self.buffers[buffer.name] = b.bitcast(raw, cx.storage_type(buffer.dtype).as_pointer())
        self.block(self.program.body)
        if not self.b.block.is_terminated:
            self.b.ret(cx.i32(0))
        return self.function

    def _load_dims(self, dims_ptr: ir.Value) -> None:
        for k, name in enumerate(self.program.symbols):
            self.dims[name] = self.b.load(self.b.gep(dims_ptr, [cx.i64(k)], inbounds=True), name=name)

    def kernel(self, s: Kernel) -> None:
        """The kernel's statements as a function of their own, called here with the buffers it uses."""
        fn, used, _ = self.outlined(f"archir_{s.name}", s.body, [])
        args = [self.dims_ptr, *(self.buffers[name] for name in used)]
        status = self.b.call(fn, args)
        with self.b.if_then(self.b.icmp_signed("!=", status, cx.i32(0)), likely=False):
            self.b.ret(status)

    def outlined(self, name: str, body: list[Stmt], scalars: list[ir.Type],
                 before: Callable[[list[ir.Value]], None] | None = None,
                 ) -> tuple[ir.Function, list[str], list[ir.Value]]:
        """`i32 name(i64* dims, scalars..., T* noalias buffers...)` running `body`: every buffer is a
        distinct allocation (inputs and params are only read, outputs are fresh, temps are disjoint
        arena slices), so `noalias` is true and spares the vectoriser its run-time overlap checks.
        `before(scalar args)` emits code ahead of the body (a parallel loop's index setup)."""
        names = buffers_used(body)
        used = [n for n in self.slots if n in names]
        ptr_types = [cx.storage_type(self.slots[n].dtype).as_pointer() for n in used]
        fnty = ir.FunctionType(cx.I32, [cx.I64.as_pointer(), *scalars, *ptr_types])
        fn = ir.Function(self.module, fnty, self.module.get_unique_name(name))
        fn.linkage = "internal"
        fn.attributes.add("noinline")  # inlining them back would undo the split
        for arg in fn.args[1 + len(scalars):]:
            arg.add_attribute("noalias")
        saved = (self.function, self.b, self._entry_block, self.locals, self.buffers, self.dims,
                 self.dims_ptr)
        entry = fn.append_basic_block("entry")
        self.function, self.b, self._entry_block = fn, ir.IRBuilder(entry), entry
        self.locals, self.buffers, self.dims = {}, {}, {}
        self.dims_ptr = fn.args[0]
        self._load_dims(fn.args[0])
        for n, arg in zip(used, fn.args[1 + len(scalars):], strict=True):
            self.buffers[n] = arg
        scalar_args = list(fn.args[1:1 + len(scalars)])
        if before is not None:
            before(scalar_args)
        self.block(body)
        if not self.b.block.is_terminated:
            self.b.ret(cx.i32(0))
        self.function, self.b, self._entry_block, self.locals, self.buffers, self.dims, self.dims_ptr = saved
        return fn, used, scalar_args

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
        if s.parallel is not None and s.step > 0:
            parallel_loop(self, s)
            return
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
        back = b.branch(header)
        if s.interleave:
            back.set_metadata("llvm.loop", self.loop_hints(s.interleave))
        b.position_at_end(done)

    def loop_hints(self, interleave: int) -> ir.MDValue:
        """`!{self, !{"llvm.loop.interleave.count", n}}`: loop metadata must begin with a
        reference to itself (so each loop's node is unique), which llvmlite can only build by
        patching the operands after creating the node under a placeholder."""
        m = self.module
        hint = m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"), cx.i32(interleave)])
        node = m.add_metadata([ir.MetaDataString(m, m.get_unique_name("archir.loop")), hint])
        node.operands = (node, hint)
        return node

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
