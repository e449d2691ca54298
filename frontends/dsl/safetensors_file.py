"""Reading `.safetensors` weight files into numpy, so DSL models load published checkpoints
by parameter name without depending on the `safetensors` package.

The format: an 8-byte little-endian header length, a JSON header mapping each tensor name to
its dtype, shape and byte range, then the raw little-endian tensor bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np

from archir.errors import ArchirError

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


def load_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the file at `path`, by name (the `__metadata__` entry is skipped)."""
    file = Path(path)
    try:
        data = np.memmap(file, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as err:
        raise ArchirError(f"cannot read safetensors file {file}: {err}") from None
    header, body = _split(data, file)
    arrays = {}
    for name, entry in header.items():
        if name != "__metadata__":
            arrays[name] = _tensor(name, entry, body, file)
    return arrays


def _split(data: np.ndarray, file: Path) -> tuple[dict, np.ndarray]:
    if data.size < 8:
        raise ArchirError(f"{file} is too short to be a safetensors file")
    length = int(data[:8].view("<u8")[0])
    if 8 + length > data.size:
        raise ArchirError(f"{file}: header length {length} runs past the end of the file",
                          hint="the file is truncated or not safetensors")
    try:
        header = json.loads(bytes(data[8:8 + length]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArchirError(f"{file}: the safetensors header is not JSON ({err})") from None
    return header, data[8 + length:]


def _tensor(name: str, entry: dict, body: np.ndarray, file: Path) -> np.ndarray:
    dtype = _DTYPES.get(entry.get("dtype", ""))
    if dtype is None:
        raise ArchirError(f"{file}: tensor '{name}' has unsupported dtype {entry.get('dtype')!r}",
                          hint=f"supported: {', '.join(_DTYPES)}")
    start, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if end - start != dtype.itemsize * int(np.prod(shape, dtype=np.int64)) or end > body.size:
        raise ArchirError(f"{file}: tensor '{name}' byte range {start}..{end} does not fit shape "
                          f"{list(shape)} of {entry['dtype']}")
    # Copy out of the memory map so the file can be closed and the arrays are writable.
    return np.array(body[start:end].view(dtype).reshape(shape))
