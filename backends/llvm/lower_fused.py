"""Lowering of fused groups as real kernels: row kernels for elementwise and reduction groups
(lower_rows), GEMM epilogues, flash attention; anything else runs its body op by op. The
last-axis softmax / log_softmax / layer_norm / rms_norm of unfused graphs use the row kernel too.
"""

from __future__ import annotations

from archir.backends.llvm.lower import Lowerer, rule
from archir.backends.llvm.lower_attention import lower_flash_group
from archir.backends.llvm.lower_control import lower_fused_inline
from archir.backends.llvm.lower_epilogue import plan_tail
from archir.backends.llvm.lower_linalg import epilogue_fits, lower_contraction
from archir.backends.llvm.lower_rows import lower_rows
from archir.backends.llvm.row_plan import plan_rows

from archir.ir import Node

CONTRACTIONS = ("matmul", "linear", "conv1d", "conv2d")


@rule("fused")
def _fused(lw: Lowerer, node: Node) -> None:
    body = node.regions[0]
    if node.attrs["kind"] == "gemm_epilogue" and _gemm_then_rows(lw, node):
        return
    if node.attrs["kind"] == "attention" and node.attrs.get("flash") and lower_flash_group(lw, node):
        return
    if node.attrs["kind"] in ("elementwise", "reduction", "layout"):
        plan = plan_rows(body.nodes, body.args, body.results)
        if plan is not None:
            views = {a: lw.view(v) for a, v in zip(body.args, node.inputs, strict=True)}
            outs = [lw.result(v) for v in node.outputs]
            lower_rows(lw, plan, views, body.results, outs)
            return
    lower_fused_inline(lw, node)


@rule("softmax", "log_softmax", "layer_norm", "rms_norm")
def _row_op(lw: Lowerer, node: Node) -> None:
    inputs = [v for v in node.inputs if v is not None]
    plan = plan_rows([node], inputs, node.outputs)
    if plan is None:
        lw.lower_decomposition(node)
        return
    views = {v: lw.view(v) for v in inputs}
    lower_rows(lw, plan, views, node.outputs, [lw.result(v) for v in node.outputs])


def _gemm_then_rows(lw: Lowerer, node: Node) -> bool:
    """The contraction with the elementwise tail applied in the GEMM's store (lower_epilogue); when
    some tail op or operand does not fit there, the contraction by its own rule and then the tail as
    one row kernel over the GEMM's result (one extra pass instead of a temporary per op)."""
    body = node.regions[0]
    at = next((k for k, n in enumerate(body.nodes) if n.op in CONTRACTIONS), None)
    if at is None or at == len(body.nodes) - 1:
        return False
    head, tail = body.nodes[:at + 1], body.nodes[at + 1:]
    known = [*body.args, *(v for n in head for v in n.outputs)]
    plan = plan_rows(tail, known, body.results)
    for arg, v in zip(body.args, node.inputs, strict=True):
        lw.bind(arg, lw.view(v))
    lw.lower_nodes(head[:-1])
    contraction = head[-1]
    epilogue = None
    if epilogue_fits(contraction):
        epilogue = plan_tail(lw, contraction.outputs[0], tail, body.results)
    if epilogue is not None:
        lower_contraction(lw, contraction, lw.result(node.outputs[0]), epilogue)
        return True
    if plan is None:
        return False
    lw.lower_nodes([contraction])
    views = {v: lw.view(v) for v in known}
    outs = [lw.result(v) for v in node.outputs]
    lower_rows(lw, plan, views, body.results, outs)
    return True
