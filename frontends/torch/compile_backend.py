"""The `torch.compile` backend "archir": `torch.compile(m, backend="archir", options={...})`.

Each graph dynamo captures (one per graph break) goes through aot_autograd, which hands us a
functional ATen graph for inference; we import it, run an archir pass pipeline, compile it with an
archir backend and run that in its place. torch finds the backend through the `torch_dynamo_backends`
entry point (no archir import needed); importing archir.frontends.torch registers it as well.

Why aot_autograd rather than torch.export of dynamo's graph: aot_autograd is what torch gives
backends for exactly this job. It takes dynamo's graph with its symbolic sizes (SymInt inputs, one
ShapeEnv shared with dynamo's guards), functionalizes mutations and restores aliasing of outputs to
inputs in its runtime wrapper, and decomposes to ATen. Re-exporting would re-trace with a fresh
ShapeEnv and lose the aliasing and mutation semantics at graph breaks.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from archir.frontends.torch.fx_program import program_of
from archir.frontends.torch.importer import from_export
from archir.frontends.torch.table import load_converters, lookup, op_key
from torch._dynamo.backends.common import aot_autograd
from torch._subclasses.fake_tensor import unset_fake_temporarily

from archir.backend import CompiledModule, available_backends, compile_graph
from archir.errors import ArchirError, BackendError
from archir.ir import Graph

log = logging.getLogger(__name__)
NAME = "archir"


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """`options=` of torch.compile: the archir backend, the pass pipeline, and whether a graph
    archir cannot import may run eagerly instead (off unless asked: no silent fallback)."""

    backend: str = "torch"
    pipeline: str | None = None  # None: the archir backend's default (compile_graph)
    fallback: str | None = None

    @staticmethod
    def parse(options: Mapping[str, Any] | None) -> BackendOptions:
        options = dict(options or {})
        known = {"backend", "pipeline", "fallback"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise BackendError(f"unknown option(s) of the archir torch.compile backend: {', '.join(unknown)}",
                               hint=f"options are {', '.join(sorted(known))}")
        parsed = BackendOptions(**options)
        if parsed.backend not in available_backends():
            raise BackendError(f"unknown archir backend '{parsed.backend}'",
                               hint=f"available backends: {', '.join(available_backends())}")
        if parsed.fallback not in (None, "eager"):
            raise BackendError(f"fallback must be 'eager' or absent, got {parsed.fallback!r}",
                               hint='options={"fallback": "eager"} runs graphs archir cannot import '
                                    "eagerly, with a warning")
        return parsed


def archir_backend(gm: torch.fx.GraphModule, example_inputs: Sequence[Any], *,
                   options: Mapping[str, Any] | None = None, mode: str | None = None) -> Callable[..., Any]:
    """The torch.compile backend: `mode` is accepted and ignored (archir has one mode)."""
    parsed = BackendOptions.parse(options)
    if torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in example_inputs):
        return _refuse_training(gm, parsed)
    names = [n.name for n in gm.graph.find_nodes(op="placeholder")]
    compile_forward = functools.partial(_compile_forward, options=parsed, names=names)
    return aot_autograd(fw_compiler=compile_forward, bw_compiler=_no_backward,
                        decompositions=_decompositions())(gm, example_inputs)


def _refuse_training(gm: torch.fx.GraphModule, options: BackendOptions) -> Callable[..., Any]:
    """Graphs traced with autograd on would need a backward archir does not compile."""
    error = BackendError("the archir torch.compile backend compiles inference only, but this graph "
                         "was captured with autograd recording (grad mode on, tensors requiring grad)",
                         hint="call the compiled model under torch.no_grad() or torch.inference_mode()")
    return _eager_or_raise(gm, options, error)


def _eager_or_raise(gm: torch.fx.GraphModule, options: BackendOptions,
                    error: ArchirError) -> Callable[..., Any]:
    if options.fallback != "eager":
        raise error
    message = f"archir could not compile a captured graph; it runs eagerly instead.\n{error}"
    log.warning(message)
    warnings.warn(message, stacklevel=2)
    return gm


def _decompositions() -> dict[Any, Callable[..., Any]]:
    """torch.export's default decompositions of the ops archir has no converter for."""
    load_converters()
    table = torch.export.default_decompositions()
    return {op: fn for op, fn in table.items() if lookup(op_key(op)) is None}


def _no_backward(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Callable[..., Any]:
    raise BackendError("the archir torch.compile backend compiles inference only",
                       hint="call the compiled model under torch.no_grad(), or compile training "
                            "with another backend")


def _compile_forward(gm: torch.fx.GraphModule, example_inputs: Sequence[Any], *,
                     options: BackendOptions, names: Sequence[str]) -> Callable[..., Any]:
    try:
        graph = import_forward(gm, names)
    except ArchirError as err:
        return _eager_or_raise(gm, options, err)
    # aot_autograd calls us inside its fake-tensor mode; the backend's weights must be real.
    with unset_fake_temporarily():
        return ArchirForward(compile_graph(graph, backend=options.backend, pipeline=options.pipeline), gm)


def import_forward(gm: torch.fx.GraphModule, names: Sequence[str] = ()) -> Graph:
    """The archir graph of one aot_autograd forward graph (placeholders named after `names`)."""
    program = program_of(gm, names)
    return from_export(program, "torch_compile", decompose=False)


class ArchirForward:
    """Runs the compiled archir graph with aot_autograd's flat arguments (tensors and sizes)."""

    def __init__(self, compiled: CompiledModule, gm: torch.fx.GraphModule) -> None:
        self.compiled = compiled
        positions = {n.name: i for i, n in enumerate(gm.graph.find_nodes(op="placeholder"))}
        # The importer leaves unused placeholders out; constants became parameters.
        self.argument_positions = [positions[v.name] for v in compiled.graph.inputs if v.name]

    def __call__(self, *args: Any) -> list[torch.Tensor]:
        tensors = [_plain(args[i]) for i in self.argument_positions]
        return [_as_torch(out) for out in self.compiled(*tensors)]


def _plain(value: Any) -> Any:
    # Parameters arrive with requires_grad set; this graph is inference only.
    return value.detach() if isinstance(value, torch.Tensor) else value


def _as_torch(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        # Backends run under inference_mode; such tensors may not enter autograd later.
        return value.clone() if value.is_inference() else value
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(array, copy=True))


def register() -> None:
    """Make backend="archir" known to torch now (it is also found through the entry point)."""
    from torch._dynamo.backends import registry

    # Where torch already knows the entry point, it loads this module itself and registers the
    # function then; registering here as well would be a duplicate.
    if NAME not in registry._BACKENDS:
        registry.register_backend(archir_backend, name=NAME)


register()
