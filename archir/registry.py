"""The op registry: one declarative `OpDef` per op.

An entry gives the operand signature, the attribute schema, type inference, numpy reference
semantics, traits that passes read, region names for control flow, and optionally a
decomposition into primitives. Adding an op is one `define_op(...)` call.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from archir.errors import OpDefinitionError
from archir.symbolic import SymExpr, as_dim
from archir.types import DType, Type


class Trait(enum.Enum):
    ELEMENTWISE = "elementwise"
    BROADCAST = "broadcast"
    COMMUTATIVE = "commutative"
    REDUCTION = "reduction"
    LAYOUT = "layout"  # injective: moves or copies elements without arithmetic
    CONTRACTION = "contraction"  # matmul-like: GEMM-shaped work
    GATHER = "gather"
    SCATTER = "scatter"
    NORMALIZATION = "normalization"
    COMPOSITE = "composite"  # has a decomposition into primitives
    CONTROL = "control"  # owns regions
    SOURCE = "source"  # makes a tensor from attributes only (full, iota)
    RANDOM = "random"
    SIDE_EFFECT = "side_effect"


class AttrKind(enum.Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    INTS = "ints"
    FLOATS = "floats"
    DIMS = "dims"  # ints or symbolic dims, e.g. a reshape target
    DTYPE = "dtype"


REQUIRED = object()


@dataclass(frozen=True, slots=True)
class AttrSpec:
    kind: AttrKind
    default: Any = REQUIRED
    optional: bool = False  # None is a legal value
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def attr(kind: AttrKind, default: Any = REQUIRED, *, optional: bool = False,
         choices: Sequence[str] = (), doc: str = "") -> AttrSpec:
    if optional and default is REQUIRED:
        default = None
    return AttrSpec(kind, default, optional, tuple(choices), doc)


InferFn = Callable[..., Type | Sequence[Type]]
ImplFn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class OpDef:
    """Everything archir knows about one op.

    `operands` are names; `name?` marks an optional trailing operand, `*name` a variadic one.
    `infer(*types, **attrs)` and `impl(*arrays, **attrs)` get absent optional operands as None;
    ops with regions also get `regions=` (the Region objects for infer, callables for impl).
    """

    name: str
    operands: tuple[str, ...]
    infer: InferFn
    impl: ImplFn
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    traits: frozenset[Trait] = frozenset()
    regions: tuple[str, ...] = ()
    region_args: Callable[..., list[list[Type]]] | None = None
    decompose: Callable[..., Any] | None = None
    doc: str = ""

    def has(self, trait: Trait) -> bool:
        return trait in self.traits

    def operand_range(self) -> tuple[int, int | None]:
        """(fewest, most) operands; most is None for variadic ops."""
        fewest = sum(1 for o in self.operands if not o.endswith("?") and not o.startswith("*"))
        most = None if any(o.startswith("*") for o in self.operands) else len(self.operands)
        return fewest, most

    def check_operand_count(self, count: int) -> None:
        fewest, most = self.operand_range()
        if count < fewest or (most is not None and count > most):
            expected = f"{fewest}" if fewest == most else f"{fewest} to {most or 'any'}"
            raise OpDefinitionError(
                f"{self.name} takes {expected} operands ({', '.join(self.operands)}), got {count}"
            )

    def pad_operands(self, items: Sequence[Any]) -> list[Any]:
        """Operands padded with None for absent optional ones (variadic ops pass through)."""
        if any(o.startswith("*") for o in self.operands):
            return list(items)
        return list(items) + [None] * (len(self.operands) - len(items))

    def normalize_attrs(self, given: dict[str, Any]) -> dict[str, Any]:
        """Check names and kinds, coerce, and fill in defaults."""
        for key in given:
            if key not in self.attrs:
                known = ", ".join(self.attrs) or "none"
                raise OpDefinitionError(
                    f"{self.name} has no attribute '{key}'", hint=f"its attributes: {known}"
                )
        out: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            if key in given:
                out[key] = coerce_attr(self.name, key, spec, given[key])
            elif spec.required:
                raise OpDefinitionError(f"{self.name} needs attribute '{key}' ({spec.kind.value})")
            else:
                out[key] = spec.default
        return out


def coerce_attr(op: str, key: str, spec: AttrSpec, value: Any) -> Any:
    """Turn a Python or parsed value into the canonical form for its kind, or raise."""
    if value is None:
        if spec.optional:
            return None
        raise OpDefinitionError(f"{op} attribute '{key}' may not be none")
    try:
        result = _COERCE[spec.kind](value)
    except (TypeError, ValueError, OpDefinitionError):
        raise OpDefinitionError(
            f"{op} attribute '{key}' must be {spec.kind.value}, got {value!r}"
        ) from None
    if spec.choices and result not in spec.choices:
        raise OpDefinitionError(
            f"{op} attribute '{key}' must be one of {', '.join(map(repr, spec.choices))}, "
            f"got {result!r}"
        )
    return result


def _to_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return int(v)


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, str):
        if v not in ("inf", "-inf", "nan"):
            raise ValueError
        return float(v)
    if not isinstance(v, int | float):
        raise TypeError
    return float(v)


def _to_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _to_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _to_tuple(item: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    def convert(v: Any) -> tuple:
        if not isinstance(v, list | tuple):
            raise TypeError
        return tuple(item(x) for x in v)

    return convert


def _to_dim(v: Any) -> int | SymExpr:
    if isinstance(v, SymExpr | str) or (isinstance(v, int) and not isinstance(v, bool)):
        return as_dim(v)
    raise TypeError


def _to_dtype(v: Any) -> DType:
    if isinstance(v, DType):
        return v
    if isinstance(v, str) and v in DType.__members__:
        return DType[v]
    raise ValueError


_COERCE: dict[AttrKind, Callable[[Any], Any]] = {
    AttrKind.INT: _to_int,
    AttrKind.FLOAT: _to_float,
    AttrKind.BOOL: _to_bool,
    AttrKind.STR: _to_str,
    AttrKind.INTS: _to_tuple(_to_int),
    AttrKind.FLOATS: _to_tuple(_to_float),
    AttrKind.DIMS: _to_tuple(_to_dim),
    AttrKind.DTYPE: _to_dtype,
}


def attr_equal(a: Any, b: Any) -> bool:
    """Attribute equality where nan equals nan (so CSE and printing agree)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(attr_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


_OPS: dict[str, OpDef] = {}


def define_op(name: str, *, operands: Sequence[str], infer: InferFn, impl: ImplFn,
              attrs: dict[str, AttrSpec] | None = None, traits: Sequence[Trait] = (),
              regions: Sequence[str] = (), region_args: Callable[..., list[list[Type]]] | None = None,
              decompose: Callable[..., Any] | None = None, doc: str = "") -> OpDef:
    """Register an op. The registry is append-only: defining a name twice is a bug."""
    if name in _OPS:
        raise OpDefinitionError(f"op '{name}' is defined twice")
    op = OpDef(name, tuple(operands), infer, impl, dict(attrs or {}), frozenset(traits),
               tuple(regions), region_args, decompose, doc)
    _OPS[name] = op
    return op


def get_op(name: str) -> OpDef:
    _load_builtin_ops()
    try:
        return _OPS[name]
    except KeyError:
        raise OpDefinitionError(f"unknown op '{name}'", hint=_suggest(name)) from None


def has_op(name: str) -> bool:
    _load_builtin_ops()
    return name in _OPS


def all_ops() -> list[OpDef]:
    _load_builtin_ops()
    return sorted(_OPS.values(), key=lambda o: o.name)


def _suggest(name: str) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(_OPS), n=3)
    return f"did you mean {', '.join(close)}?" if close else "`archir ops` lists every op"


def _load_builtin_ops() -> None:
    # The op definitions live in archir.ops; importing it fills the table once.
    import archir.ops  # noqa: F401
