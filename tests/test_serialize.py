"""Graphs on disk: `.air` text plus a pickle-free `.npz` sidecar, checked against declared types."""

import ml_dtypes
import numpy as np
import pytest

from archir import ArchirError, GraphBuilder, ParseError, bf16, boolean, f32, i64
from archir.interpreter import run
from archir.printer import print_graph
from archir.serialize import load, save, sidecar_path


def weighted_graph(rng):
    b = GraphBuilder("net")
    x = b.input("x", f32["B", 3])
    w = b.param("layers.0.w", f32[3, 4], rng.standard_normal((3, 4)).astype(np.float32))
    s = b.param("scale", bf16[4], rng.standard_normal(4).astype(ml_dtypes.bfloat16))
    idx = b.param("idx", i64[2], np.array([3, 1], np.int64))
    keep = b.param("keep", boolean[4], np.array([True, False, True, True]))
    bias = b.param("bias", f32[4])  # declared, no data yet
    y = b.mul(b.add(b.matmul(x, w), bias), b.cast(s, dtype=f32))
    b.output(b.where(keep, y, b.full(shape=[1], value=0.0)), b.index_select(y, idx, axis=1))
    return b.build()


def test_round_trip_keeps_text_and_exact_data(tmp_path, rng):
    graph = weighted_graph(rng)
    path = save(graph, tmp_path / "net.air")
    loaded = load(path)
    assert print_graph(loaded) == print_graph(graph)
    assert set(loaded.param_data) == {"layers.0.w", "scale", "idx", "keep"}
    for name, array in graph.param_data.items():
        got = loaded.param_data[name]
        assert got.dtype == array.dtype and got.shape == array.shape
        assert np.array_equal(got.view(np.uint8), array.view(np.uint8)), name
    bias = np.arange(4, dtype=np.float32)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    want = run(graph, x, params={"bias": bias})
    got = run(loaded, x, params={"bias": bias})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_sidecar_stores_bf16_as_uint16_and_loads_without_pickle(tmp_path, rng):
    graph = weighted_graph(rng)
    save(graph, tmp_path / "net.air")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as npz:
        assert npz["scale"].dtype == np.uint16
        assert npz["layers.0.w"].dtype == np.float32
        assert sorted(npz.files) == ["idx", "keep", "layers.0.w", "scale"]


def test_no_data_no_sidecar_and_stale_sidecar_removed(tmp_path, rng):
    b = GraphBuilder("plain")
    b.output(b.relu(b.input("x", f32[2])))
    plain = b.build()
    save(weighted_graph(rng), tmp_path / "g.air")
    assert sidecar_path(tmp_path / "g.air").exists()
    save(plain, tmp_path / "g.air")
    assert not (tmp_path / "g.npz").exists()
    assert load(tmp_path / "g.air").param_data == {}


def write_air_with_param(tmp_path):
    b = GraphBuilder("g")
    x = b.input("x", f32[2, 2])
    w = b.param("w", f32[2, 2])
    b.output(b.add(x, w))
    path = tmp_path / "g.air"
    save(b.build(), path)
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"w": np.zeros((3, 2), np.float32)},
     "parameter 'w' is declared f32[2, 2] but its data is float32[3, 2]"),
    ({"w": np.zeros((2, 2), np.float64)},
     "parameter 'w' is declared f32[2, 2] but its data is float64[2, 2]"),
    ({"w": np.zeros((2, 2), np.float32), "v": np.zeros(2)}, "holds array 'v', which is no parameter of @g"),
])
def test_sidecar_mismatch_is_an_error_naming_the_parameter(tmp_path, arrays, message):
    path = write_air_with_param(tmp_path)
    np.savez(tmp_path / "g.npz", **arrays)
    with pytest.raises(ArchirError) as info:
        load(path)
    assert message in str(info.value)
    assert str(tmp_path / "g.npz") in str(info.value)


def test_bf16_parameter_needs_its_bit_pattern(tmp_path):
    b = GraphBuilder("g")
    b.output(b.cast(b.param("s", bf16[2]), dtype=f32))
    save(b.build(), tmp_path / "g.air")
    np.savez(tmp_path / "g.npz", s=np.zeros(2, np.float32))
    with pytest.raises(ArchirError, match=r"'s' is declared bf16\[2\] but its data is float32\[2\]"):
        load(tmp_path / "g.air")


def test_pickled_arrays_are_refused(tmp_path):
    path = write_air_with_param(tmp_path)
    np.savez(tmp_path / "g.npz", w=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ArchirError, match=r"cannot read array 'w'.*pickle"):
        load(path)


def test_garbage_sidecar_is_a_clean_error(tmp_path):
    path = write_air_with_param(tmp_path)
    (tmp_path / "g.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ArchirError, match="parameter data from"):
        load(path)


def test_parse_errors_name_the_real_file(tmp_path):
    path = tmp_path / "broken.air"
    path.write_text("graph @g(%x: f32[2]) -> f32[2] {\n  %0 = relu(%y) : f32[2]\n  return %0\n}\n")
    with pytest.raises(ParseError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:2:13: error: use of undefined value %y")


def test_missing_and_unwritable_files(tmp_path, rng):
    with pytest.raises(ArchirError, match="no such file"):
        load(tmp_path / "absent.air")
    with pytest.raises(ArchirError, match="cannot write"):
        save(weighted_graph(rng), tmp_path / "no" / "dir.air")
