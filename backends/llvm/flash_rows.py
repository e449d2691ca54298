"""The decode-shaped variant of the flash kernel: one query at a time with the head dim on the
vector lanes, so a query's row, the accumulator and each key / value row are a few vectors and
every key costs D / vw FMAs plus one horizontal sum (a tile of queries on the lanes would waste
all lanes but one when Tq = 1). Needs unit column strides and head sizes a multiple of vw.
"""

from __future__ import annotations

from archir.backends.llvm import codegen_expr as cx
from archir.backends.llvm.flash_kernel import F32, FlashBuilder, FlashConfig
from archir.backends.llvm.ir_loops import counted_loop, entry_alloca, i64, smin, splat
from archir.backends.llvm.vecmath import math_function
from llvmlite import ir

from archir.types import DType


def build_rows(module: ir.Module, fn: ir.Function, cfg: FlashConfig) -> None:
    _RowBuilder(module, fn, cfg).build()


class _RowBuilder(FlashBuilder):
    def build(self) -> None:
        cfg, b = self.cfg, self.b
        scale = self.arguments()
        self.exp1 = math_function(self.module, "exp", F32)
        self.st = self.scratch(-(-cfg.bk // cfg.vw) * cfg.vw, "st")  # one query's scores, then p
        self.out_row = self.scratch(cfg.dv, "orow")
        with counted_loop(b, 0, self.nq_valid, name="qi") as i:
            self.one_query(b.add(self.q0, i), splat(b, scale, cfg.vw))
        b.ret_void()

    def row(self, base: ir.Value, at: ir.Value, c: int) -> ir.Value:
        """Lanes c * vw ... of the unit-stride row starting at base[at], as f32."""
        b, vw, dtype = self.b, self.cfg.vw, self.cfg.dtype
        ptr = b.gep(base, [b.add(at, i64(c * vw))], inbounds=True)
        raw = b.load(b.bitcast(ptr, ir.VectorType(cx.storage_type(dtype), vw).as_pointer()), align=2)
        if dtype == DType.f16:
            return b.fpext(raw, self.vec)
        if dtype == DType.bf16:
            wide = b.zext(raw, ir.VectorType(cx.I32, vw))
            return b.bitcast(b.shl(wide, ir.Constant(ir.VectorType(cx.I32, vw), [16] * vw)), self.vec)
        return raw

    def hsum(self, x: ir.Value) -> ir.Value:
        b, width = self.b, self.cfg.vw
        undef = ir.Constant(self.vec, None)
        while width > 1:
            width //= 2
            upper = [width + k if k < width else k for k in range(self.cfg.vw)]
            x = b.fadd(x, b.shuffle_vector(x, undef, ir.Constant(ir.VectorType(cx.I32, self.cfg.vw), upper)))
        return b.extract_element(x, cx.i32(0))

    def one_query(self, qi: ir.Value, scale: ir.Value) -> None:
        cfg, b = self.cfg, self.b
        qbase, qrs, _ = self.q
        qv = [b.fmul(self.row(qbase, b.mul(qi, qrs), c), scale) for c in range(cfg.d // cfg.vw)]
        acc = [self.var(f"acc{c}", self.zero) for c in range(cfg.dv // cfg.vw)]
        run_max = entry_scalar(self, "m", float("-inf"))
        run_sum = entry_scalar(self, "l", 0.0)
        kend = self.tk
        if cfg.causal:  # query qi sees keys [0, qi + 1 + tk - tq)
            kend = smin(b, self.tk, b.add(b.add(qi, i64(1)), b.sub(self.tk, self.tq)))
        for start, length, k, v in self.segs:  # the softmax state carries across segments
            self.k, self.v = k, v
            stop = smin(b, length, b.sub(kend, start))
            with counted_loop(b, 0, stop, step=cfg.bk, name="kt") as k0:
                self.key_tile(qi, qv, b.add(start, k0), k0, b.sub(stop, k0), acc, run_max, run_sum)
        self.store_row(qi, acc, b.load(run_sum))

    def key_tile(self, qi: ir.Value, qv: list[ir.Value], key0: ir.Value, k0: ir.Value, left: ir.Value,
                 acc: list[ir.Value], run_max: ir.Value, run_sum: ir.Value) -> None:
        """One tile of keys from k0 within the current segment (key0 across segments)."""
        cfg, b = self.cfg, self.b
        nk = smin(b, i64(cfg.bk), left)
        tile_max = self.scores(qi, qv, key0, k0, nk)
        old = b.load(run_max)
        new = b.call(self.vmax_scalar(), [old, tile_max])
        b.store(new, run_max)
        safe = b.select(b.fcmp_ordered("==", new, ir.Constant(F32, float("-inf"))),
                        ir.Constant(F32, 0.0), new)
        alpha = b.call(self.exp1, [b.fsub(old, safe)])
        total = self.probabilities(nk, safe)
        b.store(b.fadd(b.fmul(b.load(run_sum), alpha), total), run_sum)
        self.accumulate_row(acc, k0, nk, splat(b, alpha, cfg.vw))

    def vmax_scalar(self) -> ir.Function:
        return cx.intrinsic(self.module, "maxnum", F32, 2)

    def scores(self, qi: ir.Value, qv: list[ir.Value], key0: ir.Value, k0: ir.Value, nk: ir.Value
               ) -> ir.Value:
        """st[j] = q . k[k0 + j] (+ mask column key0 + j) for j < nk; returns their max."""
        b = self.b
        kbase, krs, _ = self.k
        best = entry_scalar(self, "tmax", float("-inf"))
        with counted_loop(b, 0, nk, name="sj") as j:
            at = b.mul(b.add(k0, j), krs)
            # Two partial sums halve the FMA dependency chain.
            parts = [self.zero, self.zero]
            for c, q in enumerate(qv):
                parts[c % 2] = b.call(self.fma, [q, self.row(kbase, at, c), parts[c % 2]])
            s = self.hsum(b.fadd(parts[0], parts[1]))
            s = self.masked_scalar(s, qi, b.add(key0, j))
            b.store(s, b.gep(self.st, [j], inbounds=True))
            b.store(b.call(self.vmax_scalar(), [b.load(best), s]), best)
        return b.load(best)

    def masked_scalar(self, s: ir.Value, qi: ir.Value, key: ir.Value) -> ir.Value:
        if self.m is None:
            return s
        b = self.b
        base, rs, cs = self.m
        x = self.element(base, b.add(b.mul(qi, rs), b.mul(key, cs)), self.cfg.mask)  # type: ignore[arg-type]
        if self.cfg.mask == DType.bool:
            return b.select(x, s, ir.Constant(F32, float("-inf")))
        return b.fadd(s, x)

    def probabilities(self, nk: ir.Value, safe: ir.Value) -> ir.Value:
        """st[j] = exp(st[j] - safe) a vector at a time (the tail padded with -inf); returns the sum."""
        cfg, b = self.cfg, self.b
        with counted_loop(b, nk, b.mul(b.sdiv(b.add(nk, i64(cfg.vw - 1)), i64(cfg.vw)), i64(cfg.vw)),
                          name="pad") as j:
            b.store(ir.Constant(F32, float("-inf")), b.gep(self.st, [j], inbounds=True))
        total = self.var("psum", self.zero)
        shift = splat(b, safe, cfg.vw)
        with counted_loop(b, 0, nk, step=cfg.vw, name="pe") as j:
            p = b.call(self.exp, [b.fsub(self.vload(self.st, j), shift)])
            self.vstore(p, self.st, j)
            b.store(b.fadd(b.load(total), p), total)
        return self.hsum(b.load(total))

    def accumulate_row(self, acc: list[ir.Value], k0: ir.Value, nk: ir.Value, alpha: ir.Value) -> None:
        b = self.b
        vbase, vrs, _ = self.v
        for slot in acc:
            b.store(b.fmul(b.load(slot), alpha), slot)
        with counted_loop(b, 0, nk, name="pj") as j:
            p = splat(b, b.load(b.gep(self.st, [j], inbounds=True)), self.cfg.vw)
            at = b.mul(b.add(k0, j), vrs)
            for c, slot in enumerate(acc):
                b.store(b.call(self.fma, [p, self.row(vbase, at, c), b.load(slot)]), slot)

    def store_row(self, qi: ir.Value, acc: list[ir.Value], total: ir.Value) -> None:
        """out[qi] = acc / total, or 0 when the query saw no key."""
        cfg, b = self.cfg, self.b
        inv = b.select(b.fcmp_ordered("==", total, ir.Constant(F32, 0.0)), ir.Constant(F32, 0.0),
                       b.fdiv(ir.Constant(F32, 1.0), total))
        for c, slot in enumerate(acc):
            self.vstore(b.fmul(b.load(slot), splat(b, inv, cfg.vw)), self.out_row, c * cfg.vw)
        base, rs, cs = self.o
        row = b.gep(base, [b.mul(qi, rs)])
        with counted_loop(b, 0, cfg.dv, name="od") as d:
            x = b.load(b.gep(self.out_row, [d], inbounds=True))
            b.store(self.to_storage(x, cfg.dtype), b.gep(row, [b.mul(d, cs)]))


def entry_scalar(fb: FlashBuilder, name: str, init: float) -> ir.Value:
    """A scalar f32 local set to `init` here (SROA keeps it in a register)."""
    slot = entry_alloca(fb.b, F32, align=4, name=name)
    fb.b.store(ir.Constant(F32, init), slot)
    return slot
