"""The llvm backend's disk cache and artifacts: hits, corrupt or truncated entries rebuilt,
weights outside the key, artifacts loaded without recompiling and refused on another CPU.
Numerical checks: 1e-6 against the interpreter (the same code runs either way).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from archir.backends.llvm import cache, load
from archir.backends.llvm.module import compile_llvm

from archir.builder import GraphBuilder
from archir.errors import BackendError
from archir.interpreter import run
from archir.types import bf16, f32


def _graph(scale: float = 1.0):
    b = GraphBuilder("cached")
    x = b.input("x", f32["B", 4])
    w = b.param("w", f32[4, 4], np.eye(4, dtype=np.float32) * scale)
    e = b.param("e", bf16[4], np.arange(4).astype(bf16.numpy))
    b.output(b.add(b.relu(b.matmul(x, w)), b.cast(e, dtype="f32")))
    return b.build()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHIR_CACHE_DIR", str(tmp_path))
    return tmp_path / "llvm"


def _x():
    return np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)


def _agrees(module, graph):
    np.testing.assert_allclose(module(_x())[0], run(graph, _x())[0], rtol=1e-6, atol=1e-6)


def test_second_compile_hits_and_weights_are_not_in_the_key(cache_dir):
    first = compile_llvm(_graph())
    assert "compiled" in first.report.notes[0]
    entries = list(cache_dir.glob("*.bin"))
    assert len(entries) == 1
    other_weights = _graph(scale=3.0)
    second = compile_llvm(other_weights)
    assert "cache hit" in second.report.notes[0] and second.key == first.key
    _agrees(second, other_weights)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_entry_is_rebuilt(cache_dir, damage):
    graph = _graph()
    key = compile_llvm(graph).key
    path = cache_dir / f"{key}.bin"
    blob = path.read_bytes()
    broken = {"truncate": blob[: len(blob) // 2], "flip": blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:],
              "garbage": b"not an object file" * 10, "empty": b""}[damage]
    path.write_bytes(broken)
    assert cache.load(key) is None
    module = compile_llvm(graph)
    assert "compiled" in module.report.notes[0]
    _agrees(module, graph)
    assert cache.load(key) is not None


def test_artifact_round_trip(tmp_path, cache_dir):
    graph = _graph(scale=2.0)
    module = compile_llvm(graph)
    files = module.write_artifact(tmp_path / "art")
    assert sorted(f.name for f in files) == ["graph.o", "manifest.json", "params.npz"]
    loaded = load(tmp_path / "art")
    assert "artifact" in loaded.report.notes[0]
    _agrees(loaded, graph)


def test_archir_load_finds_the_backend_from_the_manifest(tmp_path, cache_dir):
    import archir

    graph = _graph(scale=3.0)
    compile_llvm(graph).write_artifact(tmp_path / "art")
    _agrees(archir.load(tmp_path / "art"), graph)
    with pytest.raises(BackendError, match="not a readable archir artifact"):
        archir.load(tmp_path / "nothing-here")


def test_artifact_for_another_cpu_is_refused(tmp_path, cache_dir):
    compile_llvm(_graph()).write_artifact(tmp_path / "art")
    manifest_path = tmp_path / "art" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["target"]["features"] = "+avx512f," + manifest["target"]["features"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BackendError, match="built for"):
        load(tmp_path / "art")


def test_artifact_with_replaced_object_is_refused(tmp_path, cache_dir):
    compile_llvm(_graph()).write_artifact(tmp_path / "art")
    (tmp_path / "art" / "graph.o").write_bytes(b"\x7fELF" + b"\0" * 100)
    with pytest.raises(BackendError, match="does not match"):
        load(tmp_path / "art")
