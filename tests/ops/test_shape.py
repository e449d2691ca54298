"""Shape ops against PyTorch: static shapes, symbolic inference, and the errors they raise.

Layout ops move values without arithmetic, so every comparison is exact (atol = rtol = 0).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir import GraphBuilder, f32, i64
from archir.errors import ArchirError, TypeInferenceError
from archir.interpreter import run
from archir.printer import print_graph
from archir.registry import Trait, get_op
from tests.harness import assert_close, check_round_trip, run_op

END = 9223372036854775807
EXACT = {"atol": 0.0, "rtol": 0.0}


def rand(rng, *shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


def to_torch(a):
    # harness.to_torch goes through np.ascontiguousarray, which turns 0-d arrays into 1-d ones.
    return torch.from_numpy(np.array(a))


def _shape(rng, rank, low=1, high=5):
    return tuple(int(n) for n in rng.integers(low, high, size=rank))


# -- numerics against torch ---------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "target"), [
    ((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)), ((6,), (1, 2, 1, 3)),
    ((), (1, 1)), ((1, 1), ()), ((0, 3), (3, 0)), ((5, 2), (2, 5)),
])
def test_reshape(rng, shape, target):
    x = rand(rng, *shape)
    assert_close(run_op("reshape", x, shape=target), torch.reshape(to_torch(x), target), **EXACT)


def test_transpose_random_perms(rng):
    for rank in range(0, 5):
        x = rand(rng, *_shape(rng, rank))
        perm = [int(p) for p in rng.permutation(rank)]
        if rank:
            perm[0] -= rank  # a negative axis, as torch.permute allows
        assert_close(run_op("transpose", x, perm=perm), to_torch(x).permute(perm), **EXACT)


def test_transpose_keeps_low_precision_bits(rng):
    x = torch.randn(3, 5, dtype=torch.bfloat16)
    got = run_op("transpose", x.float().numpy().astype("bfloat16"), perm=[1, 0])
    assert str(got.dtype) == "bfloat16"
    assert_close(got.astype(np.float32), x.t().float(), **EXACT)


@pytest.mark.parametrize(("shape", "target"), [
    ((1, 3), (4, 3)), ((1, 3), (4, -1)), ((3, 1), (2, 3, 5)), ((2, 1, 1), (-1, 3, 0)),
    ((), (2, 3)), ((4,), (2, 1, -1)),
])
def test_expand(rng, shape, target):
    x = rand(rng, *shape)
    assert_close(run_op("expand", x, shape=target), to_torch(x).expand(*target), **EXACT)


@pytest.mark.parametrize(("shape", "axes"), [
    ((1, 3, 1), [0]), ((1, 3, 1), [-1]), ((1, 3, 1), [0, 2]), ((2, 1), [1]), ((3,), []),
])
def test_squeeze(rng, shape, axes):
    x = rand(rng, *shape)
    assert_close(run_op("squeeze", x, axes=axes), to_torch(x).squeeze(tuple(axes)), **EXACT)


@pytest.mark.parametrize(("shape", "axes"), [
    ((2, 3), [0]), ((2, 3), [-1]), ((2, 3), [1, 3]), ((), [0]), ((4,), [0, -1]), ((2, 3), [-4, 2]),
])
def test_unsqueeze(rng, shape, axes):
    x = rand(rng, *shape)
    want = to_torch(x)
    for a in sorted(a % (len(shape) + len(axes)) for a in axes):
        want = want.unsqueeze(a)
    assert_close(run_op("unsqueeze", x, axes=axes), want, **EXACT)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_random_sizes(rng, axis):
    base = list(_shape(rng, 3))
    xs = []
    for _ in range(3):
        base[axis] = int(rng.integers(0, 4))
        xs.append(rng.integers(-9, 9, size=base).astype(np.int32))
    want = torch.cat([to_torch(x) for x in xs], dim=axis)
    assert_close(run_op("concat", *xs, axis=axis), want, **EXACT)


@pytest.mark.parametrize(("shape", "axis", "sizes"), [
    ((5, 3), 0, [2, 3]), ((5, 3), 0, [5]), ((2, 7), -1, [1, -1, 2]), ((2, 4, 3), 1, [0, 4]),
    ((6,), 0, [-1, 1, 1, 1]),
])
def test_split(rng, shape, axis, sizes):
    x = rand(rng, *shape)
    rest = shape[axis] - sum(s for s in sizes if s != -1)
    want = torch.split(to_torch(x), [rest if s == -1 else s for s in sizes], dim=axis)
    got = run_op("split", x, axis=axis, sizes=sizes)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, **EXACT)


@pytest.mark.parametrize(("axes", "starts", "ends", "steps"), [
    ([0], [1], [END], None), ([1], [-2], [END], None), ([0, 2], [0, 1], [-1, 3], None),
    ([-1], [0], [100], [2]), ([1], [5], [1], None), ([0, 1], [-100, 1], [2, -1], [1, 3]),
    ([2], [3], [-END], [-1]), ([1], [-1], [0], [-2]), ([0], [END], [END], None),
])
def test_slice_python_semantics(rng, axes, starts, ends, steps):
    x = rand(rng, 4, 5, 6)
    got = run_op("slice", x, axes=axes, starts=starts, ends=ends, steps=steps)
    # torch has no negative steps, so pick the Python-semantics positions with index_select.
    want = to_torch(x)
    for i, a in enumerate(axes):
        picked = range(*slice(starts[i], ends[i], steps[i] if steps else 1).indices(x.shape[a]))
        want = want.index_select(a, torch.tensor(list(picked), dtype=torch.long))
    assert_close(got, want, **EXACT)


@pytest.mark.parametrize(("pads", "value"), [
    ([1, 2, 0, 0, 3, 1], 0.0), ([0, 0, 2, 2, 0, 0], -1.5), ([-1, 1, 0, 2, -2, 0], 7.0),
    ([0, 0, 0, 0, 0, 0], 0.0),
])
def test_pad(rng, pads, value):
    x = rand(rng, 3, 2, 4)
    torch_pads = [p for i in reversed(range(3)) for p in pads[2 * i:2 * i + 2]]
    want = F.pad(to_torch(x), torch_pads, value=value)
    assert_close(run_op("pad", x, pads=pads, value=value), want, **EXACT)


def test_pad_int_and_inf(rng):
    x = rng.integers(0, 9, size=(2, 3)).astype(np.int64)
    assert_close(run_op("pad", x, pads=[1, 0, 0, 2], value=-4.0),
                 F.pad(to_torch(x), [0, 2, 1, 0], value=-4), **EXACT)
    y = rand(rng, 2, 2)
    assert_close(run_op("pad", y, pads=[0, 1, 1, 0], value=float("-inf")),
                 F.pad(to_torch(y), [1, 0, 0, 1], value=float("-inf")), **EXACT)


@pytest.mark.parametrize(("shape", "value", "dtype", "torch_dtype"), [
    ((2, 3), 1.5, "f32", torch.float32), ((4,), -2.0, "i64", torch.int64), ((), 3.0, "i32", torch.int32),
    ((2, 0), 0.0, "f64", torch.float64), ((3,), 1.0, "bool", torch.bool),
])
def test_full(shape, value, dtype, torch_dtype):
    got = run_op("full", shape=shape, value=value, dtype=dtype)
    want = torch.full(shape, value, dtype=torch_dtype)
    assert got.dtype == want.numpy().dtype
    assert_close(got, want, **EXACT)


@pytest.mark.parametrize(("shape", "axis", "dtype"), [
    ((5,), 0, "i64"), ((3, 4), 0, "i32"), ((3, 4), 1, "i64"), ((2, 3, 4), -2, "f32"),
])
def test_iota(shape, axis, dtype):
    got = run_op("iota", shape=shape, axis=axis, dtype=dtype)
    ax = axis % len(shape)
    view = [1] * len(shape)
    view[ax] = shape[ax]
    want = torch.arange(shape[ax]).reshape(view).expand(*shape)
    assert str(got.dtype) == {"i64": "int64", "i32": "int32", "f32": "float32"}[dtype]
    assert_close(got, want, **EXACT)


@pytest.mark.parametrize("op", ["triu", "tril"])
@pytest.mark.parametrize("diagonal", [0, 1, -1, 3, -5])
def test_triangles(rng, op, diagonal):
    for shape in [(4, 4), (3, 5), (2, 5, 3)]:
        x = rand(rng, *shape)
        want = getattr(torch, op)(to_torch(x), diagonal=diagonal)
        assert_close(run_op(op, x, diagonal=diagonal), want, **EXACT)


def test_traits():
    for name in ["reshape", "transpose", "expand", "squeeze", "unsqueeze", "concat", "split", "slice",
                 "pad", "triu", "tril"]:
        assert get_op(name).has(Trait.LAYOUT), name
    for name in ["full", "iota"]:
        assert get_op(name).has(Trait.SOURCE) and get_op(name).operand_range() == (0, 0)


# -- symbolic inference -------------------------------------------------------------------------
def _result_type(x_type, op, *extra_types, **attrs):
    b = GraphBuilder("g")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate((x_type, *extra_types))]
    out = b.op(op, *inputs, **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    b.output(*outs)
    check_round_trip(b.build())
    return ", ".join(str(v.type) for v in outs)


@pytest.mark.parametrize(("x_type", "op", "attrs", "want"), [
    (f32["B", "T", 768], "reshape", {"shape": ["B", "T", 12, -1]}, "f32[B, T, 12, 64]"),
    (f32["B", "T", 768], "reshape", {"shape": ["B*T", 768]}, "f32[B*T, 768]"),
    (f32["B", "T", 768], "reshape", {"shape": [-1, 768]}, "f32[B*T, 768]"),
    (f32["B*T", 768], "reshape", {"shape": ["B", -1, 768]}, "f32[B, T, 768]"),
    (f32["B", "T", 12, 64], "reshape", {"shape": ["B", "T", 768]}, "f32[B, T, 768]"),
    (f32["T + 1", 4], "reshape", {"shape": ["T + 1", 2, -1]}, "f32[T + 1, 2, 2]"),
    (f32["T + 1", 4], "reshape", {"shape": [2, -1]}, "f32[2, 2*T + 2]"),
    (f32["B", "T", 4], "transpose", {"perm": [1, 0, 2]}, "f32[T, B, 4]"),
    (f32[1, "T"], "expand", {"shape": ["B", 3, -1]}, "f32[B, 3, T]"),
    (f32["B", 1], "expand", {"shape": ["B", "T"]}, "f32[B, T]"),
    (f32["B", 1, "T"], "squeeze", {"axes": [1]}, "f32[B, T]"),
    (f32["B", "T"], "unsqueeze", {"axes": [1, -1]}, "f32[B, 1, T, 1]"),
    (f32["B", "T", 8], "split", {"axis": 1, "sizes": [2, -1]}, "f32[B, 2, 8], f32[B, T - 2, 8]"),
    (f32["B", "T", 8], "split", {"axis": -1, "sizes": [3, 5]}, "f32[B, T, 3], f32[B, T, 5]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [1], "ends": [END]}, "f32[B, T - 1]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [0], "ends": [-1]}, "f32[B, T - 1]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [2], "ends": [-1]}, "f32[B, T - 3]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [-3], "ends": [END]}, "f32[B, 3]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [-3], "ends": [-1]}, "f32[B, 2]"),
    (f32["B", "T"], "slice", {"axes": [1], "starts": [0], "ends": [4]}, "f32[B, 4]"),
    (f32["B", "T"], "slice", {"axes": [-1, 0], "starts": [0, 0], "ends": [END, END], "steps": [2, 1]},
     "f32[B, ((T + 1) // 2)]"),
    (f32["B", "T"], "pad", {"pads": [0, 0, 1, 2]}, "f32[B, T + 3]"),
    (f32["B", "T", "T"], "triu", {"diagonal": 1}, "f32[B, T, T]"),
])
def test_symbolic_result_types(x_type, op, attrs, want):
    assert _result_type(x_type, op, **attrs) == want


def test_symbolic_concat_sums_dims():
    assert _result_type(f32["B", "T", 4], "concat", f32["B", "S", 4], axis=1) == "f32[B, S + T, 4]"
    assert _result_type(f32["T"], "concat", f32["T"], f32[3], axis=0) == "f32[2*T + 3]"


def test_symbolic_sources():
    b = GraphBuilder("g")
    x = b.input("x", f32["B", "T"])
    b.output(b.full(shape=["B", 3], value=0.5), b.iota(shape=["T"]), x)
    assert [str(v.type) for v in b.build().outputs][:2] == ["f32[B, 3]", "i64[T]"]


def _symbolic_graph():
    b = GraphBuilder("sym")
    x = b.input("x", f32["B", "T", 24])
    y = b.input("y", f32["B", "S", 24])
    heads = b.transpose(b.reshape(x, shape=["B", "T", 4, -1]), perm=[0, 2, 1, 3])
    joined = b.concat(x, y, axis=1)
    tail = b.slice(joined, axes=[1], starts=[1], ends=[END])
    first, rest = b.split(x, axis=1, sizes=[1, -1])
    padded = b.pad(rest, pads=[0, 0, 2, 0, 0, 0], value=-1.0)
    mask = b.tril(b.expand(b.unsqueeze(b.full(shape=["T"], value=1.0), axes=[0]), shape=["T", -1]))
    pos = b.iota(shape=["B", "T"], axis=1)
    b.output(heads, tail, first, padded, mask, pos)
    return check_round_trip(b.build())


@pytest.mark.parametrize(("B", "T", "S"), [(2, 3, 5), (1, 7, 2)])
def test_symbolic_graph_runs_at_two_sizes(rng, B, T, S):
    graph = _symbolic_graph()
    assert "f32[B, S + T - 1, 24]" in print_graph(graph)
    x, y = rand(rng, B, T, 24), rand(rng, B, S, 24)
    tx, ty = to_torch(x), to_torch(y)
    heads, tail, first, padded, mask, pos = run(graph, x, y)
    assert_close(heads, tx.reshape(B, T, 4, 6).permute(0, 2, 1, 3), **EXACT)
    assert_close(tail, torch.cat([tx, ty], 1)[:, 1:], **EXACT)
    assert_close(first, tx[:, :1], **EXACT)
    assert_close(padded, F.pad(tx[:, 1:], [0, 0, 2, 0], value=-1.0), **EXACT)
    assert_close(mask, torch.tril(torch.ones(T, T)), **EXACT)
    assert_close(pos, torch.arange(T).expand(B, T), **EXACT)


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("x_type", "op", "attrs", "message"), [
    (f32[2, 3], "transpose", {"perm": [0, 0]}, r"perm \[0, 0\] is not a permutation of the 2 axes"),
    (f32[2, 3], "transpose", {"perm": [0, 1, 2]}, r"not a permutation"),
    (f32[2, 3], "reshape", {"shape": [4, 2]}, r"cannot reshape x: f32\[2, 3\] \(6 elements\) to \[4, 2\]"),
    (f32[2, 3], "reshape", {"shape": [4, -1]}, r"cannot reshape .* besides the -1"),
    (f32[2, 3], "reshape", {"shape": [-1, -1]}, r"more than one -1"),
    (f32["B", "T"], "reshape", {"shape": ["B", 5]}, r"cannot reshape x: f32\[B, T\] \(B\*T elements\)"),
    (f32["B", "T"], "reshape", {"shape": [3, -1]}, r"cannot reshape"),
    (f32[2, 3], "expand", {"shape": [2, 4]}, r"cannot expand axis 1 .* from size 3 to 4"),
    (f32[3], "expand", {"shape": [-1, 3]}, r"new leading axes may not be -1"),
    (f32["T"], "expand", {"shape": [4]}, r"from size T to 4"),
    (f32[2, 3], "squeeze", {"axes": [0]}, r"squeeze axis 0 of x: f32\[2, 3\] has size 2, not 1"),
    (f32["B", 1], "squeeze", {"axes": [0]}, r"has size B, not 1"),
    (f32[5], "split", {"axis": 0, "sizes": [2, 2]}, r"add up to 4, but axis 0 of x: f32\[5\] is 5"),
    (f32["T"], "split", {"axis": 0, "sizes": [2, 2]}, r"(?s)is T.*use -1"),
    (f32[5], "split", {"axis": 0, "sizes": [-1, -1]}, r"at most one -1"),
    (f32[5], "split", {"axis": 0, "sizes": [3, 4, -1]}, r"exceed axis 0"),
    (f32[5], "slice", {"axes": [0], "starts": [0], "ends": [2], "steps": [0]}, r"step must not be 0"),
    (f32[5], "slice", {"axes": [0, 0], "starts": [0, 0], "ends": [2, 2]}, r"repeat an axis"),
    (f32[5], "slice", {"axes": [0], "starts": [0, 1], "ends": [2]}, r"same length"),
    (f32["T"], "slice", {"axes": [0], "starts": [-2], "ends": [3]}, r"cannot express"),
    (f32["T"], "slice", {"axes": [0], "starts": [0], "ends": [END], "steps": [-1]}, r"negative step"),
    (f32[2, 3], "pad", {"pads": [1, 1]}, r"pad needs 4 pads"),
    (f32[2, 3], "pad", {"pads": [0, 0, -2, -2]}, r"negative size"),
    (i64[2], "pad", {"pads": [1, 1], "value": 0.5}, r"value 0.5 cannot be stored exactly in dtype i64"),
    (f32[3], "triu", {}, r"rank >= 2"),
    (f32[()], "concat", {"axis": 0}, r"rank >= 1"),
    (f32[2, 3], "unsqueeze", {"axes": [4]}, r"axis 4 is out of range for rank 3"),
])
def test_inference_errors(x_type, op, attrs, message):
    with pytest.raises(TypeInferenceError, match=message):
        _result_type(x_type, op, **attrs)


def test_concat_errors_name_the_operand():
    with pytest.raises(TypeInferenceError, match=r"concat operand 1: f32\[2, 5\] differs from operand 0: "
                                                 r"f32\[3, 4\] on axis 1 \(5 != 4\)"):
        _result_type(f32[3, 4], "concat", f32[2, 5], axis=0)
    with pytest.raises(TypeInferenceError, match=r"operand 1: f32\[B, S\] differs .* \(S != T\)"):
        _result_type(f32["B", "T"], "concat", f32["B", "S"], axis=0)
    with pytest.raises(TypeInferenceError, match=r"concat operand 1: i64\[3\] does not match .* dtype"):
        _result_type(f32[3], "concat", i64[3], axis=0)


def test_source_errors():
    with pytest.raises(TypeInferenceError, match=r"value 1.5 cannot be stored exactly in dtype i32"):
        run_op("full", shape=[2], value=1.5, dtype="i32")
    with pytest.raises(TypeInferenceError, match=r"full shape \[2, -3\] has a negative size"):
        run_op("full", shape=[2, -3], value=1.0)
    with pytest.raises(TypeInferenceError, match=r"iota needs a shape of rank >= 1"):
        run_op("iota", shape=[])


def test_symbolic_slice_past_the_end_is_caught_at_run_time():
    b = GraphBuilder("g")
    x = b.input("x", f32["T"])
    b.output(b.slice(x, axes=[0], starts=[0], ends=[4]))
    graph = b.build()
    assert_close(run(graph, np.arange(6, dtype=np.float32))[0], torch.arange(4), **EXACT)
    with pytest.raises(ArchirError, match=r"slice produced shape \[2\] but its type is f32\[4\]"):
        run(graph, np.arange(2, dtype=np.float32))
