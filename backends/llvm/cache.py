"""The on-disk cache of compiled graphs: object code plus its layout JSON, one file per key.

The key hashes the graph text, the options, the target (cpu, features, llvmlite) and this
backend's own source, never the weights. A file that is truncated, corrupt or of another format
version is ignored (and rebuilt by the caller); writes go through a temporary file and a rename.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

from archir.backends.llvm.target import host_target

MAGIC = b"ARCHIRLLVM1\n"
_HEADER = struct.Struct("<QQ32s")  # json length, object length, sha256 of json + object


def cache_dir() -> Path:
    root = os.environ.get("ARCHIR_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "archir"
    return base / "llvm"


@functools.cache
def _backend_source_hash() -> str:
    """Changing the backend's code must miss the cache: hash its Python sources."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(graph_text: str, options: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for part in (graph_text, json.dumps(options, sort_keys=True), host_target().key(),
                 _backend_source_hash()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def encode(layout: dict[str, Any], code: bytes) -> bytes:
    meta = json.dumps(layout, sort_keys=True).encode()
    sha = hashlib.sha256(meta + code).digest()
    return MAGIC + _HEADER.pack(len(meta), len(code), sha) + meta + code


def decode(blob: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(layout, object code), or None when the blob is not a complete, intact entry."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _HEADER.size:
        return None
    meta_len, code_len, sha = _HEADER.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _HEADER.size
    if len(blob) != start + meta_len + code_len:
        return None
    body = blob[start:]
    if hashlib.sha256(body).digest() != sha:
        return None
    try:
        layout = json.loads(body[:meta_len])
    except ValueError:
        return None
    return layout, body[meta_len:]


def load(key: str) -> tuple[dict[str, Any], bytes] | None:
    path = cache_dir() / f"{key}.bin"
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    return decode(blob)


def store(key: str, layout: dict[str, Any], code: bytes) -> None:
    """Best effort: a read-only or full disk only costs the next process a rebuild."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(encode(layout, code))
        os.replace(tmp, directory / f"{key}.bin")
    except OSError:
        pass
