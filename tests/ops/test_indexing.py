"""Indexing ops against PyTorch: embedding, gather, index_select, scatter_add, topk.

Gathers and topk copy values, so they are compared exactly; scatter_add sums duplicates in an
order torch does not promise, so it gets atol = rtol = 1e-5 in f32.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir import GraphBuilder, f32, i32, i64
from archir.errors import ArchirError, TypeInferenceError
from archir.interpreter import run
from archir.registry import Trait, get_op
from tests.harness import assert_close, check_round_trip, run_op

EXACT = {"atol": 0.0, "rtol": 0.0}


def rand(rng, *shape, dtype=np.float32):
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def to_torch(a):
    return torch.from_numpy(np.array(a))


# -- numerics against torch ---------------------------------------------------------------------
@pytest.mark.parametrize("ids_shape", [(5,), (2, 3), (2, 1, 4), ()])
@pytest.mark.parametrize("id_dtype", [np.int64, np.int32])
def test_embedding(rng, ids_shape, id_dtype):
    table = rand(rng, 11, 6)
    ids = rng.integers(0, 11, size=ids_shape).astype(id_dtype)
    want = F.embedding(to_torch(ids).long(), to_torch(table))
    assert_close(run_op("embedding", ids, table), want, **EXACT)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_gather_with_smaller_index(rng, axis):
    x = rand(rng, 4, 5, 6)
    shape = [3, 4, 2]
    shape[axis] = 7  # along `axis` the index may be longer than x; elsewhere at most as long
    index = rng.integers(0, x.shape[axis], size=shape)
    want = torch.gather(to_torch(x), axis, to_torch(index))
    assert_close(run_op("gather", x, index, axis=axis), want, **EXACT)


@pytest.mark.parametrize(("shape", "axis", "n"), [((4, 5), 0, 7), ((4, 5), -1, 3), ((2, 3, 4), 1, 0)])
def test_index_select(rng, shape, axis, n):
    x = rng.integers(-50, 50, size=shape).astype(np.int32)
    index = rng.integers(0, shape[axis], size=n).astype(np.int32)
    want = torch.index_select(to_torch(x), axis, to_torch(index).long())
    assert_close(run_op("index_select", x, index, axis=axis), want, **EXACT)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_add_with_duplicates(rng, axis):
    x = rand(rng, 3, 4, 5)
    src = rand(rng, 7, 7, 7)  # index may be smaller than src on every axis
    shape = [2, 3, 4]
    shape[axis] = 6
    index = rng.integers(0, x.shape[axis], size=shape)  # many repeats, so sums really accumulate
    want = torch.scatter_add(to_torch(x), axis, to_torch(index), to_torch(src))
    got = run_op("scatter_add", x, index, src, axis=axis)
    assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not np.array_equal(got, x)


def test_scatter_add_returns_a_new_tensor(rng):
    b = GraphBuilder("g")
    x = b.input("x", f32[3])
    index = b.input("i", i64[2])
    b.output(b.scatter_add(x, index, x, axis=0), x)
    xs = np.ones(3, np.float32)
    out, same = run(b.build(), xs, np.array([0, 0]))
    assert_close(out, torch.tensor([3.0, 1.0, 1.0]), **EXACT)
    assert_close(same, torch.ones(3), **EXACT)


@pytest.mark.parametrize(("shape", "k", "axis", "largest"), [
    ((10,), 3, -1, True), ((4, 7), 7, 1, False), ((5, 3, 4), 2, 0, True), ((3, 6), 0, -1, True),
    ((2, 5, 3), 4, 1, False),
])
def test_topk_distinct_values(rng, shape, k, axis, largest):
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) - 20).astype(np.float32)
    values, indices = run_op("topk", x, k=k, axis=axis, largest=largest)
    want_v, want_i = torch.topk(to_torch(x), k, dim=axis, largest=largest, sorted=True)
    assert indices.dtype == np.int64
    assert_close(values, want_v, **EXACT)
    assert_close(indices, want_i, **EXACT)


def test_topk_ints_and_unsorted(rng):
    x = rng.permutation(40).reshape(5, 8).astype(np.int32) - 20
    values, indices = run_op("topk", x, k=3, sorted=False)
    want_v, _ = torch.topk(to_torch(x), 3, dim=-1)
    # Unsorted order is unspecified in torch: compare as sets, and values must match indices.
    assert_close(np.sort(values, -1), torch.sort(want_v, -1).values, **EXACT)
    assert_close(np.take_along_axis(x, indices, -1), values, **EXACT)


def test_traits():
    for name in ["embedding", "gather", "index_select"]:
        assert get_op(name).has(Trait.GATHER)
    assert get_op("scatter_add").has(Trait.SCATTER)


# -- symbolic inference -------------------------------------------------------------------------
def _types(op, *types, **attrs):
    b = GraphBuilder("g")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    out = b.op(op, *inputs, **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    b.output(*outs)
    check_round_trip(b.build())
    return ", ".join(str(v.type) for v in outs)


@pytest.mark.parametrize(("op", "types", "attrs", "want"), [
    ("embedding", (i64["B", "T"], f32[50, 16]), {}, "f32[B, T, 16]"),
    ("gather", (f32["B", "T", 8], i64["B", "T", 2]), {"axis": -1}, "f32[B, T, 2]"),
    ("index_select", (f32["B", "T", 8], i32["K"]), {"axis": 1}, "f32[B, K, 8]"),
    ("scatter_add", (f32["B", 10], i64["B", "T"], f32["B", "T"]), {"axis": 1}, "f32[B, 10]"),
    ("topk", (f32["B", 10],), {"k": 3}, "f32[B, 3], i64[B, 3]"),
    ("topk", (f32["B", "T"],), {"k": 2, "axis": -1}, "f32[B, 2], i64[B, 2]"),
])
def test_symbolic_result_types(op, types, attrs, want):
    assert _types(op, *types, **attrs) == want


@pytest.mark.parametrize(("B", "T"), [(2, 3), (4, 5)])
def test_symbolic_graph_runs_at_two_sizes(rng, B, T):
    b = GraphBuilder("g")
    ids = b.input("ids", i64["B", "T"])
    table = b.param("table", f32[20, 8], rand(rng, 20, 8))
    emb = b.embedding(ids, table)
    values, indices = b.topk(emb, k=2, axis=1, largest=False)
    picked = b.gather(emb, indices, axis=1)
    b.output(values, indices, picked)
    graph = check_round_trip(b.build())
    data = rng.permutation(20)[: B * T].reshape(B, T)  # distinct rows, so topk has no ties
    got_v, got_i, got_p = run(graph, data)
    t_emb = F.embedding(to_torch(data), to_torch(graph.param_data["table"]))
    want_v, want_i = torch.topk(t_emb, 2, dim=1, largest=False)
    assert_close(got_v, want_v, **EXACT)
    assert_close(got_i, want_i, **EXACT)
    assert_close(got_p, torch.gather(t_emb, 1, want_i), **EXACT)


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "types", "attrs", "message"), [
    ("gather", (f32[3, 4], f32[3, 4]), {"axis": 0}, r"gather index must have an integer dtype, got f32"),
    ("embedding", (f32[3], f32[10, 4]), {}, r"embedding ids must have an integer dtype"),
    ("index_select", (f32[3, 4], i64[2, 2]), {"axis": 0}, r"index_select index must have rank 1"),
    ("scatter_add", (f32[3], f32[3], f32[3]), {"axis": 0}, r"scatter_add index must have an integer"),
    ("scatter_add", (f32[3], i64[3], i64[3]), {"axis": 0},
     r"src must have the dtype of x"),
    ("gather", (f32[3, 4], i64[3]), {"axis": 0}, r"gather index must have the rank of x"),
    ("gather", (f32[3, 4], i64[3, 5]), {"axis": 0}, r"larger than x: f32\[3, 4\] on axis 1"),
    ("embedding", (i64[3], f32[10]), {}, r"embedding table must have rank 2"),
    ("topk", (f32[3, 4],), {"k": 5}, r"topk k = 5 must lie in \[0, 4\]"),
    ("topk", (f32[()],), {"k": 1}, r"topk x must have rank >= 1"),
])
def test_inference_errors(op, types, attrs, message):
    with pytest.raises(TypeInferenceError, match=message):
        _types(op, *types, **attrs)


@pytest.mark.parametrize(("op", "arrays", "attrs", "message"), [
    ("embedding", (np.array([0, 10]), np.zeros((10, 2), np.float32)), {},
     r"embedding index out of range: indices must lie in \[0, 10\) .* got values from 0 to 10"),
    ("embedding", (np.array([-1, 3]), np.zeros((10, 2), np.float32)), {}, r"from -1 to 3"),
    ("gather", (np.zeros((2, 3), np.float32), np.array([[0, 3]])), {"axis": 1},
     r"gather index out of range: indices must lie in \[0, 3\) along axis 1"),
    ("index_select", (np.zeros((2, 3), np.float32), np.array([2])), {"axis": 0},
     r"index_select index out of range: indices must lie in \[0, 2\) along axis 0"),
    ("scatter_add", (np.zeros(3, np.float32), np.array([5]), np.ones(1, np.float32)), {"axis": -1},
     r"scatter_add index out of range: indices must lie in \[0, 3\) along axis 0"),
])
def test_out_of_range_indices_are_archir_errors(op, arrays, attrs, message):
    with pytest.raises(ArchirError, match=message) as info:
        run_op(op, *arrays, **attrs)
    assert not isinstance(info.value.__cause__, IndexError)
    assert f"in: {op}(" in str(info.value)


def test_symbolic_topk_k_too_large_is_caught_at_run_time():
    b = GraphBuilder("g")
    x = b.input("x", f32["T"])
    b.output(*b.topk(x, k=4))
    with pytest.raises(ArchirError, match=r"topk k = 4 is larger than axis 0 of x \(size 3\)"):
        run(b.build(), np.zeros(3, np.float32))
