"""Graphs on disk: the `.air` text, and beside it a `.npz` of parameter data with the same stem.

The `.npz` has numpy's savez layout (one `.npy` per parameter) and is never pickled; bf16 arrays,
which `.npy` cannot describe, are stored as their uint16 bit patterns and restored from the
declared parameter type.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from archir.builder import check_param_data
from archir.errors import ArchirError
from archir.ir import Graph
from archir.parser import parse
from archir.printer import print_graph
from archir.types import DType, TensorType


def sidecar_path(path: str | Path) -> Path:
    """Where the parameter data of the `.air` file at `path` lives."""
    return Path(path).with_suffix(".npz")


def save(graph: Graph, path: str | Path) -> Path:
    """Write `graph` as `.air` text at `path`, and its parameter data (if any) to the sidecar."""
    target = Path(path)
    try:
        target.write_text(print_graph(graph))
    except OSError as err:
        raise ArchirError(f"cannot write {target}: {err.strerror}") from None
    arrays = _arrays_to_store(graph)
    sidecar = sidecar_path(target)
    if arrays:
        _write_npz(sidecar, arrays)
    elif sidecar.exists():
        # A sidecar left from an earlier save would otherwise attach stale weights on load.
        sidecar.unlink()
    return target


def _arrays_to_store(graph: Graph) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for p in graph.params:
        data = graph.param_data.get(p.name or "")
        if data is None or p.name is None:
            continue
        if data.dtype == DType.bf16.numpy:
            data = data.view(np.uint16)
        arrays[p.name] = np.ascontiguousarray(data)
    return arrays


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # The layout of np.savez, written by hand so that any parameter name works as a key
    # (savez's own keyword arguments would clash with names such as `file`) and pickling is off.
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
    except OSError as err:
        raise ArchirError(f"cannot write {path}: {err.strerror}") from None


def load(path: str | Path) -> Graph:
    """Parse the `.air` file at `path` and attach the parameter data of its sidecar, if present."""
    source = Path(path)
    try:
        text = source.read_text()
    except FileNotFoundError:
        raise ArchirError(f"no such file: {source}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArchirError(f"cannot read {source}: {err}") from None
    graph = parse(text, str(source))
    sidecar = sidecar_path(source)
    if sidecar.exists():
        graph.param_data = read_params(graph, sidecar)
    return graph


def read_params(graph: Graph, sidecar: Path) -> dict[str, np.ndarray]:
    """The arrays of `sidecar`, each checked against the declared type of its parameter."""
    try:
        archive = np.load(sidecar, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ArchirError(f"cannot read parameter data from {sidecar}: {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ArchirError(f"{sidecar} is not an .npz archive of parameter data")
    data: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                array = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise ArchirError(f"cannot read array '{key}' from {sidecar}: {err}") from None
            data[key] = _restore(graph, key, array, sidecar)
    return data


def _restore(graph: Graph, key: str, array: np.ndarray, sidecar: Path) -> np.ndarray:
    declared = {p.name: p.type for p in graph.params}
    if key not in declared:
        known = ", ".join(str(name) for name in declared) or "none"
        raise ArchirError(f"{sidecar} holds array '{key}', which is no parameter of @{graph.name}",
                          hint=f"its parameters: {known}")
    t = declared[key]
    if not isinstance(t, TensorType):
        raise ArchirError(f"{sidecar}: parameter '{key}' has type {t}, which cannot hold data")
    if t.dtype == DType.bf16 and array.dtype == np.uint16:
        array = array.view(DType.bf16.numpy)
    try:
        check_param_data(key, t, array)
    except ArchirError as err:
        raise ArchirError(f"{sidecar}: {err.message}",
                          hint="save the graph and its weights together with archir.serialize.save") from None
    return array
