"""Declaring a model's inputs and tracing it into a Graph.

    @archir.model(x=archir.f32["B", "T", 768])
    class GPT2(nn.Module): ...

    graph = GPT2(config).init(seed=0).to_graph()
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from archir.frontends.dsl.module import Module
from archir.frontends.dsl.tensor import Tensor
from archir.frontends.dsl.tracer import Tracer, tracing

from archir.errors import ArchirError, Location
from archir.ir import Graph, Value
from archir.types import TensorType, Type

INPUTS_ATTR = "__archir_inputs__"


def model(**inputs: Type) -> Callable[[Any], Any]:
    """Declare the inputs (names and types, symbolic dims allowed) of a Module class or of a
    plain function over tensors."""

    def wrap(target: Any) -> Any:
        if inspect.isclass(target) and issubclass(target, Module):
            setattr(target, INPUTS_ATTR, dict(inputs))
            return target
        if callable(target):
            return FunctionModel(target, dict(inputs))
        raise ArchirError(f"@archir.model decorates a Module class or a function, not {target!r}")

    return wrap


class FunctionModel(Module):
    """A model written as a plain function of its inputs (it may call modules made inside)."""

    def __init__(self, fn: Callable[..., Any], inputs: dict[str, Type]) -> None:
        self.fn = fn
        self.name = fn.__name__
        setattr(self, INPUTS_ATTR, inputs)

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)

    def signature_target(self) -> Callable[..., Any]:
        return self.fn


def trace(module: Module, inputs: Mapping[str, Type] | None = None, name: str | None = None) -> Graph:
    """Run `module.forward` on symbolic inputs and return the graph it builds."""
    types = dict(inputs or getattr(module, INPUTS_ATTR, {}))
    target = module.signature_target() if isinstance(module, FunctionModel) else module.forward
    params = [p for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    where = _definition_site(target)
    if not types:
        raise ArchirError(f"{type(module).__name__} declares no inputs", loc=where,
                          hint='decorate it with @archir.model(x=archir.f32["B", 768]) '
                               "or pass to_graph(x=...)")
    names = [p.name for p in params]
    if names != list(types):
        raise ArchirError(
            f"forward of {type(module).__name__} takes {len(names)} inputs ({', '.join(names)}) "
            f"but the model declares {len(types)} ({', '.join(types)})", loc=where)
    module.assign_paths()
    graph_name = name or getattr(module, "name", None) or type(module).__name__.lower()
    tracer = Tracer(graph_name)
    with tracing(tracer):
        args = [Tensor(tracer.builder.input(n, t)) for n, t in types.items()]
        result = module(*args)
        outputs = _flatten_outputs(result)
        tracer.builder.output(*outputs)
    return tracer.builder.build()


def _flatten_outputs(result: Any) -> list[Value]:
    items = list(result) if isinstance(result, tuple | list) else [result]
    values = []
    for item in items:
        if not isinstance(item, Tensor):
            raise ArchirError(f"forward must return tensors, got {type(item).__name__}")
        values.append(item.value)
    return values


def _definition_site(fn: Callable[..., Any]) -> Location | None:
    try:
        return Location(inspect.getsourcefile(fn) or "?", inspect.getsourcelines(fn)[1])
    except (OSError, TypeError):
        return None


def input_types(module: Module) -> dict[str, TensorType]:
    return dict(getattr(module, INPUTS_ATTR, {}))

