"""The LLVM backend's thread pool: a persistent pthread pool written in LLVM IR, compiled once.

`runtime_engine()` JITs the pool runtime a single time per process and publishes
`archir_parallel_for`, `archir_set_threads` and `archir_get_threads` with `llvm.add_symbol`, so every
later module that declares them links to the same pool (one pool state, however many modules).
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

import llvmlite.binding as llvm
from archir.backends.llvm.ir_loops import I8_PTR, I32, I64, VOID, counted_loop, i32, i64, smax, smin
from archir.backends.llvm.target import create_module, host_target
from llvmlite import ir

from archir.errors import ArchirError

TASK_TYPE = ir.FunctionType(VOID, [I8_PTR, I64, I64])
PARALLEL_FOR_TYPE = ir.FunctionType(VOID, [TASK_TYPE.as_pointer(), I8_PTR, I64])
MAX_WORKERS = 255
CHUNKS_PER_THREAD = 4  # dynamic chunks: balance without contending on the counter
SPIN_PAUSES = 256  # busy polls (a few microseconds) before a waiting worker starts yielding
SPIN_WAIT = 1 << 11  # polls in all before it sleeps on a futex: back-to-back parallel loops stay hot
NAP_US, NAPS = 100, 1000  # then polls between ~0.1 ms sleeps for ~0.1-0.15 s before the futex
FUTEX_WAIT, FUTEX_WAKE = 128, 129  # the *_PRIVATE variants
FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98}


class ThreadCountError(ArchirError):
    """A thread count that is not a positive integer."""


def compile_module(module: ir.Module) -> llvm.ExecutionEngine:
    """Optimise `module` at O3 for the host and JIT it with MCJIT; keep the engine alive while used."""
    tm = host_target().target_machine(opt=3)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(parsed, pb)
    engine = llvm.create_mcjit_compiler(parsed, tm)
    engine.finalize_object()
    return engine


class _Pool:
    """Globals and libc declarations of the runtime module, and the IR of its functions."""

    def __init__(self, module: ir.Module) -> None:
        self.m = module
        self.arch = module.triple.split("-")[0]
        self.linux = "linux" in module.triple
        g = self._global
        self.threads, self.started, self.gen = g("threads", I32, 1), g("started", I32, 0), g("gen", I32, 0)
        self.sleepers, self.busy = g("sleepers", I32, 0), g("busy", I32, 0)
        self.task = g("task", TASK_TYPE.as_pointer(), None)
        self.ctx, self.n, self.parts = g("ctx", I8_PTR, None), g("n", I64, 0), g("parts", I64, 0)
        self.chunk, self.claim, self.done = g("chunk", I64, 1), g("claim", I64, 0), g("done", I64, 0)
        self.handles = g("handles", ir.ArrayType(I64, MAX_WORKERS + 1), None)
        worker_type = ir.FunctionType(I8_PTR, [I8_PTR])
        self.pthread_create = ir.Function(module, ir.FunctionType(
            I32, [I64.as_pointer(), I8_PTR, worker_type.as_pointer(), I8_PTR]), "pthread_create")
        self.syscall = ir.Function(module, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
        self.usleep = ir.Function(module, ir.FunctionType(I32, [I32]), "usleep")
        self.sched_yield = ir.Function(module, ir.FunctionType(I32, []), "sched_yield")
        self.worker = ir.Function(module, worker_type, "archir_pool_worker")
        self.run_chunks = ir.Function(module, ir.FunctionType(VOID, [I64]), "archir_pool_run_chunks")
        for fn in (self.worker, self.run_chunks):
            fn.linkage = "internal"

    def _global(self, name: str, ty: ir.Type, init: int | None) -> ir.GlobalVariable:
        var = ir.GlobalVariable(self.m, ty, f"archir_pool_{name}")
        var.linkage = "internal"
        var.initializer = ir.Constant(ty, init) if init is not None else ir.Constant(ty, None)
        var.align = 64  # one cache line each: workers poll gen and claim while the caller writes
        return var

    def pause(self, b: ir.IRBuilder) -> None:
        if self.arch == "x86_64":
            # The intrinsic, not inline asm: the JIT has no asm parser initialised.
            pause = self.m.globals.get("llvm.x86.sse2.pause")
            if pause is None:
                pause = ir.Function(self.m, ir.FunctionType(VOID, []), "llvm.x86.sse2.pause")
            b.call(pause, [])

    def futex(self, b: ir.IRBuilder, op: int, value: ir.Value) -> None:
        if self.linux and self.arch in FUTEX_SYSCALL:
            args = [i64(FUTEX_SYSCALL[self.arch]), self.gen, i64(op), b.zext(value, I64),
                    ir.Constant(I8_PTR, None)]
            b.call(self.syscall, args)
        elif op == FUTEX_WAIT:
            b.call(self.usleep, [i32(50)])

    def build_run_chunks(self) -> None:
        """Claim chunks of [0, n) for generation `gen` until none is left: a thread slowed down by
        other load on the machine simply claims fewer. The claim word holds (gen << 32 | next index),
        so a worker waking late can never claim work of a later call."""
        fn = self.run_chunks
        (gen,) = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        task, ctx = self._field(b, self.task), self._field(b, self.ctx)
        n, chunk = self._field(b, self.n), self._field(b, self.chunk)
        first = b.load_atomic(self.claim, "acquire", 8)
        entry = b.block
        head, attempt, ran, done = (b.append_basic_block(s) for s in ("head", "attempt", "ran", "done"))
        b.branch(head)
        b.position_at_end(head)
        word = b.phi(I64)
        word.add_incoming(first, entry)
        begin = b.and_(word, i64(0xFFFFFFFF))
        ours = b.and_(b.icmp_unsigned("==", b.lshr(word, i64(32)), gen), b.icmp_signed("<", begin, n))
        b.cbranch(ours, attempt, done)
        b.position_at_end(attempt)
        pair = b.cmpxchg(self.claim, word, b.add(word, chunk), "acq_rel", "acquire")
        word.add_incoming(b.extract_value(pair, 0), attempt)
        b.cbranch(b.extract_value(pair, 1), ran, head)
        b.position_at_end(ran)
        end = smin(b, b.add(begin, chunk), n)
        b.call(task, [ctx, begin, end])
        b.atomic_rmw("add", self.done, b.sub(end, begin), "release")
        word.add_incoming(b.load_atomic(self.claim, "acquire", 8), ran)
        b.branch(head)
        b.position_at_end(done)
        b.ret_void()

    def _field(self, b: ir.IRBuilder, var: ir.GlobalVariable) -> ir.Value:
        # Atomic (relaxed) because a late worker may read while the next call writes; it then
        # fails to claim anything, so what it read is never used.
        return b.load_atomic(var, "monotonic", 8)

    def _wait_for_new_generation(self, b: ir.IRBuilder, seen: ir.Value) -> None:
        """Spin on the generation counter, then nap between polls, then sleep on it (futex) so
        idle workers cost nothing."""
        spin_done = b.append_basic_block("spin.done")
        with counted_loop(b, 0, SPIN_WAIT, name="spin") as step:
            changed = b.icmp_unsigned("!=", b.load_atomic(self.gen, "acquire", 4), seen)
            nxt = b.append_basic_block("spin.next")
            b.cbranch(changed, spin_done, nxt)
            b.position_at_end(nxt)
            # After a short busy spin, yield: on a loaded machine the thread we wait for may
            # need this very core.
            with b.if_else(b.icmp_signed("<", step, i64(SPIN_PAUSES))) as (busy, polite):
                with busy:
                    self.pause(b)
                with polite:
                    b.call(self.sched_yield, [])
        b.branch(spin_done)
        b.position_at_end(spin_done)
        self._nap(b, seen)
        b.atomic_rmw("add", self.sleepers, i32(1), "seq_cst")
        head, body, out = (b.append_basic_block(s) for s in ("sleep.head", "sleep.body", "sleep.out"))
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(b.icmp_unsigned("==", b.load_atomic(self.gen, "seq_cst", 4), seen), body, out)
        b.position_at_end(body)
        self.futex(b, FUTEX_WAIT, seen)
        b.branch(head)
        b.position_at_end(out)
        b.atomic_rmw("sub", self.sleepers, i32(1), "seq_cst")

    def _nap(self, b: ir.IRBuilder, seen: ir.Value) -> None:
        """Poll the generation between short sleeps for a while before the futex sleep. Measured on
        this 2-vCPU VM (LN chain x[4096,768], 20 ms idle before each call): 4.4 ms median with naps,
        4.2-7.8 ms (median of runs 6.0) without, as a worker woken from its futex after an idle
        spell often waits milliseconds for its CPU; a nap costs a few microseconds of CPU."""
        done = b.append_basic_block("nap.done")
        with counted_loop(b, 0, NAPS, name="nap"):
            changed = b.icmp_unsigned("!=", b.load_atomic(self.gen, "acquire", 4), seen)
            nxt = b.append_basic_block("nap.next")
            b.cbranch(changed, done, nxt)
            b.position_at_end(nxt)
            b.call(self.usleep, [i32(NAP_US)])
        b.branch(done)
        b.position_at_end(done)

    def build_worker(self) -> None:
        """Worker loop: wait for a new generation, then claim chunks of it if it takes part."""
        b = ir.IRBuilder(self.worker.append_basic_block("entry"))
        arg = b.ptrtoint(self.worker.args[0], I64)
        index = b.and_(arg, i64(0xFFFF))
        first_seen = b.trunc(b.lshr(arg, i64(16)), I32)
        entry = b.block
        loop = b.append_basic_block("loop")
        b.branch(loop)
        b.position_at_end(loop)
        seen = b.phi(I32)
        seen.add_incoming(first_seen, entry)
        self._wait_for_new_generation(b, seen)
        current = b.load_atomic(self.gen, "acquire", 4)
        with b.if_then(b.icmp_signed("<", index, self._field(b, self.parts))):
            b.call(self.run_chunks, [b.zext(current, I64)])
        seen.add_incoming(current, b.block)
        b.branch(loop)

    def _start_workers(self, b: ir.IRBuilder, wanted: ir.Value) -> ir.Value:
        """Create workers 1..wanted lazily; returns how many exist (fewer if pthread_create fails)."""
        gen_now = b.zext(b.load(self.gen), I64)
        have = b.zext(b.load(self.started), I64)
        with counted_loop(b, have, wanted, name="spawn") as idx:
            slot = b.gep(self.handles, [i64(0), b.add(idx, i64(1))])
            arg = b.inttoptr(b.or_(b.shl(gen_now, i64(16)), b.add(idx, i64(1))), I8_PTR)
            rc = b.call(self.pthread_create, [slot, ir.Constant(I8_PTR, None), self.worker, arg])
            with b.if_then(b.icmp_signed("==", rc, i32(0))):
                b.store(b.trunc(b.add(idx, i64(1)), I32), self.started)
        return b.zext(b.load(self.started), I64)

    def build_parallel_for(self, fn: ir.Function) -> None:
        task, ctx, n = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with b.if_then(b.icmp_signed("<=", n, i64(0))):
            b.ret_void()
        parts = smin(b, b.zext(b.load(self.threads), I64), n)
        serial = b.append_basic_block("serial")
        try_pool = b.append_basic_block("try_pool")
        # Serial when one thread is asked for, or n does not fit the 32-bit index of the claim word.
        single = b.or_(b.icmp_signed("<=", parts, i64(1)), b.icmp_signed(">", n, i64(2**31 - 1)))
        b.cbranch(single, serial, try_pool)
        b.position_at_end(serial)
        b.call(task, [ctx, i64(0), n])
        b.ret_void()
        b.position_at_end(try_pool)
        # A nested call (from inside a task) or a concurrent one from another thread runs serially.
        got = b.extract_value(b.cmpxchg(self.busy, i32(0), i32(1), "acquire", "monotonic"), 1)
        pooled = b.append_basic_block("pooled")
        b.cbranch(got, pooled, serial)
        b.position_at_end(pooled)
        workers = self._start_workers(b, b.sub(parts, i64(1)))
        parts = smin(b, parts, b.add(workers, i64(1)))
        chunk = smax(b, b.sdiv(n, b.mul(parts, i64(CHUNKS_PER_THREAD))), i64(1))
        for var, value in ((self.task, task), (self.ctx, ctx), (self.n, n), (self.parts, parts),
                           (self.chunk, chunk), (self.done, i64(0))):
            b.store_atomic(value, var, "monotonic", 8)
        gen = b.add(b.load(self.gen), i32(1))
        b.store_atomic(b.shl(b.zext(gen, I64), i64(32)), self.claim, "release", 8)
        b.store_atomic(gen, self.gen, "seq_cst", 4)
        with b.if_then(b.icmp_signed(">", b.load_atomic(self.sleepers, "seq_cst", 4), i32(0))):
            self.futex(b, FUTEX_WAKE, i32(2**31 - 1))
        b.call(self.run_chunks, [b.zext(gen, I64)])
        head, body, done = (b.append_basic_block(s) for s in ("join.head", "join.body", "join.done"))
        b.branch(head)
        b.position_at_end(head)
        # Join on finished indices, not on workers: a worker still asleep is not waited for.
        b.cbranch(b.icmp_signed("<", b.load_atomic(self.done, "acquire", 8), n), body, done)
        b.position_at_end(body)
        self.pause(b)
        b.branch(head)
        b.position_at_end(done)
        b.store_atomic(i32(0), self.busy, "release", 4)
        b.ret_void()

    def build_thread_count(self, setter: ir.Function, getter: ir.Function) -> None:
        b = ir.IRBuilder(setter.append_basic_block())
        (n,) = setter.args
        clamped = b.select(b.icmp_signed("<", n, i32(1)), i32(1), n)
        clamped = b.select(b.icmp_signed(">", clamped, i32(MAX_WORKERS + 1)), i32(MAX_WORKERS + 1), clamped)
        b.store_atomic(clamped, self.threads, "seq_cst", 4)
        b.ret_void()
        b = ir.IRBuilder(getter.append_basic_block())
        b.ret(b.load_atomic(self.threads, "seq_cst", 4))


def _runtime_module() -> ir.Module:
    module = create_module("archir_thread_pool")
    pool = _Pool(module)
    parallel_for = ir.Function(module, PARALLEL_FOR_TYPE, "archir_parallel_for")
    setter = ir.Function(module, ir.FunctionType(VOID, [I32]), "archir_set_threads")
    getter = ir.Function(module, ir.FunctionType(I32, []), "archir_get_threads")
    pool.build_run_chunks()
    pool.build_worker()
    pool.build_parallel_for(parallel_for)
    pool.build_thread_count(setter, getter)
    return module


def _default_threads() -> int:
    text = os.environ.get("ARCHIR_THREADS")
    if text is None:
        return os.cpu_count() or 1
    if not text.strip().isdigit() or int(text) < 1:
        raise ThreadCountError(f"ARCHIR_THREADS={text!r} is not a positive integer",
                               hint="unset it or set it to the number of threads to use, e.g. 2")
    return int(text)


_RUNTIME_LOCK = threading.Lock()


def runtime_engine() -> llvm.ExecutionEngine:
    """The process-wide pool runtime, compiled once; its entry points are published to the JIT."""
    with _RUNTIME_LOCK:  # two Python threads compiling at once must not make two pools
        return _build_runtime()


@functools.cache
def _build_runtime() -> llvm.ExecutionEngine:
    count = _default_threads()  # a bad ARCHIR_THREADS fails before anything is published
    engine = compile_module(_runtime_module())
    for name in ("archir_parallel_for", "archir_set_threads", "archir_get_threads"):
        llvm.add_symbol(name, engine.get_function_address(name))
    _setter(engine)(count)
    return engine


def _setter(engine: llvm.ExecutionEngine) -> ctypes._CFuncPtr:
    return ctypes.CFUNCTYPE(None, ctypes.c_int32)(engine.get_function_address("archir_set_threads"))


def set_threads(n: int) -> None:
    """Use `n` threads (the caller included) for every later parallel loop."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ThreadCountError(f"thread count must be a positive integer, got {n!r}",
                               hint="pass e.g. set_threads(2)")
    _setter(runtime_engine())(min(n, MAX_WORKERS + 1))


def get_threads() -> int:
    """How many threads a parallel loop uses (the caller included)."""
    address = runtime_engine().get_function_address("archir_get_threads")
    return int(ctypes.CFUNCTYPE(ctypes.c_int32)(address)())


def _declare(module: ir.Module, name: str, ty: ir.FunctionType) -> ir.Function:
    runtime_engine()  # the symbol must be published before `module` is JIT-ed
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ty, name)


def parallel_for_function(module: ir.Module) -> ir.Function:
    """`void archir_parallel_for(void (i8*, i64, i64)* task, i8* ctx, i64 n)` declared in `module`."""
    return _declare(module, "archir_parallel_for", PARALLEL_FOR_TYPE)


def set_threads_function(module: ir.Module) -> ir.Function:
    """`void archir_set_threads(i32)` declared in `module`."""
    return _declare(module, "archir_set_threads", ir.FunctionType(VOID, [I32]))


def get_threads_function(module: ir.Module) -> ir.Function:
    """`i32 archir_get_threads()` declared in `module`."""
    return _declare(module, "archir_get_threads", ir.FunctionType(I32, []))
