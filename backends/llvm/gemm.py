"""Packed, register-blocked, multi-threaded f32 GEMM for the LLVM backend (BLIS-style loop nest).

`gemm_function` defines `void name(M, N, K, A, rsA, csA, B, rsB, csB, C, rsC, accumulate, *extra)`:
C[i, j] (= or +=) sum_k A[i*rsA + k*csA] * B[k*rsB + j*csB], with an optional epilogue at the last store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from archir.backends.llvm.gemm_conv import ConvGeometry, build_pack_conv
from archir.backends.llvm.gemm_kernel import (
    EpilogueEmit,
    GemmBlocking,
    MicroKernel,
    build_pack_a,
    build_pack_b,
    default_blocking,
)
from archir.backends.llvm.gemm_prepack import SkinnyGemm
from archir.backends.llvm.ir_loops import (
    F32,
    F32_PTR,
    I1,
    I8_PTR,
    I32,
    I64,
    VOID,
    ceil_div,
    counted_loop,
    entry_alloca,
    i32,
    i64,
    smax,
    smin,
)
from archir.backends.llvm.target import host_target
from archir.backends.llvm.threads import TASK_TYPE, get_threads_function, parallel_for_function
from llvmlite import ir

SERIAL_LIMIT = 1 << 18  # M*N*K below which waking the pool costs more than it saves
STACK_B_FLOATS = 1 << 14  # packed-B buffers up to 64 KiB live on the stack, larger ones are malloc'd
BASE_ARGS = ["M", "N", "K", "A", "rsA", "csA", "B", "rsB", "csB", "C", "rsC"]
LOOP_FIELDS = ["beta", "last", "Bp", "jc", "nc", "pc", "kc", "mc", "nsplit", "Ap"]


@dataclass(frozen=True, slots=True)
class Epilogue:
    """Code applied to each accumulator vector at the final store of C (bias, activation, residual).

    `emit(builder, acc, row, col, lanes, extra)` returns the vector to store: `row` is the C row,
    `col` the first of its columns, `lanes` (i64) how many lanes are valid (<= vector width: the
    rest are not stored, so loads by the epilogue must be masked to them); `extra` are the values
    of `arg_types`, appended as parameters of the GEMM function (e.g. a bias pointer).
    """

    emit: EpilogueEmit
    arg_types: tuple[ir.Type, ...] = field(default=())


def _as_epilogue(epilogue: Epilogue | Callable[..., ir.Value] | None) -> Epilogue | None:
    if epilogue is None or isinstance(epilogue, Epilogue):
        return epilogue
    plain = epilogue  # (builder, acc, row, col, lanes) without extra arguments
    return Epilogue(emit=lambda b, acc, row, col, lanes, extra: plain(b, acc, row, col, lanes))


class _GemmBuilder:
    """Builds the driver, the two parallel tasks and the kernels of one GEMM function."""

    def __init__(self, module: ir.Module, name: str, epilogue: Epilogue | None, blk: GemmBlocking,
                 prepacked_b: bool = False, conv: ConvGeometry | None = None) -> None:
        self.m, self.name, self.blk, self.epilogue = module, name, blk, epilogue
        self.prepacked_b = prepacked_b  # B is already in pack_b_function's layout: never pack it
        self.conv = conv  # B is an image read through this convolution window (gemm_conv)
        extra = list(epilogue.arg_types) if epilogue else []
        base_types = [I64, I64, I64, F32_PTR, I64, I64, F32_PTR, I64, I64, F32_PTR, I64]
        self.fields = BASE_ARGS + LOOP_FIELDS + [f"extra{i}" for i in range(len(extra))]
        loop_types = [I64, I64, F32_PTR] + [I64] * 6 + [F32_PTR]
        self.ctx_type = ir.LiteralStructType(base_types + loop_types + extra)
        self.fn = ir.Function(module, ir.FunctionType(VOID, [*base_types, I32, *extra]), name)
        self.n_extra = len(extra)
        ukernel_args = [I64, F32_PTR, F32_PTR, F32_PTR, I64, I64, I64, ir.IntType(1), ir.IntType(1), I64, I64]
        self.ukernel = self._internal("ukernel", ir.FunctionType(VOID, ukernel_args + extra))
        pack_type = ir.FunctionType(VOID, [I64, I64, F32_PTR, I64, I64, F32_PTR])
        self.pack_a = self._internal("pack_a", pack_type)
        pack_b_type = ir.FunctionType(VOID, [I64, I64, I64, F32_PTR, I64, I64, F32_PTR, I64])
        self.pack_b = self._internal("pack_b", pack_b_type)
        self.pack_b_task = self._internal("pack_b_task", TASK_TYPE)
        self.compute_task = self._internal("compute_task", TASK_TYPE)

    def _internal(self, suffix: str, ty: ir.FunctionType) -> ir.Function:
        fn = ir.Function(self.m, ty, f"{self.name}.{suffix}")
        fn.linkage = "internal"
        return fn

    def build(self) -> ir.Function:
        build_pack_a(self.pack_a, self.blk)
        if self.conv is None:
            build_pack_b(self.pack_b, self.blk)
        else:
            build_pack_conv(self.pack_b, self.blk, self.conv)
        MicroKernel(self.ukernel, self.blk, self.epilogue.emit if self.epilogue else None).build()
        self.skinny = SkinnyGemm(self) if self.prepacked_b else None
        self._build_pack_b_task()
        self._build_compute_task()
        self._build_driver()
        return self.fn

    def _field_ptr(self, b: ir.IRBuilder, ctx: ir.Value, name: str) -> ir.Value:
        return b.gep(ctx, [i32(0), i32(self.fields.index(name))])

    def _load_fields(self, b: ir.IRBuilder, raw_ctx: ir.Value) -> dict[str, ir.Value]:
        ctx = b.bitcast(raw_ctx, self.ctx_type.as_pointer())
        return {name: b.load(self._field_ptr(b, ctx, name), name=name) for name in self.fields}

    def _build_pack_b_task(self) -> None:
        b = ir.IRBuilder(self.pack_b_task.append_basic_block("entry"))
        raw_ctx, begin, end = self.pack_b_task.args
        f = self._load_fields(b, raw_ctx)
        if self.conv is not None:  # the conv packer takes the block's first row and column instead
            b.call(self.pack_b, [f["kc"], begin, end, f["B"], f["pc"], f["jc"], f["Bp"], f["nc"]])
            b.ret_void()
            return
        src = b.gep(f["B"], [b.add(b.mul(f["pc"], f["rsB"]), b.mul(f["jc"], f["csB"]))])
        b.call(self.pack_b, [f["kc"], begin, end, src, f["rsB"], f["csB"], f["Bp"], f["nc"]])
        b.ret_void()

    def _build_compute_task(self) -> None:
        """Work unit u = (row block u / nsplit, share u % nsplit of the column panels)."""
        b = ir.IRBuilder(self.compute_task.append_basic_block("entry"))
        raw_ctx, begin, end = self.compute_task.args
        blk = self.blk
        a_packed = entry_alloca(b, F32, blk.mc * blk.kc)  # per thread: each runs this on its own stack
        f = self._load_fields(b, raw_ctx)
        npanels = ceil_div(b, f["nc"], blk.nr)
        with counted_loop(b, begin, end, name="u") as u:
            ic = b.mul(b.sdiv(u, f["nsplit"]), f["mc"])
            share = b.srem(u, f["nsplit"])
            mc = smin(b, f["mc"], b.sub(f["M"], ic))
            jp0 = b.sdiv(b.mul(share, npanels), f["nsplit"])
            jp1 = b.sdiv(b.mul(b.add(share, i64(1)), npanels), f["nsplit"])
            with b.if_then(b.and_(b.icmp_signed("<", jp0, jp1), b.icmp_signed(">", mc, i64(0)))):
                self._pack_a_block(b, f, a_packed, ic, mc)
                self._panel_loops(b, f, a_packed, ic, mc, jp0, jp1)
        b.ret_void()

    def _pack_a_block(self, b: ir.IRBuilder, f: dict[str, ir.Value], dst: ir.Value, ic: ir.Value,
                      mc: ir.Value) -> None:
        mr = self.blk.mr
        src0 = b.gep(f["A"], [b.mul(f["pc"], f["csA"])])
        with counted_loop(b, 0, ceil_div(b, mc, mr), name="q") as q:
            row = b.mul(q, i64(mr))
            src = b.gep(src0, [b.mul(b.add(ic, row), f["rsA"])])
            out = b.gep(dst, [b.mul(row, f["kc"])])
            b.call(self.pack_a, [f["kc"], smin(b, i64(mr), b.sub(mc, row)), src, f["rsA"], f["csA"], out])

    def _panel_loops(self, b: ir.IRBuilder, f: dict[str, ir.Value], a_packed: ir.Value, ic: ir.Value,
                     mc: ir.Value, jp0: ir.Value, jp1: ir.Value) -> None:
        """jr over B micro-panels (stays in L1), ir over A micro-panels (streamed from L2)."""
        mr, nr = self.blk.mr, self.blk.nr
        beta = b.icmp_signed("!=", f["beta"], i64(0))
        last = b.icmp_signed("!=", f["last"], i64(0))
        extra = [f[f"extra{i}"] for i in range(self.n_extra)]
        with counted_loop(b, jp0, jp1, name="jp") as jp:
            col_in_block = b.mul(jp, i64(nr))
            col = b.add(f["jc"], col_in_block)
            nvalid = smin(b, i64(nr), b.sub(f["nc"], col_in_block))
            if self.prepacked_b:  # whole-K panels: panel p at p * K * nr, k block pc at pc * nr inside
                b_panel = b.gep(f["Bp"], [b.add(b.mul(col, f["K"]), b.mul(f["pc"], i64(nr)))])
            else:
                b_panel = b.gep(f["Bp"], [b.mul(col_in_block, f["kc"])])
            with counted_loop(b, 0, mc, step=mr, name="ir") as row_in_block:
                row = b.add(ic, row_in_block)
                a_panel = b.gep(a_packed, [b.mul(row_in_block, f["kc"])])
                c_tile = b.gep(f["C"], [b.add(b.mul(row, f["rsC"]), col)])
                mvalid = smin(b, i64(mr), b.sub(mc, row_in_block))
                b.call(self.ukernel, [f["kc"], a_panel, b_panel, c_tile, f["rsC"], mvalid, nvalid, beta, last,
                                      row, col, *extra])

    def _build_driver(self) -> None:
        fn, blk = self.fn, self.blk
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        args = dict(zip(BASE_ARGS, fn.args[:11], strict=True))
        M, N, K = args["M"], args["N"], args["K"]
        with b.if_then(b.or_(b.icmp_signed("<=", M, i64(0)), b.icmp_signed("<=", N, i64(0)))):
            b.ret_void()
        ctx = entry_alloca(b, self.ctx_type)
        for name, value in zip(self.fields[:11], fn.args[:11], strict=True):
            b.store(value, self._field_ptr(b, ctx, name))
        for i in range(self.n_extra):
            b.store(fn.args[12 + i], self._field_ptr(b, ctx, f"extra{i}"))
        accumulate = b.icmp_signed("!=", fn.args[11], i32(0))
        threads = b.zext(b.call(get_threads_function(self.m), []), I64)
        serial = b.or_(b.icmp_signed("<", b.mul(b.mul(M, N), K), i64(SERIAL_LIMIT)),
                       b.icmp_signed("<=", threads, i64(1)))
        if self.skinny is not None:
            self.skinny.emit(b, ctx, accumulate, serial)
        if self.prepacked_b:
            packed_b, heap = args["B"], ir.Constant(I1, 0)
        else:
            packed_b, heap = self._alloc_packed_b(b, N, K)
        b.store(packed_b, self._field_ptr(b, ctx, "Bp"))
        # Equal row blocks of at most mc rows (rounded to mr), so threads get equal shares.
        n_ic = ceil_div(b, M, blk.mc)
        mc = b.mul(ceil_div(b, ceil_div(b, M, n_ic), blk.mr), i64(blk.mr))
        n_ic = ceil_div(b, M, mc)
        b.store(mc, self._field_ptr(b, ctx, "mc"))
        split = b.select(b.icmp_signed("==", b.srem(n_ic, threads), i64(0)), i64(1), threads)
        with counted_loop(b, 0, N, step=blk.nc, name="jc") as jc:
            nc = smin(b, i64(blk.nc), b.sub(N, jc))
            npanels = ceil_div(b, nc, blk.nr)
            nsplit = smin(b, split, npanels)
            for name, value in (("jc", jc), ("nc", nc), ("nsplit", nsplit)):
                b.store(value, self._field_ptr(b, ctx, name))
            self._k_blocks(b, ctx, K, accumulate, serial, npanels, b.mul(n_ic, nsplit))
        with b.if_then(heap):
            b.call(self._libc("free", VOID, [I8_PTR]), [b.bitcast(packed_b, I8_PTR)])
        b.ret_void()

    def _k_blocks(self, b: ir.IRBuilder, ctx: ir.Value, K: ir.Value, accumulate: ir.Value, serial: ir.Value,
                  npanels: ir.Value, units: ir.Value) -> None:
        """do { pack B block; compute } while (pc < K): runs once even for K == 0 so C is written."""
        entry = b.block
        body, done = b.append_basic_block("pc.body"), b.append_basic_block("pc.done")
        b.branch(body)
        b.position_at_end(body)
        pc = b.phi(I64, "pc")
        pc.add_incoming(i64(0), entry)
        kc = smin(b, i64(self.blk.kc), b.sub(K, pc))
        beta = b.or_(b.icmp_signed(">", pc, i64(0)), accumulate)
        nxt = b.add(pc, kc)
        values = (("pc", pc), ("kc", kc), ("beta", b.zext(beta, I64)),
                  ("last", b.zext(b.icmp_signed(">=", nxt, K), I64)))
        for name, value in values:
            b.store(value, self._field_ptr(b, ctx, name))
        raw = b.bitcast(ctx, I8_PTR)
        tasks = [(self.compute_task, units)]
        if not self.prepacked_b:
            tasks.insert(0, (self.pack_b_task, npanels))
        for task, count in tasks:
            with b.if_else(serial) as (one_thread, pool):
                with one_thread:
                    b.call(task, [raw, i64(0), count])
                with pool:
                    b.call(parallel_for_function(self.m), [task, raw, count])
        pc.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, K), body, done)
        b.position_at_end(done)

    def _alloc_packed_b(self, b: ir.IRBuilder, N: ir.Value, K: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Room for one kc x nc block of packed B: on the stack when small, else aligned_alloc."""
        blk = self.blk
        kc = smax(b, smin(b, K, i64(blk.kc)), i64(1))
        width = b.mul(ceil_div(b, smin(b, N, i64(blk.nc)), blk.nr), i64(blk.nr))
        floats = b.mul(kc, width)
        stack = entry_alloca(b, F32, STACK_B_FLOATS)
        heap = b.icmp_signed(">", floats, i64(STACK_B_FLOATS))
        with b.if_else(heap) as (big, small):
            with big:
                aligned_alloc = self._libc("aligned_alloc", I8_PTR, [I64, I64])
                raw = b.call(aligned_alloc, [i64(64), b.mul(ceil_div(b, floats, 16), i64(64))])
                from_heap = b.bitcast(raw, F32_PTR)
                heap_block = b.block
            with small:
                stack_block = b.block
        buffer = b.phi(F32_PTR)
        buffer.add_incoming(from_heap, heap_block)
        buffer.add_incoming(stack, stack_block)
        return buffer, heap

    def _libc(self, name: str, ret: ir.Type, params: list[ir.Type]) -> ir.Function:
        existing = self.m.globals.get(name)
        if isinstance(existing, ir.Function):
            return existing
        return ir.Function(self.m, ir.FunctionType(ret, params), name)


def gemm_function(module: ir.Module, name: str, *, epilogue: Epilogue | Callable[..., ir.Value] | None = None,
                  blocking: GemmBlocking | None = None, prepacked_b: bool = False,
                  conv: ConvGeometry | None = None) -> ir.Function:
    """Define `void name(i64 M, i64 N, i64 K, float* A, i64 rsA, i64 csA, float* B, i64 rsB, i64 csB,
    float* C, i64 rsC, i32 accumulate, *epilogue.arg_types)` in `module`; it splits its work over the
    thread pool itself. `blocking` overrides the tile and cache-block sizes (for tuning).

    `prepacked_b`: B points at `pack_b_function`'s output for the same blocking (rsB, csB unused), as
    for a weight packed once; small M then takes a path that splits N over the threads.
    `conv`: B is an image (B points at its first channel, rsB and csB unused) read through this
    convolution's window, K = taps, N = output positions (implicit GEMM, gemm_conv.py)."""
    blk = blocking or default_blocking(host_target().vector_width_f32)
    return _GemmBuilder(module, name, _as_epilogue(epilogue), blk, prepacked_b, conv).build()
