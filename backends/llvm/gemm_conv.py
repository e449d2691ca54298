"""Implicit-GEMM convolution: the packed GEMM whose B packer reads the input image through the
convolution window, so no im2col buffer is written or read. B[k, j] is x[c, oh*s - p + kh*d,
ow*s - p + kw*d] (0 outside the image) for tap k = (c, kh, kw) and output position j = (oh, ow);
each kc x nc block is packed straight from x (a few hundred KiB per image, cache resident) into the
panels the micro-kernel reads.

The geometry is static and part of the function's name (`ConvGeometry.key`), so the packer's
divisions are by constants and each panel row is one or two vector copies in the common case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archir.backends.llvm.gemm_kernel import GemmBlocking, _vec_ptr
from archir.backends.llvm.ir_loops import F32, counted_loop, i64
from llvmlite import ir

_KEY = re.compile(r"c(\d+)_h(\d+)_w(\d+)_k(\d+)x(\d+)_s(\d+)x(\d+)_p(\d+)x(\d+)_d(\d+)x(\d+)")


@dataclass(frozen=True, slots=True)
class ConvGeometry:
    """One image's channels (of a group) and spatial sizes, the kernel and its window."""

    channels: int
    height: int
    width: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.ph - self.dh * (self.kh - 1) - 1) // self.sh + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.pw - self.dw * (self.kw - 1) - 1) // self.sw + 1

    @property
    def taps(self) -> int:
        return self.channels * self.kh * self.kw

    @property
    def key(self) -> str:
        return (f"c{self.channels}_h{self.height}_w{self.width}_k{self.kh}x{self.kw}_s{self.sh}x{self.sw}"
                f"_p{self.ph}x{self.pw}_d{self.dh}x{self.dw}")

    @staticmethod
    def parse(key: str) -> ConvGeometry:
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"not a conv geometry key: {key!r}")
        return ConvGeometry(*(int(g) for g in match.groups()))


def build_pack_conv(fn: ir.Function, blk: GemmBlocking, geo: ConvGeometry) -> None:
    """`pack(kc, p0, p1, x, pc, jc, dst, nc)`: panels [p0, p1) of the kc x nc block of B at rows
    pc.. and columns jc.. (B as above, x the image's first channel of the group), into kc x NR panels
    at dst (panel p at dst + p*kc*NR); columns past nc are zero. The same signature as the GEMM's
    pack_b, with rsB, csB standing for pc, jc."""
    kc, p0, p1, x, pc, jc, dst, nc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    nr = blk.nr
    ow_count = geo.out_width
    with counted_loop(b, p0, p1, name="p") as p:
        col0 = b.mul(p, i64(nr))
        j0 = b.add(jc, col0)
        lanes = b.sub(nc, col0)  # valid columns in this panel (may exceed nr)
        oh0 = b.sdiv(j0, i64(ow_count))
        ow0 = b.srem(j0, i64(ow_count))
        # The panel's nr columns are one stretch of one output row: its window row moves along x.
        one_row = b.and_(b.icmp_signed("<=", b.add(ow0, i64(nr)), i64(ow_count)),
                         b.icmp_signed(">=", lanes, i64(nr)))
        top = b.sub(b.mul(oh0, i64(geo.sh)), i64(geo.ph))
        left = b.sub(b.mul(ow0, i64(geo.sw)), i64(geo.pw))
        panel = b.gep(dst, [b.mul(col0, kc)])
        with counted_loop(b, 0, kc, name="k") as kk:
            k = b.add(pc, kk)
            c = b.sdiv(k, i64(geo.kh * geo.kw))
            kh = b.srem(b.sdiv(k, i64(geo.kw)), i64(geo.kh))
            kw = b.srem(k, i64(geo.kw))
            ih = b.add(top, b.mul(kh, i64(geo.dh)))
            iw = b.add(left, b.mul(kw, i64(geo.dw)))
            out = b.gep(panel, [b.mul(kk, i64(nr))])
            if geo.sw != 1:  # a strided window never reads nr neighbours of x: lane by lane
                _pack_row_general(b, geo, x, out, j0, lanes, c, kh, kw, nr)
            else:
                _pack_row(b, geo, blk, x, out, one_row, (c, kh, kw, ih, iw), (j0, lanes))
    b.ret_void()


def _pack_row(b: ir.IRBuilder, geo: ConvGeometry, blk: GemmBlocking, x: ir.Value, out: ir.Value,
              one_row: ir.Value, tap: tuple[ir.Value, ...], span: tuple[ir.Value, ir.Value]) -> None:
    """One panel row of a stride-1 window: a straight copy of nr neighbours of x when the panel is
    one stretch of an output row and the window lies inside the image, else lane by lane."""
    c, kh, kw, ih, iw = tap
    nr, vw = blk.nr, blk.vw
    row_ok = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(geo.height)))
    last = b.add(iw, i64(nr - 1))
    span_ok = b.and_(b.icmp_signed(">=", iw, i64(0)), b.icmp_signed("<", last, i64(geo.width)))
    with b.if_else(b.and_(b.and_(one_row, row_ok), span_ok)) as (straight, general):
        with straight:
            src = b.gep(x, [_pixel(b, geo, c, ih, iw)])
            for v in range(nr // vw):
                val = b.load(_vec_ptr(b, b.gep(src, [i64(v * vw)]), vw), align=4)
                b.store(val, _vec_ptr(b, b.gep(out, [i64(v * vw)]), vw), align=32)
        with general:
            _pack_row_general(b, geo, x, out, span[0], span[1], c, kh, kw, nr)


def _pixel(b: ir.IRBuilder, geo: ConvGeometry, c: ir.Value, ih: ir.Value, iw: ir.Value) -> ir.Value:
    """The flat index of x[c, ih, iw] in one (dense) image."""
    return b.add(b.add(b.mul(c, i64(geo.height * geo.width)), b.mul(ih, i64(geo.width))), iw)


def _pack_row_general(b: ir.IRBuilder, geo: ConvGeometry, x: ir.Value, out: ir.Value, j0: ir.Value,
                      lanes: ir.Value, c: ir.Value, kh: ir.Value, kw: ir.Value, nr: int) -> None:
    """One panel row lane by lane: bounds per lane, zero outside the image and past the last column."""
    with counted_loop(b, 0, nr, name="lane") as lane:
        j = b.add(j0, lane)
        oh = b.sdiv(j, i64(geo.out_width))
        ow = b.srem(j, i64(geo.out_width))
        ih = b.add(b.sub(b.mul(oh, i64(geo.sh)), i64(geo.ph)), b.mul(kh, i64(geo.dh)))
        iw = b.add(b.sub(b.mul(ow, i64(geo.sw)), i64(geo.pw)), b.mul(kw, i64(geo.dw)))
        rows_ok = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(geo.height)))
        cols_ok = b.and_(b.icmp_signed(">=", iw, i64(0)), b.icmp_signed("<", iw, i64(geo.width)))
        inside = b.and_(b.icmp_signed("<", lane, lanes), b.and_(rows_ok, cols_ok))
        target = b.gep(out, [lane])
        with b.if_else(inside) as (load, zero):
            with load:
                b.store(b.load(b.gep(x, [_pixel(b, geo, c, ih, iw)])), target)
            with zero:
                b.store(ir.Constant(F32, 0.0), target)
