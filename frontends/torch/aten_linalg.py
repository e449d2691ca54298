"""Converters for ATen contractions: linear, addmm, mm, bmm, matmul, baddbmm and two-operand
einsum (rewritten as one batched matmul between permutes and reshapes).
"""

from __future__ import annotations

from typing import Any

from archir.frontends.torch.aten_math import scaled
from archir.frontends.torch.aten_shape import permute, reshape_to
from archir.frontends.torch.context import ImportContext
from archir.frontends.torch.table import Unsupported, converter

from archir.ir import Value
from archir.symbolic import Dim, mul


@converter("aten.linear.default")
def linear(cx: ImportContext, x: Value, weight: Value, bias: Value | None = None) -> Value:
    return cx.b.linear(x, weight, bias) if bias is not None else cx.b.linear(x, weight)


@converter("aten.mm.default", "aten.bmm.default", "aten.matmul.default")
def matmul(cx: ImportContext, a: Value, b: Value) -> Value:
    return cx.b.matmul(a, b)


@converter("aten.addmm.default", "aten.baddbmm.default", "aten.addbmm.default")
def addmm(cx: ImportContext, bias: Value, a: Value, b: Value, *, beta: Any = 1, alpha: Any = 1) -> Value:
    product = scaled(cx, cx.b.matmul(a, b), alpha)
    if cx.node is not None and str(cx.node.target) == "aten.addbmm.default":
        product = cx.b.sum(product, axes=[0])
    if beta == 0:
        return product
    return cx.b.add(scaled(cx, bias, beta), product)


@converter("aten.einsum.default")
def einsum(cx: ImportContext, equation: str, operands: list[Value], *, path: Any = None) -> Value:
    """Two operands without ellipsis or repeated letters: batch letters (in both and the output),
    contracted ones (in both, not the output), free ones (in one operand and the output)."""
    lhs, _, out = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if not out and "->" not in equation:
        raise Unsupported("einsum without an explicit output ('->')")
    if len(terms) != 2 or "." in equation or any(len(set(t)) != len(t) for t in [*terms, out]):
        raise Unsupported(f"einsum '{equation}' (only two operands, no '...', no repeated letters)")
    a, b = operands
    ta, tb = terms
    a, ta = _sum_unused(cx, a, ta, tb + out)
    b, tb = _sum_unused(cx, b, tb, ta + out)
    batch = [c for c in ta if c in tb and c in out]
    contract = [c for c in ta if c in tb and c not in out]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    size = _sizes(a, ta) | _sizes(b, tb)
    a3 = _group(cx, a, ta, [batch, left, contract], size)
    b3 = _group(cx, b, tb, [batch, contract, right], size)
    y = cx.b.matmul(a3, b3)
    letters = batch + left + right
    y = reshape_to(cx, y, [size[c] for c in letters])
    return permute(cx, y, [letters.index(c) for c in out])


def _sizes(x: Value, letters: str) -> dict[str, Dim]:
    return dict(zip(letters, x.tensor_type.shape, strict=True))


def _sum_unused(cx: ImportContext, x: Value, letters: str, elsewhere: str) -> tuple[Value, str]:
    gone = [i for i, c in enumerate(letters) if c not in elsewhere]
    if not gone:
        return x, letters
    kept = "".join(c for c in letters if c in elsewhere)
    return cx.b.sum(x, axes=gone), kept


def _group(cx: ImportContext, x: Value, letters: str, groups: list[list[str]],
           size: dict[str, Dim]) -> Value:
    """Permute x to the letter groups' order and merge each group into one axis."""
    order = [c for g in groups for c in g]
    x = permute(cx, x, [letters.index(c) for c in order])
    merged = []
    for g in groups:
        total: Dim = 1
        for c in g:
            total = mul(total, size[c])
        merged.append(total)
    return reshape_to(cx, x, merged)
