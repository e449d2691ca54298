"""Lowering of `attention` as one flash kernel: a parallel loop over (batch..., query tiles) whose
body calls the tile kernel of flash_kernel.py with strided views of q, k, v (and the mask), so
transposed heads cost nothing and no Tq x Tk score buffer exists. Keys / values that are a concat
(a decode step's past + new) are passed as segments, so the concat is never written. f64 and
symbolic head sizes keep the decomposition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from archir.backends.llvm.flash_kernel import FlashConfig
from archir.backends.llvm.loops import Binary, Call, Const, Expr, Loop, Ptr, dim_expr, iadd, imul, unravel
from archir.backends.llvm.lower import Lowerer, View, rule
from archir.backends.llvm.lower_pieces import key_segments, plain_view
from archir.backends.llvm.target import host_target

from archir.ir import Node, Region, Value
from archir.symbolic import Dim
from archir.types import DType

KEYS_PER_TILE = 64


@rule("attention")
def _attention(lw: Lowerer, node: Node) -> None:
    if not lower_attention(lw, node, None):
        for value in node.inputs:
            if value in lw.pieces:
                plain_view(lw, value)
        lw.lower_decomposition(node)


def flash_config(node: Node) -> FlashConfig | None:
    """The kernel for this node, or None when it keeps the decomposition (f64, symbolic D)."""
    q, v = node.inputs[0].tensor_type, node.inputs[2].tensor_type
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    d, dv = q.shape[-1], v.shape[-1]
    if q.dtype not in (DType.f32, DType.f16, DType.bf16) or not isinstance(d, int) or not isinstance(dv, int):
        return None
    vw = host_target().vector_width_f32
    tq = q.shape[-2]
    # A decode step (a handful of queries) fills one vector; otherwise two per tile.
    nv = 1 if isinstance(tq, int) and tq <= vw else 2
    mask_dtype = None if mask is None else mask.tensor_type.dtype
    return FlashConfig(q.dtype, d, dv, bool(node.attrs.get("causal", False)), mask_dtype, vw, nv,
                       KEYS_PER_TILE)


def lower_attention(lw: Lowerer, node: Node, out: View | None) -> bool:
    """Emit the flash kernel for `node` writing into `out` (its result view when None); False
    when the node needs the decomposition instead (nothing emitted then)."""
    cfg = flash_config(node)
    if cfg is None:
        return False
    q = lw.view(node.inputs[0])
    ks, vs = key_segments(lw, node.inputs[1], node.inputs[2])
    cfg = replace(cfg, segments=len(ks), by_row=_decode_shaped(cfg, [q, *ks, *vs]))
    mask_value = node.inputs[3] if len(node.inputs) > 3 else None
    if out is None:
        out = lw.result(node.outputs[0])
    t = node.outputs[0].tensor_type
    batch, tq, tk = t.shape[:-2], q.shape[-2], node.inputs[1].tensor_type.shape[-2]
    tiles = Binary("floordiv", iadd(dim_expr(tq), Const(cfg.nq - 1)), Const(cfg.nq), DType.i64)
    total: Expr = tiles
    for dim in batch:
        total = imul(total, dim_expr(dim))
    task = lw.fresh("tile")
    idx, tile = _unflatten(task, batch, tiles)
    q0 = imul(tile, Const(cfg.nq))
    args: list[Expr] = [q0, dim_expr(tq), dim_expr(tk), Const(_scale(node, cfg.d), DType.f32)]
    views = [q, ks[0], vs[0], out]
    if mask_value is not None:
        mview = plain_view(lw, mask_value)
        views.append(mview.with_layout(*_pad_to(mview, len(batch) + 2)))
    for view in views:
        args.extend(_matrix(view, batch, idx))
    for k, v in zip(ks[1:], vs[1:], strict=True):  # extra key segments: length, keys, values
        args.append(dim_expr(k.shape[-2]))
        args.extend([*_matrix(k, batch, idx), *_matrix(v, batch, idx)])
    call = Call(f"flash.{cfg.key}", args)
    work = imul(Const(cfg.nq * (cfg.d + cfg.dv)), dim_expr(tk))
    lw.emit(Loop(task, Const(0), total, [call], parallel=work))
    return True


def _decode_shaped(cfg: FlashConfig, views: Sequence[View]) -> bool:
    """A few queries (one vector's worth or less) whose rows are unit-stride vectors."""
    rows_ok = cfg.d % cfg.vw == 0 and cfg.dv % cfg.vw == 0
    return cfg.nv == 1 and rows_ok and all(x.strides[-1] == 1 for x in views)


def _scale(node: Node, d: int) -> float:
    scale = node.attrs.get("scale")
    return float(scale) if scale is not None else 1.0 / math.sqrt(d)


def _unflatten(task: Expr, batch: Sequence[Dim], tiles: Expr) -> tuple[list[Expr], Expr]:
    """Batch indices (outermost first) and the query tile of a flat task index; the tile is the
    fastest-moving so neighbouring tasks share a head's keys."""
    (*idx, tile), _ = unravel(task, [*batch, tiles])
    return idx, tile


def _pad_to(view: View, rank: int) -> tuple[tuple[Dim, ...], tuple[Dim, ...]]:
    """Leading size-1 dims so a broadcast mask has the rank of the scores."""
    extra = rank - view.rank
    return (1,) * extra + view.shape, (0,) * extra + view.strides


def _matrix(view: View, batch: Sequence[Dim], idx: Sequence[Expr]) -> list[Expr]:
    """Pointer to the [T, D] matrix of batch index `idx` (broadcast dims read at 0), row and
    column strides (0 along a broadcast axis)."""
    lead = len(batch) - (view.rank - 2)
    at: list[Expr] = []
    for axis, dim in enumerate(view.shape[:-2]):
        at.append(Const(0) if dim == 1 else idx[lead + axis])
    strides = [Const(0) if d == 1 else dim_expr(s) for d, s in zip(view.shape[-2:], view.strides[-2:],
                                                                    strict=True)]
    return [Ptr(view.buffer, view.index([*at, Const(0), Const(0)])), *strides]


def lower_flash_group(lw: Lowerer, node: Node) -> bool:
    """A fused {kind = "attention", flash = true} group: its layout ops (heads split and
    transposed) become views, then the attention writes straight into the group's result."""
    last = flash_group_attention(node)
    if last is None:
        return False
    body = node.regions[0]
    for arg, value in zip(body.args, node.inputs, strict=True):
        if value in lw.pieces:
            lw.pieces[arg] = lw.pieces[value]
        else:
            lw.bind(arg, lw.view(value))
    lw.lower_nodes(body.nodes[:-1])
    out = lw.result(node.outputs[0])
    lower_attention(lw, last, out)
    lw.bind(last.outputs[0], out)
    return True


def flash_group_attention(node: Node) -> Node | None:
    """The attention of a fused flash group that lower_flash_group lowers (layout ops, then the
    attention as the group's only result), else None."""
    body = node.regions[0]
    last = body.nodes[-1] if body.nodes else None
    if last is None or last.op != "attention" or list(body.results) != [last.outputs[0]]:
        return None
    return last if flash_config(last) is not None else None


def read_only_as_keys(lw: Lowerer, value: Value) -> bool:
    """Whether every reader of `value` is a flash attention (plain or as a fused flash group's
    operand) taking it only as keys and / or values, so it may stay unmaterialised as pieces."""
    readers = lw.readers.get(value, [])
    if not readers or lw.is_claimed(value) or value in lw.graph.outputs or _yielded(lw, value):
        return False
    for node in readers:
        if node.op == "attention":
            if not _as_keys(node, value):
                return False
        elif node.op == "fused" and node.attrs.get("kind") == "attention" and node.attrs.get("flash"):
            last = flash_group_attention(node)
            args = [a for a, v in zip(node.regions[0].args, node.inputs, strict=True) if v is value]
            if last is None or any(lw.readers.get(a, []) != [last] or not _as_keys(last, a) for a in args):
                return False
        else:
            return False
    return True


def _as_keys(node: Node, value: Value) -> bool:
    """`node` is a flash attention reading `value` as keys / values only (not queries nor mask)."""
    others = [node.inputs[0], *node.inputs[3:]]
    return flash_config(node) is not None and value in node.inputs[1:3] and value not in others


def _yielded(lw: Lowerer, value: Value) -> bool:
    regions: list[Region] = [r for n in lw.graph.walk() for r in n.regions]
    return any(value in r.results for r in regions)
