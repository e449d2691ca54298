"""Functions over DSL tensors: one per registry op (`relu(x)`, `attention(q, k, v, causal=True)`),
plus `scan`, `cond` and `while_loop` that take Python functions as their bodies.

Op wrappers are made from the registry on first use, so a new op is usable from the DSL at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from archir.frontends.dsl.tensor import Scalar, Tensor, constant
from archir.frontends.dsl.tracer import current_tracer

from archir.errors import ArchirError
from archir.ir import Value
from archir.registry import get_op, has_op
from archir.types import DType

TensorFn = Callable[..., Any]


def op_function(name: str) -> Callable[..., Any]:
    """The DSL function for registry op `name`: tensors positionally, attributes by keyword."""
    op = get_op(name)

    def call(*inputs: Tensor | None, **attrs: Any) -> Any:
        return current_tracer().op(name, *inputs, **attrs)

    call.__name__ = name
    call.__doc__ = f"{op.doc}\n\noperands: {', '.join(op.operands) or 'none'}; " \
                   f"attributes: {', '.join(op.attrs) or 'none'}"
    return call


def __getattr__(name: str) -> Callable[..., Any]:
    if has_op(name) and not get_op(name).regions:
        return op_function(name)
    raise AttributeError(f"archir has no function '{name}'")


def full(shape: Sequence[Any], value: Scalar, dtype: DType = DType.f32) -> Tensor:
    return current_tracer().op("full", shape=list(shape), value=float(value), dtype=dtype)  # type: ignore[return-value]


def arange(length: Any, dtype: DType = DType.i64) -> Tensor:
    """0, 1, ..., length - 1 (length may be a symbolic dim such as T)."""
    return current_tracer().op("iota", shape=[length], axis=0, dtype=dtype)  # type: ignore[return-value]


def scalar(value: Scalar, dtype: DType = DType.f32) -> Tensor:
    return constant(value, dtype)


def _wrap(values: Sequence[Value]) -> list[Tensor]:
    return [Tensor(v) for v in values]


def _unwrap(result: Any, what: str) -> list[Value]:
    items = list(result) if isinstance(result, tuple | list) else [result]
    for item in items:
        if not isinstance(item, Tensor):
            raise ArchirError(f"{what} must return tensors, got {type(item).__name__}")
    return [t.value for t in items]


def scan(body: TensorFn, init: Sequence[Tensor], xs: Sequence[Tensor], *, axis: int = 0,
         reverse: bool = False) -> tuple[list[Tensor], list[Tensor]]:
    """Loop over slices of `xs` along `axis`: `body(carries, slices) -> (carries, outputs)`.

    Returns (final carries, per-step outputs stacked along `axis`). Lowers to one `scan` node.
    """
    num_carry = len(init)

    def region(*args: Value) -> list[Value]:
        carries, outs = body(_wrap(args[:num_carry]), _wrap(args[num_carry:]))
        return _unwrap(list(carries), "scan body carries") + _unwrap(list(outs), "scan body outputs")

    result = current_tracer().op("scan", *init, *xs, regions=[region], num_carry=num_carry,
                                 axis=axis, reverse=reverse)
    results = list(result) if isinstance(result, tuple) else [result]
    return results[:num_carry], results[num_carry:]


def cond(pred: Tensor, then_fn: TensorFn, else_fn: TensorFn, *args: Tensor) -> Any:
    """`then_fn(*args)` when pred (a bool scalar) holds, else `else_fn(*args)`; one `cond` node."""
    regions = [lambda *a: _unwrap(then_fn(*_wrap(a)), "cond then"),
               lambda *a: _unwrap(else_fn(*_wrap(a)), "cond else")]
    return current_tracer().op("cond", pred, *args, regions=regions)


def while_loop(cond_fn: TensorFn, body_fn: TensorFn, *init: Tensor) -> Any:
    """Repeat `body_fn(*state)` while `cond_fn(*state)` is true; one `while` node."""
    regions = [lambda *a: _unwrap(cond_fn(*_wrap(a)), "while cond"),
               lambda *a: _unwrap(body_fn(*_wrap(a)), "while body")]
    return current_tracer().op("while", *init, regions=regions)
