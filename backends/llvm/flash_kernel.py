"""The flash-attention tile kernel of the LLVM backend, written directly as llvmlite IR: one call
computes the output of a tile of queries against all the keys it may see, with online softmax.

Queries lie on the vector lanes (Q^T is packed, scaled, into a small stack buffer), so keys and
values are read with scalar broadcasts at any strides and dtype; scores, probabilities and the
accumulator are per-tile stack scratch. No buffer grows with Tq x Tk.
"""

from __future__ import annotations

from dataclasses import dataclass

from archir.backends.llvm import codegen_expr as cx
from archir.backends.llvm.ir_loops import counted_loop, entry_alloca, i64, smin, splat
from archir.backends.llvm.vecmath import math_function
from llvmlite import ir

from archir.types import DType

F32 = ir.FloatType()
I64 = ir.IntType(64)
MR_OF_NV = {1: 8, 2: 6}


@dataclass(frozen=True, slots=True)
class FlashConfig:
    """What one kernel is specialised on; `key` names it in a loop-IR `Call` ("flash.<key>")."""

    dtype: DType  # of q, k, v and the output (computed in f32)
    d: int  # head size of q and k
    dv: int  # head size of v
    causal: bool
    mask: DType | None  # bool (True = attend), the float dtype (added) or no mask
    vw: int  # f32 lanes per vector
    nv: int  # vectors of queries per tile: the tile holds nv * vw queries
    bk: int  # keys per tile
    by_row: bool = False  # one query at a time with the head dim on the lanes (decode steps)
    segments: int = 1  # keys / values come as this many pieces along the key axis (a concat)

    @property
    def nq(self) -> int:
        return self.nv * self.vw

    @property
    def mr(self) -> int:
        """Rows of the register tile: mr x nv accumulators plus nv + 1 operand vectors fit the
        16 ymm registers (at least 8 accumulators hide the FMA latency)."""
        return MR_OF_NV.get(self.nv, 1)

    @property
    def key(self) -> str:
        mask = "none" if self.mask is None else self.mask.name
        return (f"{self.dtype.name}_d{self.d}_dv{self.dv}_c{int(self.causal)}_m{mask}_vw{self.vw}"
                f"_nv{self.nv}_bk{self.bk}_r{int(self.by_row)}"
                + (f"_s{self.segments}" if self.segments > 1 else ""))

    @staticmethod
    def parse(key: str) -> FlashConfig:
        dtype, d, dv, causal, mask, vw, nv, bk, by_row, *segments = key.split("_")
        return FlashConfig(DType[dtype], int(d[1:]), int(dv[2:]), causal == "c1",
                           None if mask == "mnone" else DType[mask[1:]], int(vw[2:]), int(nv[2:]),
                           int(bk[2:]), by_row == "r1", int(segments[0][1:]) if segments else 1)


def flash_function(module: ir.Module, key: str) -> ir.Function:
    """`void archir_flash_<key>(i64 q0, i64 tq, i64 tk, float scale, q*, i64 rs, i64 cs, k*, rs, cs,
    v*, rs, cs, out*, rs, cs[, mask*, rs, cs], (i64 len, k*, rs, cs, v*, rs, cs) per extra segment)`:
    rows [q0, q0 + nq) of one head's output. Keys [0, tk) are the segments one after the other (k,
    v first: tk minus the extra lengths); mask and causal columns count keys across segments."""
    name = f"archir_flash_{key}"
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    cfg = FlashConfig.parse(key)
    ptr = cx.storage_type(cfg.dtype).as_pointer()
    operands = [ptr, I64, I64] * 4
    if cfg.mask is not None:
        operands += [cx.storage_type(cfg.mask).as_pointer(), I64, I64]
    operands += [I64, ptr, I64, I64, ptr, I64, I64] * (cfg.segments - 1)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64, I64, I64, F32, *operands]), name)
    fn.linkage = "internal"
    if cfg.by_row:
        from archir.backends.llvm.flash_rows import build_rows

        build_rows(module, fn, cfg)
    else:
        FlashBuilder(module, fn, cfg).build()
    return fn


class FlashBuilder(cx.ExprBuilder):
    def __init__(self, module: ir.Module, fn: ir.Function, cfg: FlashConfig) -> None:
        super().__init__(module, ir.IRBuilder(fn.append_basic_block("entry")))
        self.fn, self.cfg = fn, cfg
        self.vec = ir.VectorType(F32, cfg.vw)
        self.fma = _intrinsic(module, f"llvm.fma.v{cfg.vw}f32", self.vec, 3)
        self.vmax = _intrinsic(module, f"llvm.maxnum.v{cfg.vw}f32", self.vec, 2)
        self.exp = math_function(module, "exp", self.vec)
        self.neg_inf = ir.Constant(self.vec, [float("-inf")] * cfg.vw)
        self.zero = ir.Constant(self.vec, [0.0] * cfg.vw)

    # -- small helpers -----------------------------------------------------------------------------
    def scratch(self, floats: int, name: str) -> ir.Value:
        return entry_alloca(self.b, F32, floats, align=64, name=name)

    def vptr(self, base: ir.Value, index: ir.Value | int) -> ir.Value:
        at = self.b.gep(base, [i64(index) if isinstance(index, int) else index], inbounds=True)
        return self.b.bitcast(at, self.vec.as_pointer())

    def vload(self, base: ir.Value, index: ir.Value | int) -> ir.Value:
        return self.b.load(self.vptr(base, index), align=32)

    def vstore(self, value: ir.Value, base: ir.Value, index: ir.Value | int) -> None:
        self.b.store(value, self.vptr(base, index), align=32)

    def element(self, base: ir.Value, index: ir.Value, dtype: DType) -> ir.Value:
        """base[index] as f32 (bool as i1)."""
        return self.from_storage(self.b.load(self.b.gep(base, [index], inbounds=True)), dtype)

    def lanes(self, first: ir.Value) -> ir.Value:
        """<first, first + 1, ...> as i64 lanes."""
        ty = ir.VectorType(I64, self.cfg.vw)
        return self.b.add(splat(self.b, first, self.cfg.vw), ir.Constant(ty, list(range(self.cfg.vw))))

    def var(self, name: str, init: ir.Value) -> ir.Value:
        """A vector local (SROA turns it into a register across loops)."""
        slot = entry_alloca(self.b, self.vec, align=32, name=name)
        self.b.store(init, slot)
        return slot

    # -- the kernel ------------------------------------------------------------------------------
    def arguments(self) -> ir.Value:
        """Unpack the function's arguments; returns the scale."""
        q0, tq, tk, scale, *rest = self.fn.args
        self.q, self.k, self.v, self.o = (rest[3 * n: 3 * n + 3] for n in range(4))
        self.m = rest[12:15] if self.cfg.mask is not None else None
        self.q0, self.tq, self.tk = q0, tq, tk
        extra = rest[15 if self.m is not None else 12:]
        lengths = [extra[7 * s] for s in range(self.cfg.segments - 1)]
        first = tk
        for length in lengths:
            first = self.b.sub(first, length)
        # (first key, key count, k, v) of each segment
        self.segs = [(i64(0), first, self.k, self.v)]
        for s, length in enumerate(lengths):
            start, prev = self.segs[-1][0], self.segs[-1][1]
            self.segs.append((self.b.add(start, prev), length, extra[7 * s + 1: 7 * s + 4],
                              extra[7 * s + 4: 7 * s + 7]))
        self.nq_valid = smin(self.b, i64(self.cfg.nq), self.b.sub(tq, q0))
        return scale

    def build(self) -> None:
        cfg, b = self.cfg, self.b
        scale = self.arguments()
        self.qt = self.scratch(cfg.d * cfg.nq, "qt")  # Q^T * scale, d-major, queries on lanes
        # Scores then probabilities, key-major; the last register tile may run past bk rows.
        self.st = self.scratch(-(-cfg.bk // cfg.mr) * cfg.mr * cfg.nq, "st")
        self.acc = self.scratch(cfg.dv * cfg.nq, "acc")  # output^T, dv-major
        self.pack_q(scale)
        with counted_loop(b, 0, cfg.dv * cfg.nv, name="zero") as z:
            self.vstore(self.zero, self.acc, b.mul(z, i64(cfg.vw)))
        self.run_max = [self.var(f"m{c}", self.neg_inf) for c in range(cfg.nv)]
        self.run_sum = [self.var(f"l{c}", self.zero) for c in range(cfg.nv)]
        kend, q0, tq, tk = self.tk, self.q0, self.tq, self.tk
        if cfg.causal:  # the last query of the tile sees keys up to q0 + nq - 1 + tk - tq
            kend = smin(b, tk, b.add(b.add(q0, self.nq_valid), b.sub(tk, tq)))
        for start, length, k, v in self.segs:
            # The softmax state carries across segments; k0 counts keys within the segment.
            self.k, self.v = k, v
            stop = smin(b, length, b.sub(kend, start))
            with counted_loop(b, 0, stop, step=cfg.bk, name="kt") as k0:
                nk = smin(b, i64(cfg.bk), b.sub(stop, k0))
                self.scores(k0, nk)
                self.softmax_step(b.add(start, k0), nk)
                self.accumulate(k0, nk)
        self.write_out()
        b.ret_void()

    def pack_q(self, scale: ir.Value) -> None:
        """qt[d, lane] = q[q0 + lane, d] * scale; lanes past the last query repeat it (never stored)."""
        cfg, b = self.cfg, self.b
        base, rs, cs = self.q
        with counted_loop(b, 0, cfg.nq, name="lane") as lane:
            row = b.gep(base, [b.mul(b.add(self.q0, smin(b, lane, b.sub(self.nq_valid, i64(1)))), rs)])
            with counted_loop(b, 0, cfg.d, name="d") as d:
                x = b.fmul(self.element(row, b.mul(d, cs), cfg.dtype), scale)
                b.store(x, b.gep(self.qt, [b.add(b.mul(d, i64(cfg.nq)), lane)], inbounds=True))

    def scores(self, k0: ir.Value, nk: ir.Value) -> None:
        """st[j, :] = k[k0 + j] . Q^T (k0 within the segment) for j < nk, in register tiles of mr keys
        x nq queries."""
        cfg, b = self.cfg, self.b
        base, rs, cs = self.k
        last = b.sub(nk, i64(1))
        with counted_loop(b, 0, nk, step=cfg.mr, name="jb") as jb:
            # Rows past nk re-read the last key (in bounds); their scores are never used.
            rows = [b.gep(base, [b.mul(b.add(k0, smin(b, b.add(jb, i64(r)), last)), rs)])
                    for r in range(cfg.mr)]
            accs = [[self.var(f"s{r}_{c}", self.zero) for c in range(cfg.nv)] for r in range(cfg.mr)]
            with counted_loop(b, 0, cfg.d, name="sd") as d:
                qv = [self.vload(self.qt, b.add(b.mul(d, i64(cfg.nq)), i64(c * cfg.vw)))
                      for c in range(cfg.nv)]
                at = b.mul(d, cs)
                for r in range(cfg.mr):
                    kb = splat(b, self.element(rows[r], at, cfg.dtype), cfg.vw)
                    for c in range(cfg.nv):
                        b.store(b.call(self.fma, [kb, qv[c], b.load(accs[r][c])]), accs[r][c])
            for r in range(cfg.mr):
                for c in range(cfg.nv):
                    at = b.add(b.mul(b.add(jb, i64(r)), i64(cfg.nq)), i64(c * cfg.vw))
                    self.vstore(b.load(accs[r][c]), self.st, at)

    def masked(self, s: ir.Value, key: ir.Value, c: int) -> ir.Value:
        """Scores of lane block c for `key` with the causal rule and the mask applied."""
        cfg, b = self.cfg, self.b
        first = b.add(self.q0, i64(c * cfg.vw))
        if cfg.causal:  # key <= query + tk - tq
            limit = self.lanes(b.add(first, b.sub(self.tk, self.tq)))
            keep = b.icmp_signed("<=", splat(b, key, cfg.vw), limit)
            s = b.select(keep, s, self.neg_inf)
        if self.m is None:
            return s
        base, rs, cs = self.m
        col = b.gep(base, [b.mul(key, cs)])
        last = b.sub(self.tq, i64(1))
        vals: ir.Value = ir.Constant(self.vec, None)
        keeps: ir.Value = ir.Constant(ir.VectorType(cx.I1, cfg.vw), None)
        for lane in range(cfg.vw):
            row = b.mul(smin(b, b.add(first, i64(lane)), last), rs)
            x = self.element(col, row, self.cfg.mask)  # type: ignore[arg-type]
            if cfg.mask == DType.bool:
                keeps = b.insert_element(keeps, x, cx.i32(lane))
            else:
                vals = b.insert_element(vals, x, cx.i32(lane))
        if cfg.mask == DType.bool:
            return b.select(keeps, s, self.neg_inf)
        return b.fadd(s, vals)

    def softmax_step(self, k0: ir.Value, nk: ir.Value) -> None:
        """Mask the tile's scores (k0 counts keys across segments), update running max and sum, turn
        scores into probabilities and rescale the accumulator by exp(old max - new max)."""
        cfg, b = self.cfg, self.b
        tile_max = [self.var(f"tm{c}", self.neg_inf) for c in range(cfg.nv)]
        with counted_loop(b, 0, nk, name="mj") as j:
            for c in range(cfg.nv):
                at = b.add(b.mul(j, i64(cfg.nq)), i64(c * cfg.vw))
                s = self.masked(self.vload(self.st, at), b.add(k0, j), c)
                self.vstore(s, self.st, at)
                b.store(b.call(self.vmax, [b.load(tile_max[c]), s]), tile_max[c])
        safe, alpha = [], []
        for c in range(cfg.nv):
            old = b.load(self.run_max[c])
            new = b.call(self.vmax, [old, b.load(tile_max[c])])
            b.store(new, self.run_max[c])
            # A query that has seen no key yet keeps max -inf: subtract 0 so exp gives 0, not nan.
            safe.append(b.select(b.fcmp_ordered("==", new, self.neg_inf), self.zero, new))
            alpha.append(b.call(self.exp, [b.fsub(old, safe[c])]))
        sums = [self.var(f"ts{c}", self.zero) for c in range(cfg.nv)]
        with counted_loop(b, 0, nk, name="ej") as j:
            for c in range(cfg.nv):
                at = b.add(b.mul(j, i64(cfg.nq)), i64(c * cfg.vw))
                p = b.call(self.exp, [b.fsub(self.vload(self.st, at), safe[c])])
                self.vstore(p, self.st, at)
                b.store(b.fadd(b.load(sums[c]), p), sums[c])
        for c in range(cfg.nv):
            total = b.call(self.fma, [b.load(self.run_sum[c]), alpha[c], b.load(sums[c])])
            b.store(total, self.run_sum[c])
        self.alpha = alpha

    def accumulate(self, k0: ir.Value, nk: ir.Value) -> None:
        """acc[dv, :] = acc[dv, :] * alpha + sum_j v[k0 + j, dv] * p[j, :]."""
        cfg, b = self.cfg, self.b
        full = cfg.dv // cfg.mr * cfg.mr
        if full:
            with counted_loop(b, 0, full, step=cfg.mr, name="db") as db:
                self.accumulate_rows(k0, nk, db, cfg.mr)
        if cfg.dv > full:
            self.accumulate_rows(k0, nk, i64(full), cfg.dv - full)

    def accumulate_rows(self, k0: ir.Value, nk: ir.Value, db: ir.Value, rows: int) -> None:
        cfg, b = self.cfg, self.b
        base, rs, cs = self.v
        at = [[b.add(b.mul(b.add(db, i64(r)), i64(cfg.nq)), i64(c * cfg.vw)) for c in range(cfg.nv)]
              for r in range(rows)]
        accs = [[self.var(f"a{r}_{c}", b.fmul(self.vload(self.acc, at[r][c]), self.alpha[c]))
                 for c in range(cfg.nv)] for r in range(rows)]
        cols = [b.mul(b.add(db, i64(r)), cs) for r in range(rows)]
        with counted_loop(b, 0, nk, name="pj") as j:
            pv = [self.vload(self.st, b.add(b.mul(j, i64(cfg.nq)), i64(c * cfg.vw))) for c in range(cfg.nv)]
            row = b.gep(base, [b.mul(b.add(k0, j), rs)])
            for r in range(rows):
                vb = splat(b, self.element(row, cols[r], cfg.dtype), cfg.vw)
                for c in range(cfg.nv):
                    b.store(b.call(self.fma, [vb, pv[c], b.load(accs[r][c])]), accs[r][c])
        for r in range(rows):
            for c in range(cfg.nv):
                self.vstore(b.load(accs[r][c]), self.acc, at[r][c])

    def write_out(self) -> None:
        """out[q0 + i, dv] = acc[dv, i] / sum[i]; a query that saw no key (sum 0) gets 0."""
        cfg, b = self.cfg, self.b
        inv = []
        for c in range(cfg.nv):
            total = b.load(self.run_sum[c])
            recip = b.fdiv(ir.Constant(self.vec, [1.0] * cfg.vw), total)
            inv.append(b.select(b.fcmp_ordered("==", total, self.zero), self.zero, recip))
        with counted_loop(b, 0, cfg.dv, name="nd") as d:
            for c in range(cfg.nv):
                at = b.add(b.mul(d, i64(cfg.nq)), i64(c * cfg.vw))
                self.vstore(b.fmul(self.vload(self.acc, at), inv[c]), self.acc, at)
        base, rs, cs = self.o
        with counted_loop(b, 0, self.nq_valid, name="oi") as i:
            row = b.gep(base, [b.mul(b.add(self.q0, i), rs)])
            with counted_loop(b, 0, cfg.dv, name="od") as d:
                x = b.load(b.gep(self.acc, [b.add(b.mul(d, i64(cfg.nq)), i)], inbounds=True))
                b.store(self.to_storage(x, cfg.dtype), b.gep(row, [b.mul(d, cs)]))


def _intrinsic(module: ir.Module, name: str, ty: ir.Type, nargs: int) -> ir.Function:
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(ty, [ty] * nargs), name)
