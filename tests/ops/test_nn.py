"""nn ops against PyTorch, their decompositions against their own impls, and inference errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir.builder import GraphBuilder
from archir.errors import TypeInferenceError
from archir.interpreter import run
from archir.ir import Graph
from archir.registry import Trait, get_op
from archir.types import DType, TensorType, boolean, f32, f64
from archir.verifier import verify
from tests.harness import assert_close, check_round_trip, rand, run_op, to_torch


# -- softmax and log_softmax ----------------------------------------------------------------------
@pytest.mark.parametrize("op,fn", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
@pytest.mark.parametrize("shape,axis", [((7,), -1), ((4, 9), -1), ((4, 9), 0), ((2, 3, 5), 1),
                                        ((2, 3, 5), -3), ((2, 1, 4, 6), 2)])
def test_softmax_family_matches_torch(rng, op, fn, shape, axis):
    x = rand(rng, *shape) * 3
    assert_close(run_op(op, x, axis=axis), fn(to_torch(x), dim=axis), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op,fn", [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)])
def test_softmax_family_is_stable_for_large_inputs(rng, op, fn):
    x = rand(rng, 3, 8) * 1000  # exp would overflow without subtracting the max
    got = run_op(op, x)
    assert np.isfinite(got).all()
    assert_close(got, fn(to_torch(x), dim=-1), atol=1e-5, rtol=1e-5)


# -- layer_norm, rms_norm, batch_norm -------------------------------------------------------------
@pytest.mark.parametrize("shape,begin_axis", [((4, 16), -1), ((2, 3, 8), -1), ((2, 3, 8), -2),
                                              ((2, 5, 4, 3), 1)])
@pytest.mark.parametrize("affine", ["none", "weight", "weight+bias"])
def test_layer_norm_matches_torch(rng, shape, begin_axis, affine):
    x = rand(rng, *shape) * 2 + 0.5
    normalized = shape[begin_axis:]
    weight = rand(rng, *normalized) if affine != "none" else None
    bias = rand(rng, *normalized) if affine == "weight+bias" else None
    got = run_op("layer_norm", x, weight, bias, begin_axis=begin_axis, eps=1e-5)
    want = F.layer_norm(to_torch(x), normalized, None if weight is None else to_torch(weight),
                        None if bias is None else to_torch(bias), eps=1e-5)
    assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,begin_axis", [((4, 16), -1), ((2, 3, 8), -2), ((3, 2, 2, 5), 1)])
@pytest.mark.parametrize("with_weight", [False, True])
def test_rms_norm_matches_torch(rng, shape, begin_axis, with_weight):
    x = rand(rng, *shape)
    normalized = list(shape[begin_axis:])
    weight = rand(rng, *normalized) if with_weight else None
    got = run_op("rms_norm", x, weight, begin_axis=begin_axis, eps=1e-6)
    want = F.rms_norm(to_torch(x), normalized, None if weight is None else to_torch(weight),
                      eps=1e-6)
    assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,axis", [((4, 6), 1), ((2, 3, 5), 1), ((2, 3, 4, 4), 1),
                                        ((2, 5, 3), -1), ((3, 4, 2, 2), -3)])
@pytest.mark.parametrize("affine", ["none", "weight", "weight+bias"])
def test_batch_norm_matches_torch_inference(rng, shape, axis, affine):
    x = rand(rng, *shape)
    c = shape[axis]
    mean, var = rand(rng, c), rng.uniform(0.5, 2.0, c).astype(np.float32)
    weight = rand(rng, c) if affine != "none" else None
    bias = rand(rng, c) if affine == "weight+bias" else None
    got = run_op("batch_norm", x, mean, var, weight, bias, axis=axis, eps=1e-5)
    channels_at_1 = torch.movedim(to_torch(x), axis, 1)  # torch wants the channels at dim 1
    want = F.batch_norm(channels_at_1, to_torch(mean), to_torch(var),
                        None if weight is None else to_torch(weight),
                        None if bias is None else to_torch(bias), training=False, eps=1e-5)
    assert_close(got, torch.movedim(want, 1, axis), atol=1e-5, rtol=1e-5)


# -- attention ------------------------------------------------------------------------------------
def sdpa(q, k, v, mask=None, causal=False, scale=None) -> torch.Tensor:
    """torch's SDPA on broadcast-expanded operands (it does not broadcast batch dims itself)."""
    qt, kt, vt = to_torch(q), to_torch(k), to_torch(v)
    batch = torch.broadcast_shapes(qt.shape[:-2], kt.shape[:-2], vt.shape[:-2])
    qt, kt, vt = (t.expand(*batch, *t.shape[-2:]) for t in (qt, kt, vt))
    m = None if mask is None else (mask if isinstance(mask, torch.Tensor) else to_torch(mask))
    return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=m, is_causal=causal, scale=scale)


def bottom_right_causal(tq: int, tk: int) -> torch.Tensor:
    return torch.ones(tq, tk, dtype=torch.bool).tril(tk - tq)


def test_attention_without_mask(rng):
    q, k, v = rand(rng, 2, 3, 5, 8), rand(rng, 2, 3, 7, 8), rand(rng, 2, 3, 7, 4)
    assert_close(run_op("attention", q, k, v), sdpa(q, k, v), atol=1e-5, rtol=1e-5)


def test_attention_causal_square(rng):
    q, k, v = rand(rng, 2, 2, 6, 8), rand(rng, 2, 2, 6, 8), rand(rng, 2, 2, 6, 8)
    got = run_op("attention", q, k, v, causal=True)
    assert_close(got, sdpa(q, k, v, causal=True), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tq,tk", [(3, 7), (1, 5), (6, 4)])
def test_attention_causal_is_bottom_right_aligned(rng, tq, tk):
    # With Tq > Tk the first queries see no key: torch and archir both give zeros there.
    q, k, v = rand(rng, 2, tq, 8), rand(rng, 2, tk, 8), rand(rng, 2, tk, 8)
    got = run_op("attention", q, k, v, causal=True)
    assert_close(got, sdpa(q, k, v, mask=bottom_right_causal(tq, tk)), atol=1e-5, rtol=1e-5)


def test_attention_bool_mask_broadcast_over_batch(rng):
    q, k, v = rand(rng, 2, 3, 5, 8), rand(rng, 2, 3, 6, 8), rand(rng, 2, 3, 6, 8)
    mask = rng.random((2, 1, 5, 6)) < 0.7
    mask[..., 0] = True
    got = run_op("attention", q, k, v, mask)
    assert_close(got, sdpa(q, k, v, mask=mask), atol=1e-5, rtol=1e-5)


def test_attention_float_additive_mask(rng):
    q, k, v = rand(rng, 3, 4, 8), rand(rng, 3, 6, 8), rand(rng, 3, 6, 8)
    mask = rand(rng, 4, 6)
    mask[1, 2:] = -np.inf
    got = run_op("attention", q, k, v, mask)
    assert_close(got, sdpa(q, k, v, mask=mask), atol=1e-5, rtol=1e-5)


def test_attention_fully_masked_rows_give_zeros_like_torch(rng):
    q, k, v = rand(rng, 2, 4, 8), rand(rng, 2, 5, 8), rand(rng, 2, 5, 8)
    mask = rng.random((4, 5)) < 0.5
    mask[2] = False
    got = run_op("attention", q, k, v, mask)
    assert (got[:, 2] == 0).all()
    assert_close(got, sdpa(q, k, v, mask=mask), atol=1e-5, rtol=1e-5)


def test_attention_causal_combined_with_bool_mask(rng):
    q, k, v = rand(rng, 2, 5, 8), rand(rng, 2, 7, 8), rand(rng, 2, 7, 8)
    mask = rng.random((2, 1, 7)) < 0.8
    got = run_op("attention", q, k, v, mask, causal=True)
    both = to_torch(mask) & bottom_right_causal(5, 7)
    assert_close(got, sdpa(q, k, v, mask=both), atol=1e-5, rtol=1e-5)


def test_attention_broadcasts_batch_and_head_dims(rng):
    q, k, v = rand(rng, 2, 4, 5, 8), rand(rng, 2, 1, 5, 8), rand(rng, 1, 4, 5, 6)
    got = run_op("attention", q, k, v, causal=True)
    assert got.shape == (2, 4, 5, 6)
    assert_close(got, sdpa(q, k, v, causal=True), atol=1e-5, rtol=1e-5)


def test_attention_custom_scale(rng):
    q, k, v = rand(rng, 2, 5, 16), rand(rng, 2, 5, 16), rand(rng, 2, 5, 16)
    got = run_op("attention", q, k, v, scale=0.3)
    assert_close(got, sdpa(q, k, v, scale=0.3), atol=1e-5, rtol=1e-5)


def test_attention_in_f64(rng):
    q, k, v = (rand(rng, 2, 6, 8, dtype=np.float64) for _ in range(3))
    got = run_op("attention", q, k, v, causal=True)
    assert got.dtype == np.float64
    assert_close(got, sdpa(q, k, v, causal=True), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, DType.bf16.numpy])
def test_low_precision_is_computed_in_f32_and_rounded_once(rng, dtype):
    x, w, b = rand(rng, 4, 32), rand(rng, 32), rand(rng, 32)
    got = run_op("layer_norm", x.astype(dtype), w.astype(dtype), b.astype(dtype))
    assert got.dtype == dtype
    x32, w32, b32 = (to_torch(a.astype(dtype).astype(np.float32)) for a in (x, w, b))
    want = F.layer_norm(x32, [32], w32, b32)
    assert_close(got, want, atol=3e-2, rtol=1e-2)  # one rounding to 8 (bf16) or 11 (f16) bits


def test_attention_infers_symbolic_shapes():
    b = GraphBuilder("g")
    q = b.input("q", f32["B", "H", "T", 64])
    k = b.input("k", f32["B", 1, "S", 64])
    v = b.input("v", f32["B", "H", "S", 32])
    mask = b.input("mask", boolean["B", 1, 1, "S"])
    assert b.attention(q, k, v, mask, causal=True).type == f32["B", "H", "T", 32]


# -- decompositions -------------------------------------------------------------------------------
def decomposed(op: str, types: list[TensorType], **attrs) -> Graph:
    """A graph computing `op` through its decomposition, verified and round-tripped as text."""
    op_def = get_op(op)
    b = GraphBuilder(f"{op}_decomposed")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    b.output(op_def.decompose(b, *inputs, **op_def.normalize_attrs(attrs)))
    graph = b.build()
    verify(graph)
    return check_round_trip(graph)


def check_decomposition(op: str, arrays: list[np.ndarray], types: list[TensorType] | None = None,
                        atol: float = 1e-5, **attrs) -> Graph:
    """The decomposition's type equals the op's and its value equals the op's impl within atol."""
    types = types or [TensorType(a.shape, DType.from_numpy(a.dtype)) for a in arrays]
    graph = decomposed(op, types, **attrs)
    fused = typed_op_graph(op, types, attrs)
    assert graph.outputs[0].type == fused.outputs[0].type
    assert all(node.op != op for node in graph.nodes)
    got = run(graph, *arrays)[0]
    assert_close(got, run(fused, *arrays)[0], atol=atol, rtol=atol)
    return graph


def typed_op_graph(op: str, types: list[TensorType], attrs: dict) -> Graph:
    b = GraphBuilder(op)
    b.output(b.op(op, *(b.input(f"x{i}", t) for i, t in enumerate(types)), **attrs))
    return b.build()


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_family_decomposition(rng, op, axis):
    check_decomposition(op, [rand(rng, 3, 5, 7) * 4], axis=axis)


@pytest.mark.parametrize("begin_axis", [-1, -2])
@pytest.mark.parametrize("affine", [0, 1, 2])
def test_layer_norm_decomposition(rng, begin_axis, affine):
    x = rand(rng, 2, 3, 8)
    params = [rand(rng, *x.shape[begin_axis:]) for _ in range(affine)]
    check_decomposition("layer_norm", [x, *params], begin_axis=begin_axis)


@pytest.mark.parametrize("with_weight", [False, True])
def test_rms_norm_decomposition(rng, with_weight):
    x = rand(rng, 2, 3, 8)
    check_decomposition("rms_norm", [x] + ([rand(rng, 8)] if with_weight else []))


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 4), 1), ((2, 5, 3), -1), ((4, 6), 1)])
def test_batch_norm_decomposition(rng, shape, axis):
    c = shape[axis]
    stats = [rand(rng, c), rng.uniform(0.5, 2.0, c).astype(np.float32), rand(rng, c), rand(rng, c)]
    check_decomposition("batch_norm", [rand(rng, *shape), *stats], axis=axis)


ATTENTION_DECOMPOSITIONS = [
    # (q shape, k shape, v shape, mask kind, attrs)
    ((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4), None, {}),
    ((2, 6, 8), (2, 6, 8), (2, 6, 8), None, {"causal": True}),
    ((2, 3, 8), (2, 7, 8), (2, 7, 8), None, {"causal": True}),
    ((2, 6, 8), (2, 4, 8), (2, 4, 8), None, {"causal": True}),
    ((2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 8), "bool", {}),
    ((3, 4, 8), (3, 6, 8), (3, 6, 8), "float", {"causal": True}),
    ((2, 4, 5, 8), (2, 1, 5, 8), (1, 4, 5, 6), "bool", {"causal": True, "scale": 0.3}),
]


@pytest.mark.parametrize("qs,ks,vs,mask_kind,attrs", ATTENTION_DECOMPOSITIONS)
def test_attention_decomposition(rng, qs, ks, vs, mask_kind, attrs):
    arrays = [rand(rng, *qs), rand(rng, *ks), rand(rng, *vs)]
    scores = (*qs[:-1], ks[-2])
    if mask_kind == "bool":
        mask = rng.random(scores) < 0.6
        mask[..., 0, :] = False  # one query that sees nothing: zeros in both forms
        arrays.append(mask)
    elif mask_kind == "float":
        arrays.append(rand(rng, *scores))
    graph = check_decomposition("attention", arrays, **attrs)
    ops = {node.op for node in graph.nodes}
    assert {"transpose", "matmul", "softmax"} <= ops
    assert ("iota" in ops) == bool(attrs.get("causal"))


SYMBOLIC_ATTENTION = [
    # (q, k, v types, concrete q, k, v shapes)
    ([f32["B", "T", 16]] * 3, [(2, 5, 16)] * 3),
    ([f32["B", "H", "T", 16], f32["B", "H", "S", 16], f32["B", "H", "S", 8]],
     [(2, 3, 4, 16), (2, 3, 7, 16), (2, 3, 7, 8)]),
    ([f32["B", "T", 16], f32["B", "T + 2", 16], f32["B", "T + 2", 16]],
     [(2, 3, 16), (2, 5, 16), (2, 5, 16)]),
    ([f32["B", "T", "D"]] * 3, [(2, 5, 12)] * 3),
]


@pytest.mark.parametrize("types,shapes", SYMBOLIC_ATTENTION)
def test_attention_decomposition_with_symbolic_shapes(rng, types, shapes):
    arrays = [rand(rng, *s) for s in shapes]
    graph = check_decomposition("attention", arrays, types=types, causal=True)
    assert graph.outputs[0].type == TensorType((*types[0].shape[:-1], types[2].shape[-1]), f32)
    # the same graph runs at another size too
    other = [rand(rng, 1, *s[1:-2], s[-2] + 2, s[-1]) for s in shapes]
    assert_close(run(graph, *other)[0], sdpa(*other, mask=bottom_right_causal(
        other[0].shape[-2], other[1].shape[-2])), atol=1e-5, rtol=1e-5)


def test_layer_norm_decomposition_with_symbolic_shapes(rng):
    types = [f32["B", "T", 16], f32[16], f32[16]]
    arrays = [rand(rng, 2, 5, 16), rand(rng, 16), rand(rng, 16)]
    check_decomposition("layer_norm", arrays, types=types)


def test_every_nn_op_is_composite_and_normalisations_say_so():
    for name in ("softmax", "log_softmax", "layer_norm", "rms_norm", "batch_norm", "attention"):
        assert get_op(name).has(Trait.COMPOSITE) and get_op(name).decompose is not None
    for name in ("softmax", "log_softmax", "layer_norm", "rms_norm", "batch_norm"):
        assert get_op(name).has(Trait.NORMALIZATION)


# -- inference errors -----------------------------------------------------------------------------
def infer_error(op: str, *types: TensorType | None, **attrs) -> str:
    b = GraphBuilder("g")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    with pytest.raises(TypeInferenceError) as info:
        b.op(op, *inputs, **attrs)
    return str(info.value)


def test_attention_head_size_mismatch():
    message = infer_error("attention", f32[2, 4, 8], f32[2, 4, 16], f32[2, 4, 8])
    assert "q f32[2, 4, 8] and k f32[2, 4, 16] disagree on the head size D (8 vs 16)" in message
    assert "test_nn.py" in message  # the error points at the user's line


def test_attention_key_count_mismatch():
    message = infer_error("attention", f32[2, 4, 8], f32[2, 5, 8], f32[2, 6, 8])
    assert "disagree on the key count Tk (5 vs 6)" in message


def test_attention_batch_mismatch_and_dtype_mismatch():
    message = infer_error("attention", f32[2, 4, 8], f32[3, 4, 8], f32[3, 4, 8])
    assert "batch dims of q f32[2, 4, 8], k f32[3, 4, 8] and v f32[3, 4, 8]" in message
    message = infer_error("attention", f32[4, 8], f64[4, 8], f32[4, 8])
    assert "q, k and v must share a dtype" in message


def test_attention_bad_masks():
    qkv = (f32[2, 4, 8], f32[2, 6, 8], f32[2, 6, 8])
    message = infer_error("attention", *qkv, boolean[4, 5])
    assert "mask bool[4, 5] does not broadcast to the scores shape [2, 4, 6]" in message
    message = infer_error("attention", *qkv, DType.i64[4, 6])
    assert "mask must be bool (True = attend) or f32" in message
    assert "rank >= 2" in infer_error("attention", f32[8], f32[6, 8], f32[6, 8])


def test_layer_norm_weight_shape_mismatch():
    message = infer_error("layer_norm", f32[2, 3, 8], f32[3, 8])
    assert "weight must be f32[8] (x.shape[-1:] of x f32[2, 3, 8]), got f32[3, 8]" in message
    message = infer_error("layer_norm", f32[2, 3, 8], f32[3, 8], f32[8], begin_axis=-2)
    assert "bias must be f32[3, 8] (x.shape[-2:] of x f32[2, 3, 8]), got f32[8]" in message


def test_norm_axis_out_of_range():
    assert "axis 3 is out of range for x of rank 3" in infer_error("layer_norm", f32[2, 3, 8],
                                                                   begin_axis=3)
    assert "axis -3 is out of range for x of rank 2" in infer_error("rms_norm", f32[3, 8],
                                                                    begin_axis=-3)
    assert "axis 2 is out of range for x of rank 2" in infer_error("softmax", f32[3, 8], axis=2)


def test_batch_norm_stat_shape_mismatch():
    message = infer_error("batch_norm", f32[2, 3, 4], f32[4], f32[3])
    assert re.search(r"mean must be f32\[3\] \(one per channel of x f32\[2, 3, 4\] along axis 1\), "
                     r"got f32\[4\]", message)


def test_norms_reject_integer_inputs():
    assert "x must have a float dtype, got i32[3, 4]" in infer_error("softmax", DType.i32[3, 4])
    assert "x must have a float dtype" in infer_error("layer_norm", DType.i64[3, 4])


def test_default_scale_is_one_over_sqrt_head_size(rng):
    q, k, v = rand(rng, 3, 9), rand(rng, 4, 9), rand(rng, 4, 2)
    got = run_op("attention", q, k, v)
    assert_close(got, run_op("attention", q, k, v, scale=1 / math.sqrt(9)), atol=0, rtol=0)
