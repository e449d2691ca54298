"""Micro-kernels for the small-M path of the prepacked GEMM (gemm_prepack.SkinnyGemm): the register
tile of the stock kernel plus a narrow tail tile, so M = 8 computes 6 + 2 rows rather than 6 + 6, and
both prefetch the packed B stream a fixed distance ahead (a decode step's weights come from DRAM).
"""

from __future__ import annotations

from dataclasses import replace

from archir.backends.llvm.gemm_kernel import EpilogueEmit, GemmBlocking, MicroKernel, build_pack_a
from archir.backends.llvm.ir_loops import F32_PTR, I32, I64, ceil_div, i32, i64, smax
from llvmlite import ir

# Rows of the tail tile: with nv = 2 its 8 accumulators still cover the FMA latency (a 2-row tile
# has only 4 and runs at half speed), and B reloads after a full tile come from L1.
TAIL_ROWS = 4
# Bytes of packed B fetched ahead of the k loop: whole-K panels are contiguous and each k step
# reads one nr-wide row, so this runs a fixed number of k steps (16 with nr = 16) ahead, across
# k blocks and panels alike. Measured 512..2048 B all help; 1 KiB was best (loaded 2-core host).
PREFETCH_BYTES = 1024


def tail_blocking(blk: GemmBlocking) -> GemmBlocking:
    """The tail tile: TAIL_ROWS rows of the same width."""
    rows = min(TAIL_ROWS, blk.mr)
    return replace(blk, mr=rows, mc=blk.mc - blk.mc % rows)


def cheapest_full_rows(b: ir.IRBuilder, M: ir.Value, mr: int, tail: int) -> ir.Value:
    """Rows to run as full mr-row tiles (a multiple of mr, possibly past M) so that full tiles plus
    tail tiles for the remaining rows compute the fewest rows (both tiles run at full FMA rate, so
    cost ~ rows computed): M = 8 with mr = 6, tail = 4 runs 4 + 4, not 6 + 4 or 6 + 6."""
    q = b.sdiv(M, i64(mr))
    rem = b.sub(M, b.mul(q, i64(mr)))

    def tails(rows: ir.Value) -> ir.Value:
        return b.mul(ceil_div(b, rows, tail), i64(tail))

    # (full rows, rows computed): q tiles + tails; q + 1 tiles; q - 1 tiles + tails for the rest.
    options = [(b.mul(q, i64(mr)), b.add(b.mul(q, i64(mr)), tails(rem))),
               (b.mul(b.add(q, i64(1)), i64(mr)), b.mul(b.add(q, i64(1)), i64(mr))),
               (b.mul(smax(b, b.sub(q, i64(1)), i64(0)), i64(mr)),
                b.add(b.mul(b.sub(q, i64(1)), i64(mr)), tails(b.add(rem, i64(mr)))))]
    valid = [ir.Constant(ir.IntType(1), 1), b.icmp_signed(">", rem, i64(0)), b.icmp_signed(">", q, i64(0))]
    best, cost = options[0]
    for (rows, c), ok in zip(options[1:], valid[1:], strict=True):
        better = b.and_(ok, b.icmp_signed("<", c, cost))
        best, cost = b.select(better, rows, best), b.select(better, c, cost)
    return best


class StreamingKernel(MicroKernel):
    """The stock micro-kernel (same signature, stores and epilogue) whose k loop also prefetches
    packed B PREFETCH_BYTES ahead."""

    def __init__(self, fn: ir.Function, blk: GemmBlocking, epilogue: EpilogueEmit | None) -> None:
        super().__init__(fn, blk, epilogue)
        self.prefetch = fn.module.globals.get("llvm.prefetch.p0") or ir.Function(
            fn.module, ir.FunctionType(ir.VoidType(), [F32_PTR, I32, I32, I32]), "llvm.prefetch.p0")

    def _before_loads(self, b: ir.IRBuilder, b_ptr: ir.Value) -> None:
        # read, high locality: the tail tile re-reads this B row right after the full tile
        b.call(self.prefetch, [b.gep(b_ptr, [i64(PREFETCH_BYTES // 4)]), i32(0), i32(3), i32(1)])


def build_skinny_kernels(module: ir.Module, prefix: str, blk: GemmBlocking, ukernel_type: ir.FunctionType,
                         epilogue: EpilogueEmit | None) -> tuple[ir.Function, ir.Function, ir.Function]:
    """(full-tile kernel, tail-tile kernel, tail A packer), internal functions named `prefix.*`;
    the kernels take the stock micro-kernel's arguments, the packer `build_pack_a`'s."""
    tail = tail_blocking(blk)
    fns = []
    for suffix, ty in (("skinny_kernel", ukernel_type), ("skinny_tail", ukernel_type),
                       ("skinny_pack_tail", ir.FunctionType(ir.VoidType(), [I64, I64, F32_PTR, I64, I64,
                                                                              F32_PTR]))):
        fn = ir.Function(module, ty, f"{prefix}.{suffix}")
        fn.linkage = "internal"
        fns.append(fn)
    StreamingKernel(fns[0], blk, epilogue).build()
    StreamingKernel(fns[1], tail, epilogue).build()
    build_pack_a(fns[2], tail)
    return fns[0], fns[1], fns[2]
