"""The one table from ATen overloads to archir converters, and the decorator that fills it.

A converter mirrors its ATen schema: `@converter("aten.addmm.default")` over
`def addmm(cx, bias, a, b, *, beta=1, alpha=1)`; tensor arguments arrive as archir Values, SymInts
as archir dims, everything else as given. Any module may register more (see aten_extra.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from archir.errors import ArchirError

Converter = Callable[..., Any]

# ATen overload name (`str(torch.ops.aten.addmm.default)`) -> converter. The registry is the only
# global state here, as the op and pass registries are in the core.
CONVERTERS: dict[str, Converter] = {}

# Nodes that compute nothing archir needs: run-time assertions and metadata checks.
IGNORED: frozenset[str] = frozenset({
    "aten._assert_tensor_metadata.default", "aten._assert_scalar.default",
    "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default",
    "aten._assert_async.msg", "aten._assert_async.default",
})


class Unsupported(ArchirError):
    """A converter that cannot map this particular use of its op (e.g. dropout in training)."""


def converter(*names: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of each ATen overload in `names`."""

    def register(fn: Converter) -> Converter:
        for name in names:
            if name in CONVERTERS:
                raise ArchirError(f"ATen op {name} already has a converter "
                                  f"({CONVERTERS[name].__module__}.{CONVERTERS[name].__name__})")
            CONVERTERS[name] = fn
        return fn

    return register


def op_key(target: Any) -> str:
    """The table key of an FX call_function target: `aten.addmm.default`, `operator.mul`."""
    if callable(target) and getattr(target, "__module__", None) in ("_operator", "operator"):
        return f"operator.{target.__name__}"
    return str(target)


def lookup(key: str) -> Converter | None:
    return CONVERTERS.get(key)


def load_converters() -> None:
    """Import the converter modules (registration happens on import)."""
    import importlib

    for module in ("aten_math", "aten_shape", "aten_index", "aten_create", "aten_linalg", "aten_nn",
                   "aten_extra"):
        try:
            importlib.import_module(f"archir.frontends.torch.{module}")
        except ModuleNotFoundError as err:
            # aten_extra.py is optional: only its own absence is tolerated.
            if err.name != f"archir.frontends.torch.{module}" or module != "aten_extra":
                raise

