"""The interpreter's call-time checks and its handling of parameters and low-precision floats."""

import numpy as np
import pytest
import torch

from archir import ArgumentError, GraphBuilder, bf16, f16, f32, i64
from archir.interpreter import run


def _graph():
    b = GraphBuilder("g")
    x = b.input("x", f32["B", "T"])
    y = b.input("y", f32["T"])
    w = b.param("w", f32[()])
    b.output(b.mul(b.add(x, y), w))
    return b.build()


def test_runs_with_positional_keyword_and_param_override():
    g = _graph()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.ones(3, np.float32)
    w = np.asarray(2.0, np.float32)
    (out,) = run(g, x, y=y, params={"w": w})
    np.testing.assert_array_equal(out, (x + y) * 2)
    (out2,) = run(g, torch.from_numpy(x), torch.from_numpy(y), params={"w": w})
    np.testing.assert_array_equal(out2, out)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.ones((2, 3)), np.ones(3, np.float32)), {},
         r"input 'x' expects f32\[B, T\] but got dtype float64"),
        ((np.ones((2, 3), np.float32), np.ones(4, np.float32)), {},
         r"input 'y' expects f32\[T\] but got shape \[4\]: T is 3 from an earlier input"),
        ((np.ones(3, np.float32), np.ones(3, np.float32)), {}, r"input 'x' expects f32\[B, T\] .*rank 1"),
        ((np.ones((2, 3), np.float32),), {}, r"graph @g is missing inputs \['y'\]"),
        ((np.ones((2, 3), np.float32),) * 3, {},
         r"graph @g takes 2 inputs \(x: f32\[B, T\], y: f32\[T\]\), got 3"),
        ((np.ones((2, 3), np.float32),), {"z": 1}, r"graph @g has no input 'z'"),
        (("text", np.ones(3, np.float32)), {}, r"argument 'x' must be an array, got str"),
    ],
)
def test_wrong_arguments_name_the_input_and_expected_type(args, kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        run(_graph(), *args, params={"w": np.asarray(1.0, np.float32)}, **kwargs)


def test_missing_param_data_is_an_argument_error():
    with pytest.raises(ArgumentError, match="parameter 'w' has no data"):
        run(_graph(), np.ones((2, 3), np.float32), np.ones(3, np.float32))


def test_symbolic_expression_dims_are_checked():
    b = GraphBuilder("g")
    x = b.input("x", f32["T"])
    y = b.input("y", f32["T + 1"])
    b.output(x, y)
    g = b.build()
    run(g, np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ArgumentError, match=r"input 'y' expects f32\[T \+ 1\] but got shape \[3\]"):
        run(g, np.ones(3, np.float32), np.ones(3, np.float32))


@pytest.mark.parametrize(("dtype", "tdtype"), [(f16, torch.float16), (bf16, torch.bfloat16)])
def test_low_precision_is_computed_in_f32_and_rounded(dtype, tdtype):
    # Reference: torch computes fp16/bf16 elementwise ops in f32 internally and rounds the result.
    rng = np.random.default_rng(0)
    b = GraphBuilder("g")
    x = b.input("x", dtype[64])
    b.output(b.tanh(b.mul(x, x)))
    xs = rng.standard_normal(64).astype(np.float32)
    tx = torch.from_numpy(xs).to(tdtype)
    (out,) = run(b.build(), tx.float().numpy().astype(dtype.numpy))
    assert out.dtype == dtype.numpy
    want = torch.tanh(tx * tx).float().numpy()
    np.testing.assert_allclose(out.astype(np.float32), want, rtol=0, atol=1e-2)


def test_integer_graph_keeps_exact_dtypes():
    b = GraphBuilder("g")
    x = b.input("x", i64[3])
    b.output(b.add(x, x))
    (out,) = run(b.build(), np.array([1, 2, 2**40], np.int64))
    assert out.dtype == np.int64 and out.tolist() == [2, 4, 2**41]
