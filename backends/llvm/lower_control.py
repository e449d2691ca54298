"""Lowering of control flow: scan, cond and while become native loops and branches.

Region bodies are lowered inline into the same function; a region's arguments are views (scan
slices are views into the sequence, no copy). A scan keeps each carry in two slots used in turn and
asks the body's producers to write new carries and per-step outputs straight into place, so a step
copies only what it cannot compute in place. A while loop writes its carries back after the body,
through staging copies when a result still reads a carry.
"""

from __future__ import annotations

from collections.abc import Sequence

from archir.backends.llvm.loops import Binary, Const, Expr, If, While, dim_expr, iadd, imul, isub
from archir.backends.llvm.lower import Lowerer, View, rule
from archir.backends.llvm.lower_layout import bind_view

from archir.ir import Node, Region, Value
from archir.types import DType


def _carry_buffers(lw: Lowerer, initial: Sequence[View]) -> list[View]:
    carries = []
    for view in initial:
        buffer = lw.temp(view.dtype, view.shape)
        lw.copy(view, buffer)
        carries.append(buffer)
    return carries


def _write_back(lw: Lowerer, results: Sequence[Value], carries: Sequence[View]) -> None:
    """carries[i] = results[i] for all i at once (a result may be another carry's old value)."""
    carry_buffers = {c.buffer for c in carries}
    staged: list[tuple[View, View]] = []
    direct: list[tuple[View, View]] = []
    for value, carry in zip(results, carries, strict=True):
        view = lw.view(value)
        if view.buffer is carry.buffer and view == carry:
            continue
        if view.buffer in carry_buffers:
            stage = lw.temp(view.dtype, view.shape)
            lw.copy(view, stage)
            staged.append((stage, carry))
        else:
            direct.append((view, carry))
    for src, dst in direct + staged:
        lw.copy(src, dst)


def _lower_region(lw: Lowerer, region: Region, args: Sequence[View]) -> None:
    for arg, view in zip(region.args, args, strict=True):
        lw.bind(arg, view)
    lw.lower_nodes(region.nodes)


def _bind_results(lw: Lowerer, node: Node, views: Sequence[View]) -> None:
    """The first len(views) results of node (a returned one is copied to its output buffer)."""
    for i, view in enumerate(views):
        bind_view(lw, node, view, i)


@rule("scan")
def _scan(lw: Lowerer, node: Node) -> None:
    num_carry = node.attrs["num_carry"]
    operands = [lw.view(v) for v in node.inputs]
    seqs = operands[num_carry:]
    axis = node.attrs["axis"] % seqs[0].rank
    length = seqs[0].shape[axis]
    body = node.regions[0]
    pairs = [_ping_pong(lw, view) for view in operands[:num_carry]]
    stacked = [lw.result(v) for v in node.outputs[num_carry:]]
    with lw.loop(length) as i:
        t = isub(isub(dim_expr(length), Const(1)), i) if node.attrs["reverse"] else i
        slices = [_slice_at(s, axis, t) for s in seqs]
        targets = [_slot(p, iadd(i, Const(1))) for p in pairs] + [_slice_at(s, axis, t) for s in stacked]
        _claim(lw, body, targets)
        _lower_region(lw, body, [*(_slot(p, i) for p in pairs), *slices])
        for value, target in zip(body.results, targets, strict=True):
            if lw.take_claim(value) is None and lw.view(value) is target:
                continue  # its producer wrote it in place
            lw.copy(lw.view(value), target)
    _bind_results(lw, node, [_slot(p, dim_expr(length)) for p in pairs])


def _ping_pong(lw: Lowerer, initial: View) -> View:
    """Two slots for a carry ([2, *shape]): step i reads slot i % 2 and writes slot (i + 1) % 2,
    so the body computes the new carry in place while the old one is still being read."""
    pair = lw.temp(initial.dtype, (2, *initial.shape))
    lw.copy(initial, _slot(pair, Const(0)))
    return pair


def _slot(pair: View, step: Expr) -> View:
    parity = Const(step.value % 2) if isinstance(step, Const) else Binary("mod", step, Const(2), DType.i64)
    return _slice_at(pair, 0, parity)


def _claim(lw: Lowerer, body: Region, targets: Sequence[View]) -> None:
    """Ask the producers of the body's results to write them straight into their targets (the next
    carry slot, this step's output slice): each value made by a body node, once, when the target is
    contiguous. A producer that honours the claim pops it and binds the target itself."""
    made = {v for n in body.nodes for v in n.outputs}
    for value, target in zip(body.results, targets, strict=True):
        if value in made and target.is_contiguous():
            lw.claim(value, target)


def _slice_at(view: View, axis: int, t: object) -> View:
    """view[..., t, ...] along `axis`, as a view of rank - 1."""
    offset = iadd(view.offset, imul(t, dim_expr(view.strides[axis])))  # type: ignore[arg-type]
    shape = view.shape[:axis] + view.shape[axis + 1:]
    strides = view.strides[:axis] + view.strides[axis + 1:]
    return view.with_layout(shape, strides, offset)


@rule("cond")
def _cond(lw: Lowerer, node: Node) -> None:
    pred = lw.view(node.inputs[0])
    args = [lw.view(v) for v in node.inputs[1:]]
    outs = [lw.temp(v.tensor_type.dtype, v.tensor_type.shape) for v in node.outputs]
    branches = []
    for region in node.regions:
        with lw.block() as stmts:
            _lower_region(lw, region, args)
            for value, out in zip(region.results, outs, strict=True):
                lw.copy(lw.view(value), out)
        branches.append(stmts)
    lw.emit(If(pred.load([]), branches[0], branches[1]))
    _bind_results(lw, node, outs)


@rule("while")
def _while(lw: Lowerer, node: Node) -> None:
    carries = _carry_buffers(lw, [lw.view(v) for v in node.inputs])
    cond_region, body_region = node.regions
    with lw.block() as prelude:
        _lower_region(lw, cond_region, carries)
        flag = lw.view(cond_region.results[0])
    with lw.block() as body:
        _lower_region(lw, body_region, carries)
        _write_back(lw, body_region.results, carries)
    lw.emit(While(prelude, flag.load([]), body))
    _bind_results(lw, node, carries)


def lower_fused_inline(lw: Lowerer, node: Node) -> None:
    """A fused group's body lowered inline, op by op (one kernel: the group is one graph node);
    lower_fused uses it for the groups it has no kernel template for."""
    _lower_region(lw, node.regions[0], [lw.view(v) for v in node.inputs])
    _bind_results(lw, node, [lw.view(v) for v in node.regions[0].results])
