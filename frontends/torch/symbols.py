"""Symbolic sizes: torch's sympy expressions (`s0*5`, `(s1 - 1)//2`) as archir dims.

Each torch shape symbol gets an archir name: the `torch.export.Dim` name where the dynamic_shapes
spec gives one (Dim("B") -> B), else s0, s1, ... in order of first appearance among the inputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import sympy
import torch
from torch.utils._sympy.functions import CleanDiv, FloorDiv, PowByNatural

from archir.errors import ArchirError
from archir.symbolic import Dim, SymExpr, add, floordiv, mul


class SymbolNames:
    """torch symbol name (`s72`) -> archir symbol name (`B`)."""

    def __init__(self, preferred: Mapping[str, str] | None = None) -> None:
        self.names: dict[str, str] = dict(preferred or {})

    def name(self, torch_name: str) -> str:
        if torch_name not in self.names:
            taken = set(self.names.values())
            i = 0
            while f"s{i}" in taken:
                i += 1
            self.names[torch_name] = f"s{i}"
        return self.names[torch_name]

    def dim(self, size: Any) -> Dim:
        """An int, a torch.SymInt or a sympy expression as an archir dim."""
        if isinstance(size, bool):
            raise ArchirError(f"expected a size, got the boolean {size}")
        if isinstance(size, int):
            return size
        if isinstance(size, torch.SymInt):
            return self.expr(size.node.expr)
        if isinstance(size, sympy.Expr):
            return self.expr(size)
        raise ArchirError(f"expected an int or symbolic size, got {size!r}")

    def expr(self, e: sympy.Expr) -> Dim:
        if e.is_Integer:
            return int(e)
        if e.is_Symbol:
            return SymExpr.symbol(self.name(str(e)))
        rule = _RULES.get(type(e))
        if rule is None:
            raise ArchirError(f"the symbolic size {e} ({type(e).__name__}) has no archir form",
                              hint="archir sizes are polynomials with floor division by constants; "
                                   "mark that dim static instead")
        return rule(self, e)


def _add(names: SymbolNames, e: sympy.Expr) -> Dim:
    total: Dim = 0
    for term in e.args:
        total = add(total, names.expr(term))
    return total


def _mul(names: SymbolNames, e: sympy.Expr) -> Dim:
    total: Dim = 1
    for factor in e.args:
        total = mul(total, names.expr(factor))
    return total


def _pow(names: SymbolNames, e: sympy.Expr) -> Dim:
    base, exponent = e.args
    if not (exponent.is_Integer and int(exponent) >= 0):
        raise ArchirError(f"the symbolic size {e} has a non-natural exponent")
    total: Dim = 1
    for _ in range(int(exponent)):
        total = mul(total, names.expr(base))
    return total


def _floordiv(names: SymbolNames, e: sympy.Expr) -> Dim:
    num, den = e.args
    if not den.is_Integer or int(den) <= 0:
        raise ArchirError(f"the symbolic size {e} divides by a non-constant")
    return floordiv(names.expr(num), int(den))


_RULES: dict[type, Callable[[SymbolNames, sympy.Expr], Dim]] = {
    sympy.Add: _add, sympy.Mul: _mul, sympy.Pow: _pow, PowByNatural: _pow,
    FloorDiv: _floordiv, CleanDiv: _floordiv,
}


def dim_names_from_spec(module: torch.nn.Module, args: tuple, kwargs: dict,
                        dynamic_shapes: Any) -> list[dict[int, str]]:
    """For each tensor input, in flattened (args, kwargs) order, axis -> Dim name from the spec."""
    if dynamic_shapes is None:
        return []
    named: dict[int, dict[int, str]] = {}
    if isinstance(dynamic_shapes, Mapping):
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        for key, spec in dynamic_shapes.items():
            if key in bound.arguments:
                _pair(bound.arguments[key], spec, named)
    else:
        for value, spec in zip(args, dynamic_shapes, strict=False):
            _pair(value, spec, named)
    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    return [named.get(id(t), {}) for t in leaves if isinstance(t, torch.Tensor)]


def _pair(value: Any, spec: Any, named: dict[int, dict[int, str]]) -> None:
    if spec is None:
        return
    if isinstance(value, torch.Tensor):
        axes = spec.items() if isinstance(spec, Mapping) else enumerate(spec)
        names = {axis: dim.__name__ for axis, dim in axes if hasattr(dim, "__name__")}
        named[id(value)] = names
    elif isinstance(value, list | tuple) and isinstance(spec, list | tuple):
        for v, s in zip(value, spec, strict=False):
            _pair(v, s, named)
    elif isinstance(value, Mapping) and isinstance(spec, Mapping):
        for key, s in spec.items():
            if key in value:
                _pair(value[key], s, named)
