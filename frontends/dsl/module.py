"""Modules and parameters of the DSL, named the way PyTorch names them.

A `Module` registers the `Parameter`s and sub-modules assigned to its attributes; their dotted
paths (`blocks.3.attn.q_proj.weight`) name graph parameters and node scopes, and match torch
`state_dict` keys, so weights load by name.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from archir.frontends.dsl.safetensors_file import load_safetensors
from archir.frontends.dsl.tensor import Tensor
from archir.frontends.dsl.tracer import current_tracer

from archir.builder import user_location
from archir.errors import ArchirError
from archir.ir import Value
from archir.symbolic import Dim, as_dim
from archir.types import DType

Init = str | Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


class MissingAttributeError(ArchirError, AttributeError):
    """A module attribute read before it is set; also an AttributeError so getattr() defaults work."""


class ModuleCallError(ArchirError, TypeError):
    """A module called with arguments its forward does not take; also a TypeError, as in Python."""


class Parameter(Tensor):
    """A named weight. `init`: "zeros", "ones", "normal" (std 0.02), ("uniform", bound),
    ("normal", std), or a function (rng, shape) -> array."""

    __slots__ = ("data", "dtype_", "init", "path", "shape_")

    def __init__(self, *shape: int, dtype: DType = DType.f32, init: Init | tuple = "normal") -> None:
        self.shape_ = tuple(as_dim(d) for d in shape)
        if not all(isinstance(d, int) for d in self.shape_):
            raise ArchirError(f"parameter shapes must be static, got {list(self.shape_)}",
                              loc=user_location())
        self.dtype_ = dtype
        self.init = init
        self.data: np.ndarray | None = None
        self.path: str | None = None

    @property
    def value(self) -> Value:
        return current_tracer().param_value(self)

    @property
    def shape(self) -> tuple[Dim, ...]:
        return self.shape_

    @property
    def dtype(self) -> DType:
        return self.dtype_

    def __repr__(self) -> str:
        return f"Parameter({self.path or '?'}: {self.dtype_}{list(self.shape_)})"

    def initialize(self, rng: np.random.Generator) -> None:
        shape = tuple(int(d) for d in self.shape_)  # type: ignore[arg-type]
        self.data = _initial_values(self.init, rng, shape).astype(self.dtype_.numpy)


def _initial_values(init: Init | tuple, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if callable(init):
        return np.asarray(init(rng, shape))
    if init == "zeros":
        return np.zeros(shape)
    if init == "ones":
        return np.ones(shape)
    if init == "normal":
        return rng.normal(0.0, 0.02, shape)
    if isinstance(init, tuple) and init[0] == "normal":
        return rng.normal(0.0, init[1], shape)
    if isinstance(init, tuple) and init[0] == "uniform":
        return rng.uniform(-init[1], init[1], shape)
    raise ArchirError(f"unknown parameter init {init!r}")


def fan_in_uniform(fan_in: int) -> tuple[str, float]:
    """torch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return ("uniform", 1.0 / math.sqrt(max(fan_in, 1)))


class Module:
    """Base of DSL modules: subclasses set parameters and sub-modules in __init__ and define
    `forward`. Calling a module inside a trace names its nodes by the module's path."""

    _params: dict[str, Parameter]
    _children: dict[str, Module]
    _path: str
    ignored_state: tuple[str, ...] = ()  # state_dict keys to accept and drop (e.g. counters)

    def __setattr__(self, name: str, value: Any) -> None:
        self._registries()
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def _registries(self) -> None:
        if "_params" not in self.__dict__:
            object.__setattr__(self, "_params", {})
            object.__setattr__(self, "_children", {})
            object.__setattr__(self, "_path", "")

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a parameter or sub-module used before it is set.
        if name.startswith("__") or name in ("_params", "_children", "_path"):
            raise AttributeError(name)
        raise MissingAttributeError(f"{type(self).__name__} has no attribute '{name}'",
                          loc=user_location(),
                          hint=f"set self.{name} in __init__ before forward uses it")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise ArchirError(f"{type(self).__name__} does not define forward", loc=user_location())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._registries()
        tracer = current_tracer()
        _check_call(self, args, kwargs)
        with tracer.builder.scope_path(self._path):
            return self.forward(*args, **kwargs)

    # -- the module tree ----------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        self._registries()
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Each parameter once (a shared one under its first path), in registration order."""
        seen: set[int] = set()
        for path, module in self.named_modules():
            for name, p in module._params.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def assign_paths(self) -> None:
        for path, module in self.named_modules():
            object.__setattr__(module, "_path", path)
        for path, p in self.named_parameters():
            p.path = path

    def to_graph(self, **inputs: Any) -> Any:
        """Trace forward into a Graph; inputs default to those of @archir.model."""
        from archir.frontends.dsl.model import trace

        return trace(self, inputs or None)

    # -- weights ------------------------------------------------------------------------------
    def init(self, seed: int = 0) -> Module:
        """Fill every parameter with seeded random values (torch-like schemes per layer)."""
        rng = np.random.default_rng(seed)
        for _, p in self.named_parameters():
            p.initialize(rng)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        return {path: p.data for path, p in self.named_parameters() if p.data is not None}

    def load_state_dict(self, state: Mapping[str, Any] | str | os.PathLike, strict: bool = True) -> Module:
        """Load arrays (numpy or torch) by name, or a `.safetensors` file given by its path; one
        error lists every missing, unexpected and mis-shaped name."""
        if isinstance(state, str | os.PathLike):
            state = load_safetensors(state)
        params = dict(self.named_parameters())
        aliases = {f"{path}.{n}" if path else n: p
                   for path, m in self.named_modules() for n, p in m._params.items()}
        ignored = {f"{path}.{n}" if path else n
                   for path, m in self.named_modules() for n in m.ignored_state}
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in aliases and k not in ignored]
        misshaped = []
        for key, value in state.items():
            if key in aliases:
                array = _to_numpy(value)
                p = aliases[key]
                if tuple(array.shape) != tuple(p.shape_):
                    misshaped.append(f"{key}: expected {list(p.shape_)}, got {list(array.shape)}")
                else:
                    p.data = array.astype(p.dtype_.numpy)
        problems = []
        if missing and strict:
            problems.append(f"missing: {', '.join(missing)}")
        if unexpected and strict:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        if misshaped:
            problems.append(f"mis-shaped: {'; '.join(misshaped)}")
        if problems:
            raise ArchirError(f"cannot load weights into {type(self).__name__}: " + " | ".join(problems),
                              loc=user_location())
        return self


def _check_call(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Arguments that do not fit forward's signature, reported at the caller's line (a plain
    TypeError would point nowhere useful)."""
    try:
        inspect.signature(module.forward).bind(*args, **kwargs)
    except TypeError as err:
        raise ModuleCallError(f"{type(module).__name__}: {err}", loc=user_location(),
                              hint="match the arguments to its forward signature") from None


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().float().numpy() if str(value.dtype) == "torch.bfloat16" \
            else value.detach().cpu().numpy()
    return np.asarray(value)


class ModuleList(Module):
    """Sub-modules named 0, 1, 2, ... (`blocks.3.attn`)."""

    def __init__(self, modules: Sequence[Module] = ()) -> None:
        self._items: list[Module] = []
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._items)), module)
        self._items.append(module)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Module:
        return self._items[i]


class Sequential(ModuleList):
    """Applies its modules in order."""

    def __init__(self, *modules: Module) -> None:
        super().__init__(modules)

    def forward(self, x: Any) -> Any:
        for m in self._items:
            x = m(x)
        return x
