"""Tracing: while a model's forward runs, DSL tensors record ops into one GraphBuilder.

The active tracer is held in a context variable, so nested or concurrent traces stay apart.
Every node gets the user's source line, so errors and dumps point back at the model code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from archir.builder import GraphBuilder, user_location
from archir.errors import ArchirError
from archir.ir import Value
from archir.types import TensorType

if TYPE_CHECKING:
    from archir.frontends.dsl.module import Parameter
    from archir.frontends.dsl.tensor import Tensor

_current: ContextVar[Tracer | None] = ContextVar("archir_tracer", default=None)


class Tracer:
    """Owns the builder of the graph being traced and the graph values of parameters."""

    def __init__(self, name: str) -> None:
        self.builder = GraphBuilder(name)
        self._param_values: dict[int, Value] = {}

    def op(self, op_name: str, *inputs: Tensor | None, regions: Sequence[Any] = (),
           **attrs: Any) -> Tensor | tuple[Tensor, ...]:
        from archir.frontends.dsl.tensor import Tensor

        values = _operand_values(op_name, inputs)
        result = self.builder.op(op_name, *values, regions=regions, loc=user_location(), **attrs)
        if isinstance(result, tuple):
            return tuple(Tensor(v) for v in result)
        return Tensor(result)

    def param_value(self, param: Parameter) -> Value:
        """The graph value of a parameter, made on first use under its module path."""
        key = id(param)
        if key not in self._param_values:
            if param.path is None:
                raise ArchirError(
                    "a Parameter is used but is not an attribute of any module of this model",
                    loc=user_location(), hint="assign it to self.<name> in a Module's __init__")
            self._param_values[key] = self.builder.param(
                param.path, TensorType(param.shape, param.dtype), param.data)
        return self._param_values[key]


def _operand_values(op_name: str, inputs: Sequence[Tensor | None]) -> list[Value]:
    items = list(inputs)
    while items and items[-1] is None:
        items.pop()
    if any(t is None for t in items):
        raise ArchirError(f"{op_name}: an optional operand is None but a later one is given",
                          loc=user_location())
    return [t.value for t in items]  # type: ignore[union-attr]


def current_tracer() -> Tracer:
    tracer = _current.get()
    if tracer is None:
        raise ArchirError("DSL tensor operations only work while a model is being traced",
                          loc=user_location(),
                          hint="call model.to_graph(), or run ops inside a Module's forward")
    return tracer


@contextlib.contextmanager
def tracing(tracer: Tracer) -> Iterator[Tracer]:
    token = _current.set(tracer)
    try:
        yield tracer
    finally:
        _current.reset(token)
