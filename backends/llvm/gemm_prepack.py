"""GEMM with a B operand packed once (constant weights): the packing function, the small-M path of
the prepacked GEMM (N split over the threads, A packed once, one fork-join per call), and the
per-weight wrappers that pack a graph parameter on first use into a buffer the module frees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archir.backends.llvm.gemm_kernel import GemmBlocking, build_pack_b, default_blocking
from archir.backends.llvm.gemm_skinny import build_skinny_kernels, cheapest_full_rows, tail_blocking
from archir.backends.llvm.ir_loops import (
    F32,
    F32_PTR,
    I8_PTR,
    I32,
    I64,
    VOID,
    ceil_div,
    counted_loop,
    entry_alloca,
    i64,
    smax,
    smin,
)
from archir.backends.llvm.target import host_target
from archir.backends.llvm.threads import TASK_TYPE, parallel_for_function
from llvmlite import ir

if TYPE_CHECKING:
    from archir.backends.llvm.gemm import _GemmBuilder

SKINNY_ROW_TILES = 4  # M up to this many micro-tiles (24 rows with AVX2) takes the small-M path
STACK_A_FLOATS = 1 << 14  # whole-K packed A up to 64 KiB lives on the stack
PACK_B_TYPE = ir.FunctionType(VOID, [I64, I64, F32_PTR, I64, I64, F32_PTR])
GEMM_ARGS = [I64, I64, I64, F32_PTR, I64, I64, F32_PTR, I64, I64, F32_PTR, I64, I32]
PACKED_PREFIX = "archir_packed_b."
RELEASE = "archir_release_packed"


def packed_b_floats(n: int, k: int, blocking: GemmBlocking | None = None) -> int:
    """Floats in pack_b_function's output for a K x N operand: whole-K panels of nr columns."""
    blk = blocking or default_blocking(host_target().vector_width_f32)
    return -(-n // blk.nr) * blk.nr * max(k, 1)


def _libc(module: ir.Module, name: str, ret: ir.Type, params: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(ret, params), name)


def pack_b_function(module: ir.Module, name: str, *, blocking: GemmBlocking | None = None) -> ir.Function:
    """Define `void name(i64 N, i64 K, float* B, i64 rsB, i64 csB, float* dst)`: B (K x N, strided)
    into `packed_b_floats(N, K)` floats at dst, panel p (columns p*nr..) at dst + p*K*nr, row k of
    it at + k*nr, columns past N zero; the layout `gemm_function(prepacked_b=True)` reads. dst must
    be 64-byte aligned (both sides use aligned vector loads and stores)."""
    blk = blocking or default_blocking(host_target().vector_width_f32)
    fn = ir.Function(module, PACK_B_TYPE, name)
    pack = ir.Function(module, ir.FunctionType(VOID, [I64, I64, I64, F32_PTR, I64, I64, F32_PTR, I64]),
                       f"{name}.panels")
    pack.linkage = "internal"
    build_pack_b(pack, blk)
    n, k, src, rs, cs, dst = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(pack, [k, i64(0), ceil_div(b, n, blk.nr), src, rs, cs, dst, n])
    b.ret_void()
    return fn


class SkinnyGemm:
    """Small M with prepacked B: A packed whole-K once by the caller, then one task per column panel
    runs all of K (kc blocks, so a B block stays in L1 across the few row tiles): B streams once
    from memory and the pool is woken once, not once per k block."""

    def __init__(self, gb: _GemmBuilder) -> None:
        self.gb, self.blk = gb, gb.blk
        self.max_m = SKINNY_ROW_TILES * self.blk.mr
        self.pack_a = gb.pack_a  # any kc: here the whole of K
        self.task = gb._internal("skinny_task", TASK_TYPE)
        # Rows past the last full tile run in narrow tail tiles; both kernels prefetch B.
        self.tail_mr = tail_blocking(self.blk).mr
        epilogue = gb.epilogue.emit if gb.epilogue else None
        self.kernel, self.tail, self.pack_tail = build_skinny_kernels(
            gb.m, gb.name, self.blk, gb.ukernel.function_type, epilogue)
        self._build_task()

    def _full_rows(self, b: ir.IRBuilder, M: ir.Value) -> ir.Value:
        """Rows covered by full tiles (a multiple of mr, maybe past M); tail tiles cover the rest."""
        return cheapest_full_rows(b, M, self.blk.mr, self.tail_mr)

    def _build_task(self) -> None:
        gb, blk = self.gb, self.blk
        mr, nr = blk.mr, blk.nr
        b = ir.IRBuilder(self.task.append_basic_block("entry"))
        raw_ctx, begin, end = self.task.args
        f = gb._load_fields(b, raw_ctx)
        M, K = f["M"], f["K"]
        accumulate = b.icmp_signed("!=", f["beta"], i64(0))
        extra = [f[f"extra{i}"] for i in range(gb.n_extra)]
        with counted_loop(b, begin, end, name="jp") as jp:
            col = b.mul(jp, i64(nr))
            nvalid = smin(b, i64(nr), b.sub(f["N"], col))
            panel = b.gep(f["Bp"], [b.mul(col, K)])
            entry = b.block
            body, done = b.append_basic_block("pc.body"), b.append_basic_block("pc.done")
            b.branch(body)
            b.position_at_end(body)
            pc = b.phi(I64, "pc")  # do-while: runs once for K == 0 so C is still written
            pc.add_incoming(i64(0), entry)
            kc = smin(b, i64(blk.kc), b.sub(K, pc))
            nxt = b.add(pc, kc)
            beta = b.or_(b.icmp_signed(">", pc, i64(0)), accumulate)
            last = b.icmp_signed(">=", nxt, K)
            b_block = b.gep(panel, [b.mul(pc, i64(nr))])
            full = self._full_rows(b, M)
            tiles = ((self.kernel, mr, i64(0), full), (self.tail, self.tail_mr, full, M))
            for kernel, rows, start, stop in tiles:
                with counted_loop(b, start, stop, step=rows, name="ir") as row:
                    a_panel = b.gep(f["Ap"], [b.add(b.mul(row, K), b.mul(pc, i64(rows)))])
                    c_tile = b.gep(f["C"], [b.add(b.mul(row, f["rsC"]), col)])
                    mvalid = smin(b, i64(rows), b.sub(M, row))
                    b.call(kernel, [kc, a_panel, b_block, c_tile, f["rsC"], mvalid, nvalid, beta, last,
                                    row, col, *extra])
            pc.add_incoming(nxt, b.block)
            b.cbranch(b.icmp_signed("<", nxt, K), body, done)
            b.position_at_end(done)
        b.ret_void()

    def emit(self, b: ir.IRBuilder, ctx: ir.Value, accumulate: ir.Value, serial: ir.Value) -> None:
        """In the driver: when M is small, run this path and return."""
        gb, blk = self.gb, self.blk
        fields = dict(zip(["M", "N", "K", "A", "rsA", "csA", "B"], gb.fn.args[:7], strict=True))
        M, K = fields["M"], fields["K"]
        with b.if_then(b.icmp_signed("<=", M, i64(self.max_m))):
            full = self._full_rows(b, M)
            rows = b.add(full, b.mul(ceil_div(b, b.sub(M, full), self.tail_mr), i64(self.tail_mr)))
            packed_a, heap = self._alloc(b, b.mul(rows, smax(b, K, i64(1))))
            # Tile t (of r rows, starting at row) at packed_a + row * K, stored k-major, r per k.
            packs = ((self.pack_a, blk.mr, i64(0), full), (self.pack_tail, self.tail_mr, full, M))
            for pack, r, start, stop in packs:
                with counted_loop(b, start, stop, step=r, name="q") as row:
                    src = b.gep(fields["A"], [b.mul(row, fields["rsA"])])
                    dst = b.gep(packed_a, [b.mul(row, K)])
                    b.call(pack, [K, smin(b, i64(r), b.sub(M, row)), src, fields["rsA"], fields["csA"], dst])
            for name, value in (("Ap", packed_a), ("Bp", fields["B"]), ("beta", b.zext(accumulate, I64))):
                b.store(value, gb._field_ptr(b, ctx, name))
            raw = b.bitcast(ctx, I8_PTR)
            npanels = ceil_div(b, fields["N"], blk.nr)
            with b.if_else(serial) as (one_thread, pool):
                with one_thread:
                    b.call(self.task, [raw, i64(0), npanels])
                with pool:
                    b.call(parallel_for_function(gb.m), [self.task, raw, npanels])
            with b.if_then(heap):
                b.call(_libc(gb.m, "free", VOID, [I8_PTR]), [b.bitcast(packed_a, I8_PTR)])
            b.ret_void()

    def _alloc(self, b: ir.IRBuilder, floats: ir.Value) -> tuple[ir.Value, ir.Value]:
        stack = entry_alloca(b, F32, STACK_A_FLOATS)
        heap = b.icmp_signed(">", floats, i64(STACK_A_FLOATS))
        with b.if_else(heap) as (big, small):
            with big:
                aligned_alloc = _libc(b.module, "aligned_alloc", I8_PTR, [I64, I64])
                size = b.mul(ceil_div(b, floats, 16), i64(64))
                from_heap = b.bitcast(b.call(aligned_alloc, [i64(64), size]), F32_PTR)
                heap_block = b.block
            with small:
                stack_block = b.block
        buffer = b.phi(F32_PTR)
        buffer.add_incoming(from_heap, heap_block)
        buffer.add_incoming(stack, stack_block)
        return buffer, heap


# -- graph parameters as B: packed on first use, freed by archir_release_packed -----------------
def param_gemm_function(module: ir.Module, key: str, *, gemm: ir.Function | None = None,
                        tag: str = "") -> ir.Function:
    """`void archir_gemm_param.<key><tag>(gemm arguments)`: packs B into the module-owned slot
    `archir_packed_b.<key>` on the first call (a compare-and-swap, so two racing first calls agree on
    one buffer), then runs the prepacked GEMM. B must be constant for the module's life.
    `gemm`: a prepacked GEMM with an epilogue instead (its extra arguments are passed through; the
    packed weight is shared with the other epilogues on the same key)."""
    name = f"archir_gemm_param.{key}{tag}"
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    gemm, pack = gemm or _shared(module, "archir_gemm_prepacked"), _shared(module, "archir_pack_b")
    slot = module.globals.get(f"{PACKED_PREFIX}{key}")
    if slot is None:
        slot = ir.GlobalVariable(module, F32_PTR, f"{PACKED_PREFIX}{key}")
        slot.linkage = "internal"
        slot.initializer = ir.Constant(F32_PTR, None)
    fn = ir.Function(module, ir.FunctionType(VOID, [*GEMM_ARGS, *gemm.function_type.args[12:]]), name)
    fn.linkage = "internal"
    M, N, K, A, rsA, csA, B, rsB, csB, C, rsC, acc = fn.args[:12]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    current = b.load_atomic(slot, "acquire", 8)
    ready = b.block
    with b.if_then(b.icmp_unsigned("==", current, ir.Constant(F32_PTR, None)), likely=False):
        floats = b.mul(b.mul(ceil_div(b, N, _blocking().nr), i64(_blocking().nr)), smax(b, K, i64(1)))
        aligned_alloc = _libc(module, "aligned_alloc", I8_PTR, [I64, I64])
        fresh = b.bitcast(b.call(aligned_alloc, [i64(64), b.mul(ceil_div(b, floats, 16), i64(64))]), F32_PTR)
        b.call(pack, [N, K, B, rsB, csB, fresh])
        swap = b.cmpxchg(slot, ir.Constant(F32_PTR, None), fresh, "acq_rel", "acquire")
        won = b.extract_value(swap, 1)
        with b.if_then(b.not_(won)):
            b.call(_libc(module, "free", VOID, [I8_PTR]), [b.bitcast(fresh, I8_PTR)])
        winner = b.select(won, fresh, b.extract_value(swap, 0))
        packed_block = b.block
    packed = b.phi(F32_PTR)
    packed.add_incoming(current, ready)
    packed.add_incoming(winner, packed_block)
    b.call(gemm, [M, N, K, A, rsA, csA, packed, i64(0), i64(0), C, rsC, acc, *fn.args[12:]])
    b.ret_void()
    return fn


def _blocking() -> GemmBlocking:
    return default_blocking(host_target().vector_width_f32)


def _shared(module: ir.Module, name: str) -> ir.Function:
    """The one prepacked GEMM / B packer per module, internal (each module owns its copies)."""
    from archir.backends.llvm.gemm import gemm_function

    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fn = gemm_function(module, name, prepacked_b=True) if name == "archir_gemm_prepacked" else \
        pack_b_function(module, name)
    fn.linkage = "internal"
    return fn


def release_function(module: ir.Module) -> ir.Function:
    """`void archir_release_packed()`: frees every packed weight of the module (called by the Python
    module when it is collected); define it after all GEMM calls are generated."""
    fn = ir.Function(module, ir.FunctionType(VOID, []), RELEASE)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    free = _libc(module, "free", VOID, [I8_PTR])
    null = ir.Constant(F32_PTR, None)
    for gv in list(module.global_values):
        if isinstance(gv, ir.GlobalVariable) and gv.name.startswith(PACKED_PREFIX):
            b.call(free, [b.bitcast(b.load(gv), I8_PTR)])  # free(NULL) is a no-op
            b.store(null, gv)
    b.ret_void()
    return fn
