"""Which ATen ops of an exported graph archir maps, and the error that lists the ones it does not.

An op is `native` (a converter in the table), `decomposed` (torch's own decomposition turns it
into mapped ops first) or `unsupported`; each use keeps the module path it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from archir.frontends.torch.table import IGNORED, lookup, op_key

from archir.errors import ArchirError

NATIVE, DECOMPOSED, UNSUPPORTED = "native", "decomposed", "unsupported"


@dataclass(slots=True)
class OpUse:
    """One ATen op of a graph: how often it occurs, where, and whether archir maps it."""

    op: str
    count: int = 0
    status: str = NATIVE
    modules: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add_use(self, module: str) -> None:
        self.count += 1
        if module not in self.modules:
            self.modules.append(module)

    def describe(self) -> str:
        where = ", ".join(m or "<root>" for m in self.modules[:6])
        if len(self.modules) > 6:
            where += f", ... ({len(self.modules) - 6} more)"
        text = f"{self.op} x{self.count} in {where}"
        return text + "".join(f"\n      {r}" for r in self.reasons)


@dataclass(slots=True)
class CoverageReport:
    """Every ATen op of one exported model with its status; `str()` is the printed table."""

    name: str
    ops: list[OpUse]

    @property
    def supported(self) -> bool:
        return not self.unsupported

    @property
    def unsupported(self) -> list[OpUse]:
        return [u for u in self.ops if u.status == UNSUPPORTED]

    def __str__(self) -> str:
        width = max([len(u.op) for u in self.ops] + [2])
        lines = [f"ATen coverage of {self.name}: {len(self.ops)} ops, "
                 f"{len(self.unsupported)} unsupported"]
        for u in sorted(self.ops, key=lambda u: (u.status != UNSUPPORTED, u.op)):
            where = ", ".join(m or "<root>" for m in u.modules[:3])
            more = f", +{len(u.modules) - 3}" if len(u.modules) > 3 else ""
            lines.append(f"  {u.op:<{width}}  {u.count:>4}  {u.status:<11}  {where}{more}")
            lines.extend(f"  {'':<{width}}        {r}" for r in u.reasons)
        return "\n".join(lines)


class UnsupportedOpsError(ArchirError):
    """A torch graph uses ATen ops (or uses of ops) that archir cannot map; lists every one."""

    def __init__(self, ops: list[OpUse]) -> None:
        self.ops = ops
        total = sum(u.count for u in ops)
        lines = [f"{len(ops)} unsupported ATen op{'s' if len(ops) != 1 else ''} ({total} uses):"]
        lines.extend(f"  {u.describe()}" for u in ops)
        super().__init__("\n".join(lines),
                         hint="add a converter with @converter('aten.<op>.<overload>') in "
                              "archir/frontends/torch/aten_extra.py, or rewrite those modules")


def module_path(node: torch.fx.Node) -> str:
    """The innermost module a node came from (`layers.0.attn.q_proj`); '' for the root."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, entry in reversed(list(stack.items())):
        path = entry[0] if isinstance(entry, tuple) else str(entry)
        if key.startswith("_") or path.startswith("_"):
            continue
        return _clean_path(path)
    return ""


def _clean_path(path: str) -> str:
    # strict-mode export spells paths as L['self'].layers[0].attn
    for prefix in ("L['self'].", "L['self']", "L__self___"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path.replace("[", ".").replace("]", "").replace("'", "")


def is_symbolic_node(node: torch.fx.Node) -> bool:
    """A node computing a size (sym_size, operator.mul on SymInts), not a tensor."""
    val = node.meta.get("val")
    return isinstance(val, int | torch.SymInt | torch.SymBool | torch.SymFloat | float | bool) \
        and not isinstance(val, torch.Tensor)


def graph_ops(graph: torch.fx.Graph) -> dict[str, OpUse]:
    """Every tensor op of `graph` with its counts and modules, status from the table."""
    uses: dict[str, OpUse] = {}
    for node in graph.nodes:
        if node.op != "call_function" or is_symbolic_node(node):
            continue
        key = op_key(node.target)
        if key in IGNORED or key == "operator.getitem":
            continue
        use = uses.setdefault(key, OpUse(key, status=NATIVE if lookup(key) else UNSUPPORTED))
        use.add_use(module_path(node))
    return uses


def merge_refusals(uses: dict[str, OpUse], refusals: list[tuple[str, str, str]]) -> None:
    """Mark ops whose converter refused some use (op, module, reason) as unsupported."""
    for key, module, reason in refusals:
        use = uses.setdefault(key, OpUse(key))
        use.status = UNSUPPORTED
        line = f"{module or '<root>'}: {reason}"
        if line not in use.reasons:
            use.reasons.append(line)


def report(name: str, uses: dict[str, Any]) -> CoverageReport:
    return CoverageReport(name, sorted(uses.values(), key=lambda u: u.op))
