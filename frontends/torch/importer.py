"""torch.export programs into archir graphs: `from_export`, `from_torch` and `coverage_report`.

The importer reads the graph torch.export gives (pre-dispatch ATen), which keeps linear,
layer_norm, conv2d and scaled_dot_product_attention whole. It asks torch to functionalize the
graph only when it mutates tensors, and to decompose only the ops archir has no converter for;
what is left unmapped is reported all at once in one UnsupportedOpsError, never half-imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from archir.frontends.torch.context import ImportContext
from archir.frontends.torch.coverage import (
    DECOMPOSED,
    UNSUPPORTED,
    CoverageReport,
    OpUse,
    UnsupportedOpsError,
    graph_ops,
    is_symbolic_node,
    merge_refusals,
    module_path,
    report,
)
from archir.frontends.torch.symbols import SymbolNames, dim_names_from_spec
from archir.frontends.torch.table import IGNORED, Unsupported, load_converters, lookup, op_key
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from archir.builder import GraphBuilder
from archir.errors import ArchirError
from archir.ir import Graph, Value

Refusal = tuple[str, str, str]  # (op, module path, reason)


def from_export(exported_program: ExportedProgram, name: str | None = None, *,
                dim_names: Sequence[dict[int, str]] = (), decompose: bool = True) -> Graph:
    """The archir graph of a `torch.export` program; parameters and buffers keep their names.

    `dim_names` names the symbolic dims of each tensor input (axis -> name); others are s0, s1...
    With `decompose`, ops archir cannot map are first decomposed by torch where it can.
    """
    ep, uses = prepare(exported_program, decompose)
    unsupported = [u for u in uses.values() if u.status == UNSUPPORTED]
    if unsupported:
        raise UnsupportedOpsError(unsupported)
    graph, refusals = _Importer(ep, name or "exported", dim_names).run()
    if refusals:
        merge_refusals(uses, refusals)
        raise UnsupportedOpsError([u for u in uses.values() if u.status == UNSUPPORTED])
    assert graph is not None
    return graph


def from_torch(module: torch.nn.Module, example_inputs: Sequence[Any] | Any,
               dynamic_shapes: Any = None, *, kwargs: dict[str, Any] | None = None,
               name: str | None = None, decompose: bool = True) -> Graph:
    """Export `module` (non-strict) on `example_inputs` and import it; `dynamic_shapes` as in
    torch.export, whose Dim names become the archir symbols (Dim("B") -> B)."""
    args = tuple(example_inputs) if isinstance(example_inputs, list | tuple) else (example_inputs,)
    kwargs = dict(kwargs or {})
    ep = export(module, args, kwargs, dynamic_shapes)
    names = dim_names_from_spec(module, args, kwargs, dynamic_shapes)
    return from_export(ep, name or type(module).__name__, dim_names=names, decompose=decompose)


def export(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any],
           dynamic_shapes: Any) -> ExportedProgram:
    try:
        return torch.export.export(module, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as err:  # torch raises many kinds; say which step failed and why
        raise ArchirError(f"torch.export failed on {type(module).__name__}: "
                          f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                          hint="archir imports what torch.export can trace; see the message above "
                               "(e.g. a dim marked dynamic that the model specializes)") from err


def coverage_report(exported_program: ExportedProgram, name: str | None = None, *,
                    decompose: bool = True) -> CoverageReport:
    """Every ATen op of the program: native, decomposed or unsupported, with module paths."""
    ep, uses = prepare(exported_program, decompose)
    if not any(u.status == UNSUPPORTED for u in uses.values()):
        _, refusals = _Importer(ep, name or "exported", ()).run()
        merge_refusals(uses, refusals)
    return report(name or "exported", uses)


# -- preparation: functionalize and decompose only where needed ---------------------------------
def prepare(ep: ExportedProgram, decompose: bool) -> tuple[ExportedProgram, dict[str, OpUse]]:
    """The program to import and the coverage of the original ops (native/decomposed/unsupported)."""
    load_converters()
    original = graph_ops(ep.graph)
    if _mutates(ep.graph):
        ep = ep.run_decompositions({})
    if decompose:
        ep = _decompose_unmapped(ep)
    final = graph_ops(ep.graph)
    for key, use in original.items():
        if use.status == UNSUPPORTED and key not in final:
            use.status = DECOMPOSED
    for key, use in final.items():
        if key not in original or use.status == UNSUPPORTED:
            original[key] = use
    return ep, original


def _mutates(graph: torch.fx.Graph) -> bool:
    for node in graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and schema is not None and schema.is_mutable \
                and op_key(node.target) not in IGNORED:
            return True
    return False


def _decompose_unmapped(ep: ExportedProgram) -> ExportedProgram:
    table: Any = None
    for _ in range(4):  # a decomposition may produce ops that need decomposing in turn
        unmapped = {k for k, u in graph_ops(ep.graph).items() if u.status == UNSUPPORTED}
        if not unmapped:
            break
        table = table or torch.export.default_decompositions()
        wanted = {}
        for node in ep.graph.nodes:
            if node.op == "call_function" and op_key(node.target) in unmapped and node.target in table:
                wanted[node.target] = table[node.target]
        if not wanted:
            break
        ep = ep.run_decompositions(wanted)
    return ep


# -- the import itself --------------------------------------------------------------------------
class _Importer:
    def __init__(self, ep: ExportedProgram, name: str, dim_names: Sequence[dict[int, str]]) -> None:
        self.ep = ep
        self.b = GraphBuilder(name)
        self.symbols = SymbolNames()
        self.cx = ImportContext(self.b, self.symbols)
        self.env: dict[torch.fx.Node, Any] = {}
        self.poisoned: set[torch.fx.Node] = set()
        self.refusals: list[Refusal] = []
        self.dim_names = list(dim_names)

    def run(self) -> tuple[Graph | None, list[Refusal]]:
        specs = {s.arg.name: s for s in self.ep.graph_signature.input_specs}
        placeholders = [n for n in self.ep.graph.nodes if n.op == "placeholder"]
        self._name_symbols([n for n in placeholders if specs[n.name].kind == InputKind.USER_INPUT])
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self._placeholder(node, specs[node.name])
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                self._outputs(node)
            elif node.op != "get_attr":  # get_attr only feeds higher-order ops, refused there
                raise ArchirError(f"FX node kind '{node.op}' ({node.name}) is not supported")
        if self.refusals:
            return None, self.refusals
        return self.b.build(), []

    def _name_symbols(self, inputs: list[torch.fx.Node]) -> None:
        """Dim names from the dynamic_shapes spec first, then s0, s1, ... in input order."""
        for node, names in zip(inputs, self.dim_names, strict=False):
            val = node.meta.get("val")
            for axis, dim_name in names.items():
                if isinstance(val, torch.Tensor) and axis < val.dim():
                    size = val.shape[axis]
                    if isinstance(size, torch.SymInt) and size.node.expr.is_Symbol:
                        self.symbols.names.setdefault(str(size.node.expr), dim_name)
        for node in inputs:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                for size in val.shape:
                    self.symbols.dim(size)

    def _placeholder(self, node: torch.fx.Node, spec: Any) -> None:
        if not node.users:
            return  # unused weights (e.g. num_batches_tracked) stay out of the graph
        val = node.meta.get("val")
        try:
            type_ = self.cx.tensor_type(val)
        except Unsupported as err:
            self._refuse(node, "input", err.message)
            return
        if spec.kind == InputKind.USER_INPUT:
            self.env[node] = self.b.input(node.name, type_)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            data = self.ep.state_dict.get(spec.target)
            if data is None:
                data = self.ep.constants[spec.target]
            self.env[node] = self.b.param(spec.target, type_, _to_numpy(data))
        else:
            self._refuse(node, "input", f"input kind {spec.kind.name} ({node.name})")

    def _call(self, node: torch.fx.Node) -> None:
        key = op_key(node.target)
        if key in IGNORED:
            return
        if is_symbolic_node(node):
            self._size(node, key)
            return
        if any(a in self.poisoned for a in node.all_input_nodes):
            self.poisoned.add(node)
            return
        if key == "operator.getitem":
            self._getitem(node)
            return
        fn = lookup(key)
        if fn is None:
            self._refuse(node, key, "no converter")
            return
        args, kwargs = self._map(node.args), self._map(node.kwargs)
        self.cx.node = node
        try:
            with self.b.scope_path(module_path(node)):
                result = fn(self.cx, *args, **kwargs)
                self.env[node] = self._conform(node, result)
        except Unsupported as err:
            self._refuse(node, key, err.message)
        except ArchirError as err:
            raise err.with_context(node=f"{node.format_node()} in {module_path(node) or '<root>'}") from None

    def _size(self, node: torch.fx.Node, key: str) -> None:
        val = node.meta.get("val")
        if isinstance(val, torch.SymFloat | torch.SymBool | float | bool):
            self._refuse(node, key, f"a symbolic {type(val).__name__} value")
            return
        try:
            self.env[node] = self.symbols.dim(val)
        except ArchirError as err:
            self._refuse(node, key, err.message)

    def _getitem(self, node: torch.fx.Node) -> None:
        source, index = node.args
        results = self.env[source]
        value = results[index]
        if value is None:
            self._refuse(node, op_key(source.target), f"result {index} is used, but archir only "
                                                      "maps the op's other results")
            return
        self.env[node] = value

    def _conform(self, node: torch.fx.Node, result: Any) -> Any:
        """Cast each result to the dtype torch computed and check its shape against torch's."""
        val = node.meta.get("val")
        if isinstance(result, Value):
            return self._conform_one(node, result, val)
        return tuple(r if r is None else self._conform_one(node, r, v)
                     for r, v in zip(result, val, strict=True))

    def _conform_one(self, node: torch.fx.Node, value: Value, fake: Any) -> Value:
        want = self.cx.tensor_type(fake)
        value = self.cx.cast(value, want.dtype)
        if value.tensor_type.shape != want.shape:
            raise ArchirError(f"the converter of {op_key(node.target)} made {value.tensor_type} "
                              f"where torch computes {want}",
                              hint="a bug in archir's torch importer; please report it")
        return value

    def _map(self, arg: Any) -> Any:
        if isinstance(arg, torch.fx.Node):
            return self.env[arg]
        if isinstance(arg, list | tuple):
            return type(arg)(self._map(a) for a in arg)
        if isinstance(arg, dict):
            return {k: self._map(v) for k, v in arg.items()}
        return arg

    def _outputs(self, node: torch.fx.Node) -> None:
        specs = self.ep.graph_signature.output_specs
        for out, spec in zip(node.args[0], specs, strict=True):
            if spec.kind != OutputKind.USER_OUTPUT:
                self._refuse(node, "output", f"the program {spec.kind.name.lower()}s "
                                             f"'{spec.target}' (export the module in eval mode)")
            elif not isinstance(out, torch.fx.Node) or not isinstance(out.meta.get("val"), torch.Tensor):
                self._refuse(node, "output", f"output {out!r} is not a tensor")
            elif out not in self.poisoned and out in self.env:
                self.b.output(self.env[out])

    def _refuse(self, node: torch.fx.Node, key: str, reason: str) -> None:
        self.poisoned.add(node)
        self.refusals.append((key, module_path(node), reason))


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()
