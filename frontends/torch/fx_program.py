"""The forward graph aot_autograd hands a torch.compile backend, as an ExportedProgram the importer
reads: every tensor placeholder a user input (named after dynamo's placeholder), SymInt inputs
turned into sizes of the tensor inputs, and tensor constants lifted into constant inputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from archir.frontends.torch.table import Unsupported
from torch.export import ExportedProgram
from torch.export.graph_signature import (
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    TensorArgument,
)

# Dynamo names placeholders after where a value came from; the module path is the useful part.
_DYNAMO_NOISE = re.compile(r"^(l|g|L|G)_|_$|(modules|parameters|buffers)_|self_|kwargs_|args_")


def readable_name(dynamo_name: str) -> str:
    """`l_self_modules_h_modules_0_modules_ln_1_parameters_weight_` -> `h_0_ln_1_weight`."""
    name = _DYNAMO_NOISE.sub("", dynamo_name).strip("_")
    return name if name.isidentifier() else f"arg_{name}"


def program_of(gm: torch.fx.GraphModule, names: Sequence[str] = ()) -> ExportedProgram:
    """An ExportedProgram over `gm` (an ATen graph of aot_autograd); `names` rename its placeholders.

    SymInt placeholders are rewritten into `aten.sym_size.int` of a tensor input holding that
    size, so the archir graph takes tensors only; a SymInt that no input dim holds is Unsupported.
    """
    graph = gm.graph
    placeholders = list(graph.find_nodes(op="placeholder"))
    _rename(placeholders, names)
    for node in placeholders:
        if not isinstance(node.meta.get("val"), torch.Tensor):
            _replace_size_input(graph, node, placeholders)
    _symbolic_slices_as_gathers(graph)
    constants = _lift_constants(gm)
    gm.recompile()
    specs = [InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(n.name), target=n.name)
             if n.name in constants else InputSpec(InputKind.USER_INPUT, TensorArgument(n.name), None)
             for n in graph.find_nodes(op="placeholder")]
    outputs = [OutputSpec(OutputKind.USER_OUTPUT, _output_argument(out), None)
               for out in graph.output_node().args[0]]
    return ExportedProgram(root=gm, graph=graph, graph_signature=ExportGraphSignature(specs, outputs),
                           state_dict={}, range_constraints={}, module_call_graph=[],
                           constants=constants)


def _rename(placeholders: list[torch.fx.Node], names: Sequence[str]) -> None:
    if len(names) != len(placeholders):
        return  # aot added inputs of its own (RNG seeds, effect tokens): keep its names
    for node, name in zip(placeholders, names, strict=True):
        node._rename(readable_name(name))  # FX's namespace keeps the names unique


def _replace_size_input(graph: torch.fx.Graph, node: torch.fx.Node,
                        placeholders: list[torch.fx.Node]) -> None:
    """Point the users of SymInt placeholder `node` at the size of a tensor input that holds it."""
    size = node.meta.get("val")
    if isinstance(size, int):
        node.replace_all_uses_with(size)  # type: ignore[arg-type]
        return
    if not isinstance(size, torch.SymInt):
        raise Unsupported(f"graph input '{node.name}' is a {type(size).__name__}, not a tensor or size")
    holder = _tensor_holding(size, placeholders)
    if holder is None:
        raise Unsupported(f"the size input '{node.name}' ({size}) is no dim of any tensor input",
                          hint="archir sizes are bound from tensor shapes; pass the size as a tensor "
                               "dim or mark it static")
    tensor, axis = holder
    with graph.inserting_after(placeholders[-1]):
        sym_size = graph.call_function(torch.ops.aten.sym_size.int, (tensor, axis))
    sym_size.meta["val"] = size
    node.replace_all_uses_with(sym_size)


def _tensor_holding(size: torch.SymInt,
                    placeholders: list[torch.fx.Node]) -> tuple[torch.fx.Node, int] | None:
    for node in placeholders:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            for axis, dim in enumerate(val.shape):
                if isinstance(dim, torch.SymInt) and dim.node.expr == size.node.expr:
                    return node, axis
    return None


def _symbolic_slices_as_gathers(graph: torch.fx.Graph) -> None:
    """`x[:, :T]` with T a size of another tensor (HF position ids under dynamic shapes): archir
    slices take constant bounds, so it becomes index_select(x, arange(start, T))."""
    for node in list(graph.find_nodes(op="call_function", target=torch.ops.aten.slice.Tensor)):
        x, dim, start, end, step = list(node.args) + [None] * (5 - len(node.args))
        dim, step = (0 if dim is None else dim), (1 if step is None else step)
        fake = x.meta.get("val") if isinstance(x, torch.fx.Node) else None
        bound = end.meta.get("val") if isinstance(end, torch.fx.Node) else None
        if not isinstance(fake, torch.Tensor) or not isinstance(bound, torch.SymInt) or step != 1 \
                or not isinstance(start, int | None):
            continue
        size = fake.shape[dim]
        # Compared as expressions: comparing SymInts would add a guard to dynamo's graph.
        if isinstance(size, torch.SymInt) and size.node.expr == bound.node.expr:
            continue
        with graph.inserting_before(node):
            index = graph.call_function(torch.ops.aten.arange.start, (start or 0, end),
                                        {"dtype": torch.int64})
            gathered = graph.call_function(torch.ops.aten.index_select.default, (x, dim, index))
        with fake.fake_mode:
            index.meta["val"] = torch.ops.aten.arange.start(start or 0, bound, dtype=torch.int64)
        gathered.meta = dict(node.meta)
        node.replace_all_uses_with(gathered)
        graph.erase_node(node)


def _lift_constants(gm: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """get_attr tensors (constants aot kept on the module) become constant placeholders."""
    graph = gm.graph
    constants: dict[str, torch.Tensor] = {}
    first = next(iter(graph.nodes))
    for node in list(graph.find_nodes(op="get_attr")):
        value = getattr(gm, str(node.target))
        if not isinstance(value, torch.Tensor):
            continue  # sub-graphs of higher-order ops: the importer refuses those itself
        with graph.inserting_before(first):
            placeholder = graph.placeholder(readable_name(str(node.target)))
        placeholder.meta = dict(node.meta)
        placeholder.meta.setdefault("val", value)
        node.replace_all_uses_with(placeholder)
        graph.erase_node(node)
        constants[placeholder.name] = value
    return constants


def _output_argument(out: object) -> TensorArgument:
    # Non-tensor outputs are refused by the importer when it checks each output's value.
    return TensorArgument(out.name if isinstance(out, torch.fx.Node) else str(out))
