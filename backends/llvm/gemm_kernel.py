"""IR builders for the parts of the packed GEMM: blocking sizes, packing of A and B, micro-kernel.

The micro-kernel keeps an MR x NR tile of C in vector registers and runs one rank-1 update per k
with llvm.fma; packing pads edge panels with zeros so it always runs full tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archir.backends.llvm.ir_loops import (
    F32,
    F32_PTR,
    I1,
    I32,
    I64,
    counted_loop,
    entry_alloca,
    i32,
    i64,
    smax,
    smin,
    splat,
)
from llvmlite import ir

from archir.errors import ArchirError

# (builder, acc vector, row index, first column, valid lanes, extra arguments) -> vector to store
EpilogueEmit = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value, ir.Value, Sequence[ir.Value]], ir.Value]


class GemmBlockingError(ArchirError):
    """Tile or cache-block sizes the GEMM cannot use."""


@dataclass(frozen=True, slots=True)
class GemmBlocking:
    """Register tile (mr x nr, nr = nv vectors of vw floats) and cache blocks (kc, mc, nc)."""

    vw: int
    mr: int
    nv: int
    kc: int
    mc: int
    nc: int

    def __post_init__(self) -> None:
        # The packed-A buffer holds mc x kc floats and row blocks are rounded up to mr rows.
        if min(self.vw, self.mr, self.nv, self.kc, self.mc, self.nc) < 1 or self.mc % self.mr:
            raise GemmBlockingError(f"bad GEMM blocking {self}",
                                    hint="all sizes positive, mc a multiple of mr")

    @property
    def nr(self) -> int:
        return self.nv * self.vw


def default_blocking(vector_width: int) -> GemmBlocking:
    """Tile sizes for the vector width: mr * nv accumulators + nv B vectors + 1 broadcast registers."""
    if vector_width >= 16:  # 32 zmm registers: 14 x 2 accumulators
        return GemmBlocking(vw=vector_width, mr=14, nv=2, kc=256, mc=140, nc=4096)
    # 16 ymm registers: 6 x 2 accumulators; kc x nr of B fills half of a 32 KiB L1, mc x kc of A
    # about a third of the 512 KiB L2 (kc 256..512 x mc 72..240 measured within noise of this).
    return GemmBlocking(vw=vector_width, mr=6, nv=2, kc=256, mc=144, nc=4080)


def _vec_ptr(b: ir.IRBuilder, ptr: ir.Value, vw: int) -> ir.Value:
    return b.bitcast(ptr, ir.VectorType(F32, vw).as_pointer())


def _intrinsic(module: ir.Module, name: str, ty: ir.FunctionType) -> ir.Function:
    existing = module.globals.get(name)
    return existing if isinstance(existing, ir.Function) else ir.Function(module, ty, name)


def masked_load(b: ir.IRBuilder, ptr: ir.Value, lanes: ir.Value, vw: int) -> ir.Value:
    """Load the first `lanes` floats at ptr (the rest read as 0) without touching memory past them."""
    vec, mask = ir.VectorType(F32, vw), ir.VectorType(I1, vw)
    fn = _intrinsic(b.module, f"llvm.masked.load.v{vw}f32.p0",
                    ir.FunctionType(vec, [F32_PTR, I32, mask, vec]))
    iota = ir.Constant(ir.VectorType(I64, vw), list(range(vw)))
    keep = b.icmp_signed("<", iota, splat(b, lanes, vw))
    return b.call(fn, [ptr, i32(4), keep, ir.Constant(vec, None)])


def masked_store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, lanes: ir.Value, vw: int) -> None:
    vec, mask = ir.VectorType(F32, vw), ir.VectorType(I1, vw)
    fn = _intrinsic(b.module, f"llvm.masked.store.v{vw}f32.p0",
                    ir.FunctionType(ir.VoidType(), [vec, F32_PTR, I32, mask]))
    iota = ir.Constant(ir.VectorType(I64, vw), list(range(vw)))
    b.call(fn, [value, ptr, i32(4), b.icmp_signed("<", iota, splat(b, lanes, vw))])


def build_pack_b(fn: ir.Function, blk: GemmBlocking) -> None:
    """`pack_b(kc, p0, p1, src, rsB, csB, dst, nc)`: panels [p0, p1) of a kc x nc block of B into
    kc x NR panels at dst (panel p at dst + p*kc*NR); columns past nc are zeroed."""
    kc, p0, p1, src, rs, cs, dst, nc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    nr, vw = blk.nr, blk.vw
    with b.if_else(b.icmp_signed("==", cs, i64(1))) as (rows_contiguous, general):
        with rows_contiguous:
            # Row by row: reads stream along each row of B; writes fill whole cache lines.
            with counted_loop(b, 0, kc, name="k") as k:
                row = b.gep(src, [b.mul(k, rs)])
                with counted_loop(b, p0, p1, name="p") as p:
                    col = b.mul(p, i64(nr))
                    out = b.gep(dst, [b.add(b.mul(col, kc), b.mul(k, i64(nr)))])
                    lanes = b.sub(nc, col)
                    for v in range(blk.nv):
                        ptr = b.gep(row, [b.add(col, i64(v * vw))])
                        lanes_v = b.sub(lanes, i64(v * vw))
                        full = b.icmp_signed(">=", lanes_v, i64(vw))
                        with b.if_else(full) as (whole, tail):
                            with whole:
                                val = b.load(_vec_ptr(b, ptr, vw), align=4)
                                b.store(val, _vec_ptr(b, b.gep(out, [i64(v * vw)]), vw), align=32)
                            with tail:
                                val = masked_load(b, ptr, smax(b, lanes_v, i64(0)), vw)
                                b.store(val, _vec_ptr(b, b.gep(out, [i64(v * vw)]), vw), align=32)
        with general:
            # Column by column: with a transposed B (rsB == 1) each column is a contiguous read.
            with counted_loop(b, b.mul(p0, i64(nr)), b.mul(p1, i64(nr)), name="j") as j:
                panel_out = b.gep(dst, [b.mul(b.sub(j, b.srem(j, i64(nr))), kc)])
                lane = b.srem(j, i64(nr))
                col = b.gep(src, [b.mul(j, cs)])
                inside = b.icmp_signed("<", j, nc)
                with counted_loop(b, 0, kc, name="k") as k:
                    target = b.gep(panel_out, [b.add(b.mul(k, i64(nr)), lane)])
                    with b.if_else(inside) as (copy, zero):
                        with copy:
                            b.store(b.load(b.gep(col, [b.mul(k, rs)])), target)
                        with zero:
                            b.store(ir.Constant(F32, 0.0), target)
    b.ret_void()


def build_pack_a(fn: ir.Function, blk: GemmBlocking) -> None:
    """`pack_a(kc, mvalid, src, rsA, csA, dst)`: one MR x kc panel stored k-major, rows past mvalid zeroed."""
    kc, mvalid, src, rs, cs, dst = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    mr = blk.mr
    with b.if_else(b.icmp_signed("==", mvalid, i64(mr))) as (full, partial):
        with full:
            rows = [b.gep(src, [b.mul(i64(i), rs)]) for i in range(mr)]
            with counted_loop(b, 0, kc, name="k") as k:
                koff = b.mul(k, cs)
                out = b.gep(dst, [b.mul(k, i64(mr))])
                for i in range(mr):
                    b.store(b.load(b.gep(rows[i], [koff])), b.gep(out, [i64(i)]))
        with partial:
            with counted_loop(b, 0, kc, name="k") as k:
                out = b.gep(dst, [b.mul(k, i64(mr))])
                with counted_loop(b, 0, mr, name="i") as i:
                    with b.if_else(b.icmp_signed("<", i, mvalid)) as (load_it, zero_it):
                        with load_it:
                            value = b.load(b.gep(src, [b.add(b.mul(i, rs), b.mul(k, cs))]))
                            b.store(value, b.gep(out, [i]))
                        with zero_it:
                            b.store(ir.Constant(F32, 0.0), b.gep(out, [i]))
    b.ret_void()


class MicroKernel:
    """Builds `ukernel(kc, Ap, Bp, C, rsC, mr, nr, beta, last, row, col, *extra)`.

    beta: add into C (else overwrite); last: this is the final k block, so apply the epilogue.
    """

    def __init__(self, fn: ir.Function, blk: GemmBlocking, epilogue: EpilogueEmit | None) -> None:
        self.fn, self.blk, self.epilogue = fn, blk, epilogue
        self.vec = ir.VectorType(F32, blk.vw)
        self.fma = _intrinsic(fn.module, f"llvm.fma.v{blk.vw}f32",
                              ir.FunctionType(self.vec, [self.vec, self.vec, self.vec]))

    def build(self) -> None:
        b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self._prefetch_c(b)
        accs = self._k_loop(b)
        _, _, _, _, _, mr, nr, beta, last, *_ = self.fn.args
        full = b.and_(b.icmp_signed("==", mr, i64(self.blk.mr)), b.icmp_signed("==", nr, i64(self.blk.nr)))
        with b.if_else(full) as (full_tile, edge_tile):
            with full_tile:
                if self.epilogue is None:
                    self._store_full(b, accs, beta, False)
                else:
                    with b.if_else(last) as (with_epilogue, plain):
                        with with_epilogue:
                            self._store_full(b, accs, beta, True)
                        with plain:
                            self._store_full(b, accs, beta, False)
            with edge_tile:
                self._store_edge(b, accs, beta, last)
        b.ret_void()

    def _prefetch_c(self, b: ir.IRBuilder) -> None:
        """Start fetching the C tile now: its rows are far apart and rarely cached, and the k loop
        is long enough to hide the miss before the tile is loaded and stored at the end."""
        c, rs_c, mr = self.fn.args[3], self.fn.args[4], self.fn.args[5]
        prefetch = _intrinsic(b.module, "llvm.prefetch.p0",
                              ir.FunctionType(ir.VoidType(), [F32_PTR, I32, I32, I32]))
        last_col = i64(self.blk.nr - 1)
        for r in range(self.blk.mr):
            row = b.gep(c, [b.mul(smin(b, i64(r), b.sub(mr, i64(1))), rs_c)])
            for ptr in (row, b.gep(row, [last_col])):
                b.call(prefetch, [ptr, i32(1), i32(3), i32(1)])

    def _k_loop(self, b: ir.IRBuilder) -> list[list[ir.Value]]:
        """The rank-1 update loop; accumulators live in phis so they stay in registers."""
        kc, ap, bp = self.fn.args[0], self.fn.args[1], self.fn.args[2]
        blk = self.blk
        zero = ir.Constant(self.vec, None)
        entry = b.block
        head, body, done = (b.append_basic_block(s) for s in ("k.head", "k.body", "k.done"))
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64, "k")
        a_ptr, b_ptr = b.phi(F32_PTR, "a"), b.phi(F32_PTR, "b")
        accs = [[b.phi(self.vec, f"c{r}_{v}") for v in range(blk.nv)] for r in range(blk.mr)]
        k.add_incoming(i64(0), entry)
        a_ptr.add_incoming(ap, entry)
        b_ptr.add_incoming(bp, entry)
        for row in accs:
            for acc in row:
                acc.add_incoming(zero, entry)
        b.cbranch(b.icmp_signed("<", k, kc), body, done)
        b.position_at_end(body)
        self._before_loads(b, b_ptr)
        bvecs = [b.load(_vec_ptr(b, b.gep(b_ptr, [i64(v * blk.vw)]), blk.vw), align=32)
                 for v in range(blk.nv)]
        for r in range(blk.mr):
            a = splat(b, b.load(b.gep(a_ptr, [i64(r)]), align=4), blk.vw)
            for v in range(blk.nv):
                accs[r][v].add_incoming(b.call(self.fma, [a, bvecs[v], accs[r][v]]), body)
        k.add_incoming(b.add(k, i64(1)), body)
        a_ptr.add_incoming(b.gep(a_ptr, [i64(blk.mr)]), body)
        b_ptr.add_incoming(b.gep(b_ptr, [i64(blk.nr)]), body)
        b.branch(head)
        b.position_at_end(done)
        return [list(row) for row in accs]

    def _before_loads(self, b: ir.IRBuilder, b_ptr: ir.Value) -> None:
        """A hook at the top of each k step, before B's vectors are loaded (subclasses prefetch)."""

    def _finish(self, b: ir.IRBuilder, acc: ir.Value, old: ir.Value, beta: ir.Value, epilogue: bool,
                row: ir.Value, col: ir.Value, lanes: ir.Value) -> ir.Value:
        value = b.fadd(acc, b.select(beta, old, ir.Constant(self.vec, None)))
        if epilogue and self.epilogue is not None:
            value = self.epilogue(b, value, row, col, lanes, list(self.fn.args[11:]))
        return value

    def _store_full(self, b: ir.IRBuilder, accs: list[list[ir.Value]], beta: ir.Value,
                    epilogue: bool) -> None:
        c, rs_c, row0, col0 = self.fn.args[3], self.fn.args[4], self.fn.args[9], self.fn.args[10]
        vw = self.blk.vw
        for r in range(self.blk.mr):
            row_ptr = b.gep(c, [b.mul(i64(r), rs_c)])
            for v in range(self.blk.nv):
                ptr = _vec_ptr(b, b.gep(row_ptr, [i64(v * vw)]), vw)
                old = b.load(ptr, align=4)
                value = self._finish(b, accs[r][v], old, beta, epilogue, b.add(row0, i64(r)),
                                     b.add(col0, i64(v * vw)), i64(vw))
                b.store(value, ptr, align=4)

    def _store_edge(self, b: ir.IRBuilder, accs: list[list[ir.Value]], beta: ir.Value,
                    last: ir.Value) -> None:
        """Partial tile: spill the accumulators, then masked stores of the valid rows and lanes only."""
        c, rs_c, mr, nr, row0, col0 = (self.fn.args[i] for i in (3, 4, 5, 6, 9, 10))
        blk = self.blk
        tile = entry_alloca(b, self.vec, blk.mr * blk.nv)
        for r in range(blk.mr):
            for v in range(blk.nv):
                b.store(accs[r][v], b.gep(tile, [i64(r * blk.nv + v)]))
        with counted_loop(b, 0, mr, name="r") as r:
            row_ptr = b.gep(c, [b.mul(r, rs_c)])
            for v in range(blk.nv):
                lanes = smin(b, b.sub(nr, i64(v * blk.vw)), i64(blk.vw))
                with b.if_then(b.icmp_signed(">", lanes, i64(0))):
                    ptr = b.gep(row_ptr, [i64(v * blk.vw)])
                    acc = b.load(b.gep(tile, [b.add(b.mul(r, i64(blk.nv)), i64(v))]))
                    old = masked_load(b, ptr, lanes, blk.vw)
                    row, col = b.add(row0, r), b.add(col0, i64(v * blk.vw))
                    plain = self._finish(b, acc, old, beta, False, row, col, lanes)
                    if self.epilogue is not None:
                        with_epi = self._finish(b, acc, old, beta, True, row, col, lanes)
                        plain = b.select(last, with_epi, plain)
                    masked_store(b, plain, ptr, lanes, blk.vw)
