"""Reductions against PyTorch: random shapes, axis sets, keepdims, integer accumulation, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from archir.builder import GraphBuilder
from archir.errors import TypeInferenceError
from archir.interpreter import run
from archir.registry import Trait, get_op
from archir.types import DType, f32, i64
from tests.harness import assert_close, run_op, to_torch


def _cases(seed: int, count: int) -> list[tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """Random shapes (rank 1-4) with an axis set: all, one axis, or a random subset, some negative."""
    rng = np.random.default_rng(seed)
    cases: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
    for i in range(count):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 6, size=rank))
        if i % 4 == 0:
            axes = None
        else:
            picked = rng.choice(rank, size=int(rng.integers(1, rank + 1)), replace=False)
            axes = tuple(int(a) - rank if rng.random() < 0.5 else int(a) for a in picked)
        cases.append((shape, axes))
    return cases


CASES = _cases(seed=1, count=12)
TORCH_REDUCE = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}


def torch_reduce(op: str, t: torch.Tensor, axes: tuple[int, ...] | None, keepdims: bool) -> torch.Tensor:
    dims = tuple(range(t.ndim)) if axes is None else axes
    if op != "prod":
        return TORCH_REDUCE[op](t, dim=dims, keepdim=keepdims)
    for d in sorted((a % t.ndim for a in dims), reverse=True):  # torch.prod takes one dim at a time
        t = torch.prod(t, dim=d, keepdim=keepdims)
    return t


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("shape,axes", CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_float_reductions_match_torch(rng, op, shape, axes, keepdims):
    # prod over up to 625 factors stays well scaled with factors near 1
    x = rng.uniform(0.8, 1.25, shape).astype(np.float32) if op == "prod" else \
        rng.standard_normal(shape).astype(np.float32)
    got = run_op(op, x, axes=axes, keepdims=keepdims)
    assert got.dtype == np.float32
    assert_close(got, torch_reduce(op, to_torch(x), axes, keepdims), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", ["sum", "prod"])
@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.int64, np.bool_])
@pytest.mark.parametrize("shape,axes", CASES[:6])
def test_integer_sum_and_prod_accumulate_in_i64(rng, op, dtype, shape, axes):
    low, high = (-3, 4) if op == "sum" else (-2, 3)
    x = rng.integers(low, high, shape).astype(dtype)
    got = run_op(op, x, axes=axes)
    want = torch_reduce(op, to_torch(x), axes, False)
    assert got.dtype == np.int64 and want.dtype == torch.int64
    np.testing.assert_array_equal(got, want.numpy())


def test_integer_sum_does_not_wrap_around():
    x = np.full((300,), 100, dtype=np.int8)
    assert run_op("sum", x) == 30000


@pytest.mark.parametrize("op", ["max", "min"])
def test_integer_max_min_keep_dtype(rng, op):
    x = rng.integers(-50, 50, (3, 4, 5)).astype(np.int32)
    got = run_op(op, x, axes=[0, 2], keepdims=True)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, torch_reduce(op, to_torch(x), (0, 2), True).numpy())


def test_max_propagates_nan_like_torch():
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    got = run_op("max", x, axes=[1])
    assert_close(got, torch.amax(to_torch(x), dim=1), atol=0, rtol=0)


def test_reduce_of_rank0_is_identity():
    x = np.array(2.5, dtype=np.float32)
    assert run_op("sum", x).shape == () and run_op("sum", x) == np.float32(2.5)


@pytest.mark.parametrize("op,fn", [("argmax", torch.argmax), ("argmin", torch.argmin)])
@pytest.mark.parametrize("shape,axis", [((7,), -1), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4, 5), -2),
                                        ((4, 1, 6), 1), ((2, 6, 3), -3)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_arg_reductions_match_torch(rng, op, fn, shape, axis, keepdims):
    x = rng.standard_normal(shape).astype(np.float32)
    got = run_op(op, x, axis=axis, keepdims=keepdims)
    want = fn(to_torch(x), dim=axis, keepdim=keepdims)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize("op,fn", [("argmax", torch.argmax), ("argmin", torch.argmin)])
def test_arg_reductions_pick_the_first_of_ties(rng, op, fn):
    x = rng.integers(0, 3, (6, 9)).astype(np.int32)
    np.testing.assert_array_equal(run_op(op, x, axis=1), fn(to_torch(x), dim=1).numpy())


def test_symbolic_shapes_reduce_symbolically():
    b = GraphBuilder("g")
    x = b.input("x", f32["B", "T", 16])
    s = b.sum(x, axes=[1], keepdims=True)
    m = b.mean(x, axes=[0, -1])
    a = b.argmax(x, axis=1)
    assert s.type == f32["B", 1, 16]
    assert m.type == f32["T"]
    assert a.type == i64["B", 16]
    b.output(s, m, a)
    data = np.random.default_rng(3).standard_normal((2, 5, 16)).astype(np.float32)
    got_s, got_m, got_a = run(b.build(), data)
    t = to_torch(data)
    assert_close(got_s, t.sum(dim=1, keepdim=True), atol=1e-5)
    assert_close(got_m, t.mean(dim=(0, 2)), atol=1e-5)
    np.testing.assert_array_equal(got_a, t.argmax(dim=1).numpy())


def test_every_reduction_has_the_reduction_trait():
    for name in ("sum", "mean", "max", "min", "prod", "argmax", "argmin"):
        assert get_op(name).has(Trait.REDUCTION)


def _infer_error(op: str, type_, **attrs) -> str:
    b = GraphBuilder("g")
    x = b.input("x", type_)
    with pytest.raises(TypeInferenceError) as info:
        b.op(op, x, **attrs)
    return str(info.value)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
def test_out_of_range_axis_names_axis_and_rank(op):
    message = _infer_error(op, f32[2, 3], axes=[0, 2])
    assert "axis 2 is out of range for x of rank 2 (f32[2, 3])" in message
    assert "[-2, 1]" in message


def test_negative_out_of_range_axis():
    assert "axis -4 is out of range for x of rank 3" in _infer_error("sum", f32[2, 3, 4], axes=[-4])


def test_repeated_axis_names_axis_and_rank():
    message = _infer_error("max", f32[2, 3, 4], axes=[1, -2])
    assert re.search(r"axes \[1, -2\] name axis 1 twice .* of rank 3", message)


def test_empty_axes_are_rejected_with_a_hint():
    message = _infer_error("sum", f32[2, 3], axes=[])
    assert "axes is empty" in message and "axes = none" in message


def test_mean_of_integers_is_an_error():
    message = _infer_error("mean", DType.i32[4])
    assert "mean needs a float x, got i32[4]" in message and "cast" in message


def test_argmax_axis_out_of_range_and_rank0():
    assert "axis 2 is out of range for x of rank 2" in _infer_error("argmax", f32[3, 4], axis=2)
    assert "rank-0 tensor has no axes" in _infer_error("argmin", f32[()])
