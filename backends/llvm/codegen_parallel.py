"""Parallel loops of the loop IR: the body is outlined into a function of its own (noalias
buffers), wrapped in a thread-pool task, and split over `archir_parallel_for` when the loop's
work is large enough to pay for waking the pool; small loops call the task directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archir.backends.llvm import codegen_expr as cx
from archir.backends.llvm.ir_loops import entry_alloca
from archir.backends.llvm.loops import Assign, Expr, Fail, Loop, Stmt, Var
from archir.backends.llvm.threads import TASK_TYPE, parallel_for_function
from llvmlite import ir

from archir.types import DType

if TYPE_CHECKING:
    from archir.backends.llvm.codegen import FunctionBuilder

PARALLEL_MIN_WORK = 1 << 15  # elements of work below which the pool's wake-up costs more than it saves


def _has_fail(stmts: list[object]) -> bool:
    pending = list(stmts)
    while pending:
        s = pending.pop()
        if isinstance(s, Fail):
            return True
        for name in ("body", "then", "orelse", "prelude"):
            pending.extend(getattr(s, name, None) or [])
    return False


def _free_vars(stmts: list[Stmt]) -> list[Var]:
    """Locals and loop indices the statements read but do not define (an enclosing loop's index)."""
    used: dict[str, Var] = {}
    defined: set[str] = set()
    pending: list[object] = list(stmts)
    while pending:
        item = pending.pop()
        if isinstance(item, Var):
            if item.kind != "dim":
                used.setdefault(item.name, item)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, Expr | Stmt):
            if isinstance(item, Loop | Assign):
                defined.add(item.var.name)
            pending.extend(getattr(item, f) for f in item.__dataclass_fields__)  # type: ignore[attr-defined]
    return [v for name, v in sorted(used.items()) if name not in defined]


def parallel_loop(fb: FunctionBuilder, s: Loop) -> None:
    """for s.var in [start, stop): body, as chunks of [0, stop - start) run by the thread pool."""
    if _has_fail(s.body):
        raise TypeError("a parallel loop body cannot fail (it runs on pool threads)")
    b = fb.b
    start, stop = fb.expr(s.start), fb.expr(s.stop)
    work = fb.expr(s.parallel)  # type: ignore[arg-type]
    n = b.sub(stop, start)
    lo, hi = Var(f"{s.var.name}.lo", DType.i64, "local"), Var(f"{s.var.name}.hi", DType.i64, "local")

    serial = Loop(s.var, lo, hi, s.body)
    # Values of enclosing locals (a scan step's index, say) travel to the body as arguments.
    free = [v for v in _free_vars(s.body) if v.name != s.var.name]
    free_types = [cx.compute_type(v.dtype) for v in free]
    free_values = [fb.expr(v) for v in free]

    def bounds(args: list[ir.Value]) -> None:
        begin, end, base, *outer = args
        fb.b.store(fb.b.add(base, begin), fb.local(lo))
        fb.b.store(fb.b.add(base, end), fb.local(hi))
        for var, value in zip(free, outer, strict=True):
            fb.b.store(value, fb.local(var))

    scalars = [cx.I64] * 3 + free_types
    body_fn, used, _ = fb.outlined(f"archir_par_{s.var.name}", [serial], scalars, bounds)
    ptr_types = [a.type for a in body_fn.args[1 + len(scalars):]]
    ctx_type = ir.LiteralStructType([cx.I64.as_pointer(), cx.I64, *free_types,
                                     *([cx.I8.as_pointer()] * len(used))])
    task = _task(fb.module, body_fn, ctx_type, len(free), ptr_types)
    ctx = entry_alloca(b, ctx_type, align=8)
    fields = [fb.dims_ptr, start, *free_values, *(b.bitcast(fb.buffers[n], cx.I8.as_pointer()) for n in used)]
    for k, value in enumerate(fields):
        b.store(value, b.gep(ctx, [cx.i32(0), cx.i32(k)]))
    raw = b.bitcast(ctx, cx.I8.as_pointer())
    big = b.and_(b.icmp_signed(">", n, cx.i64(1)),
                 b.icmp_signed(">=", b.mul(n, work), cx.i64(PARALLEL_MIN_WORK)))
    with b.if_else(big) as (pooled, alone):
        with pooled:
            b.call(parallel_for_function(fb.module), [task, raw, n])
        with alone:
            with b.if_then(b.icmp_signed(">", n, cx.i64(0))):
                b.call(task, [raw, cx.i64(0), n])


def _task(module: ir.Module, body: ir.Function, ctx_type: ir.Type, n_free: int,
          ptr_types: list[ir.Type]) -> ir.Function:
    """`void task(i8* ctx, i64 begin, i64 end)` unpacking ctx into a call of the body function."""
    task = ir.Function(module, TASK_TYPE, module.get_unique_name(f"{body.name}.task"))
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block("entry"))
    raw, begin, end = task.args
    ctx = b.bitcast(raw, ctx_type.as_pointer())
    dims = b.load(b.gep(ctx, [cx.i32(0), cx.i32(0)]))
    base = b.load(b.gep(ctx, [cx.i32(0), cx.i32(1)]))
    free = [b.load(b.gep(ctx, [cx.i32(0), cx.i32(2 + k)])) for k in range(n_free)]
    first = 2 + n_free
    ptrs = [b.bitcast(b.load(b.gep(ctx, [cx.i32(0), cx.i32(first + k)])), t) for k, t in enumerate(ptr_types)]
    b.call(body, [dims, begin, end, base, *free, *ptrs])
    b.ret_void()
    return task
