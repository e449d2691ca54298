"""linalg ops (matmul, linear, conv1d/2d, max/avg pooling) against torch, symbolic shapes, errors.

Tolerance: float32 results match torch within atol = rtol = 1e-4 (accumulation order differs);
integer results match exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir import ArchirError, GraphBuilder, TypeInferenceError, f16, f32, i32, i64
from archir.interpreter import run
from archir.printer import print_graph
from archir.registry import Trait, get_op
from archir.types import DType, TensorType
from tests.harness import assert_close, check_round_trip, rand, run_op, to_torch

TOL = {"atol": 1e-4, "rtol": 1e-4}


def _optional(*arrays: np.ndarray | None) -> list[np.ndarray]:
    return [a for a in arrays if a is not None]


# -- matmul -----------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),  # vector @ matrix
    ((3, 4), (4,)),  # matrix @ vector
    ((4,), (4,)),  # dot: a scalar
    ((7, 3, 4), (4, 2)),
    ((2, 1, 3, 4), (5, 4, 6)),  # batch dims broadcast
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((1, 3, 4), (6, 4, 2)),
]


@pytest.mark.parametrize(("sa", "sb"), MATMUL_SHAPES)
def test_matmul_matches_torch(rng, sa, sb):
    a, b = rand(rng, *sa), rand(rng, *sb)
    assert_close(run_op("matmul", a, b), torch.matmul(to_torch(a), to_torch(b)), **TOL)


def test_matmul_integers_are_exact(rng):
    a = rng.integers(-5, 5, (2, 3, 4)).astype(np.int64)
    b = rng.integers(-5, 5, (4, 6)).astype(np.int64)
    got = run_op("matmul", a, b)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch.matmul(to_torch(a), to_torch(b)).numpy())


@pytest.mark.parametrize(("da", "db", "want"), [(f16, f32, f32), (i32, f32, f32), (i32, i64, i64)])
def test_matmul_promotes_dtypes(da, db, want):
    b = GraphBuilder("g")
    out = b.matmul(b.input("a", da[2, 3]), b.input("b", db[3, 4]))
    assert out.type == want[2, 4]


def test_matmul_symbolic_batch_dims(rng):
    b = GraphBuilder("attn_scores")
    q = b.input("q", f32["B", 1, "T", 8])
    k = b.input("k", f32["H", 8, "S"])
    b.output(b.matmul(q, k))
    graph = check_round_trip(b.build())
    assert str(graph.outputs[0].type) == "f32[B, H, T, S]"
    for sizes in ((2, 3, 5, 7), (1, 4, 1, 2)):
        batch, heads, t, s = sizes
        qa, ka = rand(rng, batch, 1, t, 8), rand(rng, heads, 8, s)
        (got,) = run(graph, qa, ka)
        assert_close(got, torch.matmul(to_torch(qa), to_torch(ka)), **TOL)


# -- linear -----------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(6,), (4, 6), (2, 5, 6)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(rng, x_shape, with_bias):
    x, w = rand(rng, *x_shape), rand(rng, 3, 6)
    bias = rand(rng, 3) if with_bias else None
    want = F.linear(to_torch(x), to_torch(w), None if bias is None else to_torch(bias))
    assert_close(run_op("linear", x, w, bias), want, **TOL)


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_decomposition_matches_impl(rng, with_bias):
    op = get_op("linear")
    assert op.decompose is not None and op.has(Trait.COMPOSITE) and op.has(Trait.CONTRACTION)
    b = GraphBuilder("linear_decomposed")
    x = b.input("x", f32["B", "T", 6])
    w = b.input("w", f32[3, 6])
    bias = b.input("bias", f32[3]) if with_bias else None
    result = op.decompose(b, x, w, bias)
    b.output(result)
    graph = check_round_trip(b.build())
    want_ops = ["transpose", "matmul", "add"] if with_bias else ["transpose", "matmul"]
    assert [n.op for n in graph.nodes] == want_ops
    assert str(result.type) == "f32[B, T, 3]"
    xa, wa = rand(rng, 2, 5, 6), rand(rng, 3, 6)
    ba = rand(rng, 3) if with_bias else None
    (got,) = run(graph, *_optional(xa, wa, ba))
    assert_close(got, op.impl(xa, wa, ba), **TOL)
    assert_close(got, F.linear(to_torch(xa), to_torch(wa), None if ba is None else to_torch(ba)), **TOL)


# -- convolution ------------------------------------------------------------------------------
CONV1D_CASES = [
    # (batch, in_ch, length, out_ch, kernel, stride, padding, dilation, groups, bias)
    (2, 3, 11, 4, 3, 1, 0, 1, 1, True),
    (1, 4, 16, 6, 5, 2, 2, 1, 2, False),
    (3, 6, 9, 6, 3, 1, 1, 1, 6, True),  # depthwise
    (2, 2, 20, 5, 3, 3, 1, 2, 1, True),
    (1, 8, 7, 4, 1, 1, 0, 1, 4, False),  # pointwise, grouped
]


@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_matches_torch(rng, case):
    n, cin, length, cout, k, s, p, d, g, with_bias = case
    x, w = rand(rng, n, cin, length), rand(rng, cout, cin // g, k)
    bias = rand(rng, cout) if with_bias else None
    got = run_op("conv1d", x, w, bias, stride=[s], padding=[p], dilation=[d], groups=g)
    want = F.conv1d(to_torch(x), to_torch(w), None if bias is None else to_torch(bias),
                    stride=s, padding=p, dilation=d, groups=g)
    assert_close(got, want, **TOL)


CONV2D_CASES = [
    # (batch, in_ch, (h, w), out_ch, kernel, stride, padding, dilation, groups, bias)
    (2, 3, (9, 12), 8, (3, 3), (2, 2), (1, 1), (1, 1), 1, True),
    (1, 4, (10, 7), 6, (3, 2), (1, 2), (0, 1), (1, 1), 2, False),
    (2, 5, (8, 8), 5, (3, 3), (1, 1), (1, 1), (1, 1), 5, True),  # depthwise
    (1, 2, (13, 11), 4, (3, 3), (2, 1), (2, 2), (2, 3), 1, True),  # dilated
    (3, 6, (5, 6), 9, (1, 1), (1, 1), (0, 0), (1, 1), 3, False),  # grouped pointwise
    (1, 3, (16, 16), 4, (7, 7), (2, 2), (3, 3), (1, 1), 1, True),  # ResNet stem shape
]


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_torch(rng, case):
    n, cin, (h, w_), cout, k, s, p, d, g, with_bias = case
    x, w = rand(rng, n, cin, h, w_), rand(rng, cout, cin // g, *k)
    bias = rand(rng, cout) if with_bias else None
    got = run_op("conv2d", x, w, bias, stride=list(s), padding=list(p), dilation=list(d), groups=g)
    want = F.conv2d(to_torch(x), to_torch(w), None if bias is None else to_torch(bias),
                    stride=s, padding=p, dilation=d, groups=g)
    assert_close(got, want, **TOL)


@pytest.mark.parametrize("seed", range(10))
def test_conv2d_random_configs_match_torch(seed):
    rng = np.random.default_rng(seed)
    g = int(rng.choice([1, 2, 3]))
    cin, cout = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 4, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2))
    s = tuple(int(v) for v in rng.integers(1, 3, 2))
    p = tuple(int(v) for v in rng.integers(0, 3, 2))
    spatial = [di * (ki - 1) + 1 + int(rng.integers(0, 8)) for ki, di in zip(k, d, strict=True)]
    x, w, bias = rand(rng, 2, cin, *spatial), rand(rng, cout, cin // g, *k), rand(rng, cout)
    got = run_op("conv2d", x, w, bias, stride=list(s), padding=list(p), dilation=list(d), groups=g)
    want = F.conv2d(to_torch(x), to_torch(w), to_torch(bias), stride=s, padding=p, dilation=d,
                    groups=g)
    assert_close(got, want, **TOL)


def test_conv2d_symbolic_spatial_dims(rng):
    b = GraphBuilder("stem")
    x = b.input("x", f32["B", 3, "H", "W"])
    w = b.input("w", f32[8, 3, 3, 3])
    b.output(b.conv2d(x, w, stride=[2, 2], padding=[1, 1]))
    graph = check_round_trip(b.build())
    assert str(graph.outputs[0].type) == "f32[B, 8, ((H - 1) // 2) + 1, ((W - 1) // 2) + 1]"
    wa = rand(rng, 8, 3, 3, 3)
    for n, h, w_ in ((2, 9, 12), (1, 16, 7)):
        xa = rand(rng, n, 3, h, w_)
        (got,) = run(graph, xa, wa)
        assert_close(got, F.conv2d(to_torch(xa), to_torch(wa), stride=2, padding=1), **TOL)


def test_conv1d_same_padding_keeps_symbolic_length(rng):
    b = GraphBuilder("conv1d_same")
    x = b.input("x", f32["B", 4, "L"])
    w = b.input("w", f32[6, 2, 5])
    b.output(b.conv1d(x, w, padding=[2], groups=2))
    graph = check_round_trip(b.build())
    assert str(graph.outputs[0].type) == "f32[B, 6, L]"
    wa = rand(rng, 6, 2, 5)
    for n, length in ((1, 5), (3, 17)):
        xa = rand(rng, n, 4, length)
        (got,) = run(graph, xa, wa)
        assert_close(got, F.conv1d(to_torch(xa), to_torch(wa), padding=2, groups=2), **TOL)


# -- pooling ----------------------------------------------------------------------------------
POOL_CASES = [
    # (kernel, stride, padding)
    ((2, 2), None, (0, 0)),
    ((3, 3), (2, 2), (1, 1)),
    ((3, 2), (1, 2), (1, 0)),
    ((2, 3), (3, 1), (0, 1)),
]


@pytest.mark.parametrize(("kernel", "stride", "padding"), POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d_matches_torch(rng, kind, kernel, stride, padding):
    # All-negative inputs: a max pool that padded with 0 instead of -inf would differ.
    x = -np.abs(rand(rng, 2, 3, 9, 8)) - 1.0
    attrs = {"kernel": list(kernel), "padding": list(padding)}
    if stride is not None:
        attrs["stride"] = list(stride)
    got = run_op(f"{kind}_pool2d", x, **attrs)
    torch_pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    want = torch_pool(to_torch(x), kernel, stride or kernel, padding)
    assert_close(got, want, **TOL)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, None, 0), (3, 2, 1), (4, 1, 2), (2, 3, 1)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool1d_matches_torch(rng, kind, kernel, stride, padding):
    x = -np.abs(rand(rng, 2, 4, 13)) - 1.0
    attrs = {"kernel": [kernel], "padding": [padding]}
    if stride is not None:
        attrs["stride"] = [stride]
    got = run_op(f"{kind}_pool1d", x, **attrs)
    torch_pool = F.max_pool1d if kind == "max" else F.avg_pool1d
    assert_close(got, torch_pool(to_torch(x), kernel, stride or kernel, padding), **TOL)


def test_max_pool2d_symbolic(rng):
    b = GraphBuilder("pool")
    x = b.input("x", f32["B", 4, "H", "W"])
    b.output(b.max_pool2d(x, kernel=[3, 3], stride=[2, 2], padding=[1, 1]))
    graph = check_round_trip(b.build())
    assert str(graph.outputs[0].type) == "f32[B, 4, ((H - 1) // 2) + 1, ((W - 1) // 2) + 1]"
    for shape in ((2, 4, 8, 11), (1, 4, 5, 4)):
        xa = rand(rng, *shape)
        (got,) = run(graph, xa)
        assert_close(got, F.max_pool2d(to_torch(xa), 3, 2, 1), **TOL)


def test_pool_keeps_low_precision_dtype(rng):
    x = rand(rng, 1, 2, 6, 6).astype(np.float16)
    got = run_op("avg_pool2d", x, kernel=[2, 2])
    assert got.dtype == np.float16
    want = F.avg_pool2d(to_torch(x.astype(np.float32)), 2)
    assert_close(got, want, atol=1e-2, rtol=1e-2)  # rounded to f16 once at the output


# -- inference errors -------------------------------------------------------------------------
def _infer(op: str, *types: TensorType, **attrs) -> None:
    b = GraphBuilder("g")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.op(op, *inputs, **attrs)


def test_matmul_inner_mismatch_names_both_shapes():
    with pytest.raises(TypeInferenceError) as err:
        _infer("matmul", f32[2, 3], f32[4, 5])
    text = str(err.value)
    assert "matmul inner dims differ" in text
    assert "f32[2, 3]" in text and "f32[4, 5]" in text
    assert "test_linalg.py" in text  # the builder points at the user's line


@pytest.mark.parametrize(("a", "b", "message"), [
    (f32["B", 3], f32["K", 5], "inner dims differ"),
    (f32[2, 3, 4], f32[5, 4, 6], "batch dims .* do not broadcast"),
    (f32[()], f32[3], "rank >= 1"),
    (TensorType((3,), DType.bool), f32[3], "must be numeric"),
])
def test_matmul_errors(a, b, message):
    with pytest.raises(ArchirError, match=message):
        _infer("matmul", a, b)


@pytest.mark.parametrize(("types", "message"), [
    ((f32[2, 6], f32[3, 5]), "has 6 features but weight"),
    ((f32[2, 6], f32[6]), "weight \\[out, in\\]"),
    ((f32[2, 6], f32[3, 6], f32[4]), "bias must be \\[3\\]"),
])
def test_linear_errors(types, message):
    with pytest.raises(TypeInferenceError, match=message):
        _infer("linear", *types)


@pytest.mark.parametrize(("x", "w", "attrs", "message"), [
    (f32[1, 4, 8, 8], f32[6, 3, 3, 3], {}, "channel mismatch: .* weight dim 1 must be 4"),
    (f32[1, 4, 8, 8], f32[6, 4, 3, 3], {"groups": 2}, "weight dim 1 must be 2"),
    (f32[1, 5, 8, 8], f32[6, 1, 3, 3], {"groups": 2}, "5 channels, not divisible by groups = 2"),
    (f32[1, 4, 8, 8], f32[5, 2, 3, 3], {"groups": 2}, "5 output channels, not divisible"),
    (f32[1, 4, 8, 8], f32[4, 4, 3, 3], {"groups": 0}, "groups must be >= 1"),
    (f32[1, 4, 8, 8], f32[4, 4, 3, 3], {"stride": [2]}, "stride needs 2 value"),
    (f32[1, 4, 8, 8], f32[4, 4, 3, 3], {"dilation": [0, 1]}, "dilation values must be >= 1"),
    (f32[1, 4, 2, 8], f32[4, 4, 3, 3], {}, "window of 3 does not fit"),
    (f32[4, 8, 8], f32[4, 4, 3, 3], {}, "must be NCHW"),
])
def test_conv2d_errors(x, w, attrs, message):
    with pytest.raises(TypeInferenceError, match=message):
        _infer("conv2d", x, w, **attrs)


def test_conv1d_bias_and_weight_rank_errors():
    with pytest.raises(TypeInferenceError, match="bias must be \\[6\\]"):
        _infer("conv1d", f32[1, 4, 9], f32[6, 4, 3], f32[4])
    with pytest.raises(TypeInferenceError, match="weight must be"):
        _infer("conv1d", f32[1, 4, 9], f32[6, 4])


@pytest.mark.parametrize(("x", "attrs", "message"), [
    (f32[1, 2, 8, 8], {"kernel": [2, 2], "padding": [2, 0]}, "exceeds half the kernel"),
    (f32[1, 2, 8, 8], {"kernel": [3]}, "kernel needs 2 value"),
    (f32[1, 2, 2, 8], {"kernel": [3, 3]}, "does not fit"),
    (i64[1, 2, 8, 8], {"kernel": [2, 2]}, "float dtype"),
])
def test_pool_errors(x, attrs, message):
    with pytest.raises(TypeInferenceError, match=message):
        _infer("max_pool2d", x, **attrs)


def test_printed_attrs_leave_out_defaults():
    b = GraphBuilder("g")
    x = b.input("x", f32[1, 2, 8, 8])
    b.output(b.avg_pool2d(x, kernel=[2, 2]))
    assert "avg_pool2d(%x) {kernel = [2, 2]} : f32[1, 2, 4, 4]" in print_graph(b.build())
