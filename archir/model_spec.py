"""MODEL arguments of the command line: `file.air`, `path/to/file.py:NAME` or `pkg.module:NAME`.

NAME may be a Graph, an object with `to_graph()` (a DSL model), or something callable without
arguments (a function, a class) that returns either, or a torch model: (module, example_inputs[,
dynamic_shapes]), imported with `archir.from_torch`. Every failure is a `ModelSpecError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from archir import serialize
from archir.errors import ArchirError, Location, ModelSpecError
from archir.ir import Graph

_FORMS = ("MODEL is a graph file (model.air), or a Python file or module and a name (model.py:NAME, "
          "pkg.module:NAME)")


def load_model(spec: str) -> Graph:
    """The graph that `spec` names."""
    if spec.endswith(".air"):
        if not Path(spec).is_file():
            raise ModelSpecError(f"no such file: {spec}", hint=_FORMS)
        return serialize.load(spec)
    file, colon, name = spec.rpartition(":")
    if not colon:
        hint = f"write {spec}:NAME, NAME being a function or object in it" if spec.endswith(".py") \
            else _FORMS
        raise ModelSpecError(f"model '{spec}' names no graph", hint=hint)
    if not file.endswith(".py") and _is_module_name(file):
        return _as_graph(*_find_in_module(file, name, spec))
    if not file.endswith(".py"):
        raise ModelSpecError(f"model '{spec}' must name a .py file before the colon", hint=_FORMS)
    path = Path(file)
    if not path.is_file():
        raise ModelSpecError(f"no such file: {file}", hint=_FORMS)
    if not name.isidentifier():
        raise ModelSpecError(f"'{name}' in '{spec}' is not a Python name", hint=_FORMS)
    module = _import_file(path)
    if name not in vars(module):
        raise ModelSpecError(f"{file} has no '{name}'", hint=_available(module))
    return _as_graph(vars(module)[name], name, path)


# -- importing the user's file --------------------------------------------------------------------
def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    # Unique per file, so two model files called `model.py` never share a module.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_archir_model_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ModelSpecError(f"cannot import {path}", hint="the model file must be a .py file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and pickling look the module up by name.
    sys.modules[module_name] = module
    try:
        with _user_code(path, "importing it"), _beside(resolved):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


@contextlib.contextmanager
def _beside(path: Path) -> Iterator[None]:
    """Let the model file import its neighbours, as `python file.py` would."""
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


@contextlib.contextmanager
def _user_code(path: Path, doing: str) -> Iterator[None]:
    """Turn exceptions of the user's code into ModelSpecErrors at the user's line.

    ArchirErrors pass unchanged: they already say where they come from."""
    try:
        yield
    except ArchirError:
        raise
    except SyntaxError as err:
        loc = Location(err.filename or str(path), err.lineno or 1, err.offset or 0)
        raise ModelSpecError(f"syntax error: {err.msg}", loc=loc,
                             hint=f"while {doing}: {path}") from None
    except Exception as err:
        raise ModelSpecError(f"{type(err).__name__}: {err}", loc=_user_frame(err, path),
                             hint=f"raised by the model file {path} while {doing}") from None


def _user_frame(err: BaseException, path: Path) -> Location | None:
    """The innermost traceback frame in the user's file."""
    resolved = path.resolve()
    found = None
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == resolved:
            found = Location(str(path), frame.lineno or 0)
    return found


def _available(module: ModuleType) -> str:
    names = []
    for key, value in vars(module).items():
        if key.startswith("_"):
            continue
        defined_here = getattr(value, "__module__", None) == module.__name__
        if isinstance(value, Graph) or (callable(value) and defined_here):
            names.append(key)
    if not names:
        return "it defines no public function, class or graph"
    return f"it defines: {', '.join(sorted(names))}"


# -- turning NAME into a graph --------------------------------------------------------------------
def _has_to_graph(value: Any) -> bool:
    # Looked up on the type: DSL modules answer unknown instance attributes with an error.
    return not isinstance(value, type) and callable(getattr(type(value), "to_graph", None))


def _as_graph(value: Any, name: str, path: Path) -> Graph:
    if isinstance(value, Graph):
        return value
    if _has_to_graph(value):
        return _from_model(value, name, path)
    if not callable(value):
        raise ModelSpecError(f"'{name}' in {path} is a value of type {type(value).__name__}, "
                             "not a graph or model",
                             hint="name a Graph, a model with to_graph(), or a function returning one")
    _check_no_required_args(value, name, path)
    with _user_code(path, f"calling {name}()"):
        result = value()
    if isinstance(result, Graph):
        return result
    if _has_to_graph(result):
        return _from_model(result, f"{name}()", path)
    if is_torch_model(result):
        return _from_torch(result, f"{name}()", path)
    raise ModelSpecError(f"{name}() in {path} returned a value of type {type(result).__name__}",
                         hint="it must return a Graph, an object with to_graph(), or a torch model "
                              "(module, example_inputs[, dynamic_shapes])")


def _from_model(model: Any, what: str, path: Path) -> Graph:
    with _user_code(path, f"calling {what}.to_graph()"):
        graph = model.to_graph()
    if not isinstance(graph, Graph):
        raise ModelSpecError(f"{what}.to_graph() in {path} returned a value of type "
                             f"{type(graph).__name__}, not a Graph",
                             hint="to_graph() must return an archir Graph")
    return graph


def _check_no_required_args(fn: Callable[..., Any], name: str, path: Path) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: calling tells
    required = [p.name for p in signature.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ModelSpecError(f"{name} in {path} needs arguments ({', '.join(required)})",
                             hint="give them defaults, or name a function that takes no arguments")


# -- torch models and modules named by import path ------------------------------------------------
def _is_module_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _find_in_module(module_name: str, name: str, spec: str) -> tuple[Any, str, Path]:
    """The object `pkg.module:NAME` names, with the module's file for messages."""
    if not name.isidentifier():
        raise ModelSpecError(f"'{name}' in '{spec}' is not a Python name", hint=_FORMS)
    guess = Path(*module_name.split(".")).with_suffix(".py")  # for messages until it is found
    # Packages of the current directory import as with `python -m` (the script's folder is first
    # on sys.path when the `archir` command runs, not the current directory).
    with _user_code(guess, "importing it"), _importable_from(Path.cwd()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ModelSpecError(f"cannot import '{module_name}' in '{spec}': {err}",
                                 hint=_FORMS) from None
    path = Path(getattr(module, "__file__", None) or module_name)
    if name not in vars(module):
        raise ModelSpecError(f"{module_name} has no '{name}'", hint=_available(module))
    return vars(module)[name], name, path


@contextlib.contextmanager
def _importable_from(folder: Path) -> Iterator[None]:
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))


def is_torch_model(value: Any) -> bool:
    """(torch.nn.Module, example_inputs tuple[, dynamic_shapes]), checked without importing torch."""
    torch = sys.modules.get("torch")
    return (torch is not None and isinstance(value, tuple) and len(value) in (2, 3)
            and isinstance(value[0], torch.nn.Module) and isinstance(value[1], tuple | list))


def _from_torch(model: tuple[Any, ...], what: str, path: Path) -> Graph:
    # Imported here: the core never imports a frontend eagerly (nor torch).
    frontend = importlib.import_module("archir.frontends.torch")
    module, inputs, *rest = model
    with _user_code(path, f"importing {what} with torch.export"):
        return frontend.from_torch(module, tuple(inputs), dynamic_shapes=rest[0] if rest else None)


def load_torch_model(spec: str) -> tuple[Any, tuple[Any, ...], Any]:
    """(module, example_inputs, dynamic_shapes or None) of a torch model spec (file.py:NAME or
    pkg.module:NAME naming a factory, or the tuple itself)."""
    file, colon, name = spec.rpartition(":")
    if not colon or not (file.endswith(".py") or _is_module_name(file)):
        raise ModelSpecError(f"model '{spec}' names no torch model",
                             hint="write pkg.module:NAME or model.py:NAME, NAME being a function "
                                  "returning (module, example_inputs[, dynamic_shapes])")
    if file.endswith(".py"):
        if not Path(file).is_file():
            raise ModelSpecError(f"no such file: {file}", hint=_FORMS)
        module = _import_file(Path(file))
        if name not in vars(module):
            raise ModelSpecError(f"{file} has no '{name}'", hint=_available(module))
        value, path = vars(module)[name], Path(file)
    else:
        value, name, path = _find_in_module(file, name, spec)
    if callable(value) and not is_torch_model(value):
        _check_no_required_args(value, name, path)
        with _user_code(path, f"calling {name}()"):
            value = value()
    if not is_torch_model(value):
        raise ModelSpecError(f"{name} in {path} is not a torch model",
                             hint="it must return (torch.nn.Module, example_inputs[, dynamic_shapes])")
    module, inputs, *rest = value
    return module, tuple(inputs), rest[0] if rest else None
