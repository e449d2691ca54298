"""Elementwise ops against PyTorch: random broadcast shapes, every dtype the op takes, edge values
(inf, nan, zeros, out-of-domain inputs), mixed-dtype promotion, and type-inference errors.

Tolerances (interpreter vs torch, after one rounding to the result dtype): f64 rtol 1e-12 / atol
1e-12, f32 rtol 1e-5 / atol 1e-6, f16 rtol 2e-3 / atol 1e-3, bf16 rtol 1.6e-2 / atol 1e-2 (two
ulps); integer and bool results are exact; nan must sit where torch has nan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archir import ArchirError, GraphBuilder, TypeInferenceError, f32, i64
from archir.types import DType, TensorType
from tests.harness import run_op

BF16 = np.dtype(ml_dtypes.bfloat16)
NP = {"f64": np.float64, "f32": np.float32, "f16": np.float16, "bf16": BF16, "i64": np.int64,
      "i32": np.int32, "i8": np.int8, "bool": np.bool_}
FLOATS = ("f32", "f64", "f16", "bf16")
INTS = ("i64", "i32", "i8")
TOL = {"f64": (1e-12, 1e-12), "f32": (1e-5, 1e-6), "f16": (2e-3, 1e-3), "bf16": (1.6e-2, 1e-2)}


def tt(a: np.ndarray) -> torch.Tensor:
    """A torch tensor with the same dtype and values (bf16 goes through f32, which holds it exactly)."""
    if a.dtype == BF16:
        return torch.from_numpy(np.array(a.astype(np.float32))).to(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def check(got: np.ndarray, want: torch.Tensor) -> None:
    """Same shape, same dtype, values within the tolerance of the result dtype (exact for ints)."""
    w = want.float().numpy().astype(BF16) if want.dtype == torch.bfloat16 else want.numpy()
    assert got.shape == w.shape, f"shape {got.shape} != {w.shape}"
    assert got.dtype == w.dtype, f"dtype {got.dtype} != {w.dtype}"
    if w.dtype.kind in "biu":
        np.testing.assert_array_equal(got, w)
        return
    rtol, atol = TOL[DType.from_numpy(w.dtype).value]
    np.testing.assert_allclose(got.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)


def broadcast_pairs(seed: int, count: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Random shape pairs that broadcast: ranks 0-4, some leading dims dropped, some dims set to 1."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        full = [int(d) for d in rng.integers(2, 5, size=int(rng.integers(0, 5)))]
        derived = []
        for _side in range(2):
            shape = [1 if rng.random() < 0.3 else d for d in full]
            drop = int(rng.integers(0, len(shape) + 1)) if rng.random() < 0.4 else 0
            derived.append(tuple(shape[drop:]))
        pairs.append((derived[0], derived[1]))
    return pairs


PAIRS = [*broadcast_pairs(seed=7, count=5), ((), (3,)), ((2, 1, 4), (3, 1)), ((5,), ())]
SHAPES = [(), (7,), (2, 3, 4)]


def sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, low: float = -3.0,
           high: float = 3.0) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS:
        return rng.integers(int(low), int(high) + 1, shape).astype(NP[dtype])
    return rng.uniform(low, high, shape).astype(NP[dtype])


# -- unary ------------------------------------------------------------------------------------
# op: (torch fn, input range); domains keep clear of poles, the edge tests below cover them
FLOAT_UNARY: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], tuple[float, float]]] = {
    "exp": (torch.exp, (-4, 4)), "log": (torch.log, (0.05, 20)), "sqrt": (torch.sqrt, (0, 20)),
    "rsqrt": (torch.rsqrt, (0.05, 20)), "reciprocal": (torch.reciprocal, (0.1, 5)),
    "tanh": (torch.tanh, (-4, 4)), "sigmoid": (torch.sigmoid, (-8, 8)), "silu": (F.silu, (-8, 8)),
    "erf": (torch.special.erf, (-3, 3)), "sin": (torch.sin, (-7, 7)), "cos": (torch.cos, (-7, 7)),
    "floor": (torch.floor, (-5, 5)),
}
NUMERIC_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": torch.neg, "abs": torch.abs, "relu": torch.relu}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", sorted(FLOAT_UNARY))
def test_float_unary_matches_torch(rng, op, dtype):
    fn, (low, high) = FLOAT_UNARY[op]
    for shape in SHAPES:
        x = sample(rng, shape, dtype, low, high)
        if op == "reciprocal":
            x = np.where(rng.random(shape) < 0.5, x, -x).astype(x.dtype)
        check(run_op(op, x), fn(tt(x)))


@pytest.mark.parametrize("dtype", FLOATS + INTS)
@pytest.mark.parametrize("op", sorted(NUMERIC_UNARY))
def test_numeric_unary_matches_torch(rng, op, dtype):
    for shape in SHAPES:
        x = sample(rng, shape, dtype, -100, 100)
        check(run_op(op, x), NUMERIC_UNARY[op](tt(x)))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(rng, approximate, dtype):
    for shape in SHAPES:
        x = sample(rng, shape, dtype, -6, 6)
        check(run_op("gelu", x, approximate=approximate), F.gelu(tt(x), approximate=approximate))


EDGE = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-30, 88.0, -88.0, 1e30, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("op", sorted(FLOAT_UNARY) + sorted(NUMERIC_UNARY) + ["gelu"])
def test_unary_edge_values_match_torch(op, dtype):
    # log/sqrt of negatives are nan, log(0) = -inf, rsqrt(0) = inf, sin(inf) = nan, as in torch
    x = np.array(EDGE, NP[dtype])
    fn = F.gelu if op == "gelu" else FLOAT_UNARY[op][0] if op in FLOAT_UNARY else NUMERIC_UNARY[op]
    with np.errstate(all="ignore"):
        check(run_op(op, x), fn(tt(x)))


def test_unary_integer_overflow_wraps_like_torch():
    x = np.array([-128, -127, 0, 127], np.int8)
    for op in ("neg", "abs"):
        check(run_op(op, x), NUMERIC_UNARY[op](tt(x)))


# -- binary arithmetic ------------------------------------------------------------------------
ARITH: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum}


def arith_operands(rng: np.random.Generator, op: str, sa: tuple[int, ...], sb: tuple[int, ...],
                   dtype: str) -> tuple[np.ndarray, np.ndarray]:
    if op == "pow" and dtype in FLOATS:  # positive bases: real results for any exponent
        return sample(rng, sa, dtype, 0.1, 3.0), sample(rng, sb, dtype, -2.0, 2.0)
    if op == "pow":
        return sample(rng, sa, dtype, -4, 4), sample(rng, sb, dtype, 0, 5)  # i8 4**5 wraps
    a, b = sample(rng, sa, dtype, -20, 20), sample(rng, sb, dtype, -20, 20)
    if op == "div":
        b = np.where(b == 0, np.ones((), b.dtype), b).astype(b.dtype)
    return a, b


@pytest.mark.parametrize("dtype", FLOATS + INTS)
@pytest.mark.parametrize("op", sorted(ARITH))
def test_binary_arithmetic_broadcasts_like_torch(rng, op, dtype):
    for sa, sb in PAIRS:
        a, b = arith_operands(rng, op, sa, sb, dtype)
        check(run_op(op, a, b), ARITH[op](tt(a), tt(b)))


def test_integer_arithmetic_overflow_wraps_like_torch():
    a, b = np.array([100, -100, 127, -128], np.int8), np.array([3, 3, 1, 1], np.int8)
    for op in ("add", "sub", "mul"):
        check(run_op(op, a, b), ARITH[op](tt(a), tt(b)))


def test_integer_negative_powers_truncate_like_torch():
    a = np.array([[2], [1], [-1], [0], [-3]], np.int64)
    b = np.array([-1, -2, -3, 0, 2], np.int64)
    check(run_op("pow", a, b), torch.pow(tt(a), tt(b)))


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_binary_edge_values_match_torch(dtype):
    # every pair of edge values: 0/0, x/0, inf - inf, 0 * inf, 0 ** -1, (-2) ** 0.5, nan in max/min
    values = np.array([0.0, -0.0, 1.0, -2.0, 0.5, 3.0, math.inf, -math.inf, math.nan], NP[dtype])
    a, b = values[:, None], values[None, :]
    with np.errstate(all="ignore"):
        for op, fn in ARITH.items():
            check(run_op(op, a, b), fn(tt(a), tt(b)))


@pytest.mark.parametrize("dtype", INTS)
def test_integer_division_is_true_division_into_f32(dtype):
    a = np.array([7, -7, 1, 0, -5], NP[dtype])
    b = np.array([2, 2, 0, 0, 0], NP[dtype])
    with np.errstate(all="ignore"):
        got = run_op("div", a, b)
    assert got.dtype == np.float32
    check(got, torch.div(tt(a), tt(b)))  # [3.5, -3.5, inf, nan, -inf]


# dtype pairs that promote across kinds and widths; torch's rule on non-0-d tensors is archir's
MIXED = [("i32", "f16"), ("i64", "f32"), ("bf16", "f16"), ("bool", "i8"), ("f32", "f64"),
         ("i8", "i64"), ("bool", "f32"), ("bf16", "f64")]


@pytest.mark.parametrize(("da", "db"), MIXED)
@pytest.mark.parametrize("op", ["add", "mul", "maximum", "minimum", "div", "eq", "lt", "ge"])
def test_mixed_dtypes_promote_like_torch(rng, op, da, db):
    a, b = sample(rng, (3, 1), da, -5, 5), sample(rng, (4,), db, -5, 5)
    b = np.where(b == 0, np.ones((), b.dtype), b).astype(b.dtype) if op == "div" else b
    fn = ARITH.get(op) or COMPARE[op]
    check(run_op(op, a, b), fn(tt(a), tt(b)))


def test_comparison_happens_in_the_promoted_dtype():
    # 2**24 + 1 is not an f32: i64 vs f32 compares in f32 (torch's rule, and archir's promotion)
    a, b = np.array([2**24 + 1, 2**24 + 1], np.int64), np.array([2.0**24, 2.0**24 + 2], np.float32)
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        check(run_op(op, a, b), COMPARE[op](tt(a), tt(b)))


# -- comparisons and logic --------------------------------------------------------------------
COMPARE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or}


@pytest.mark.parametrize("dtype", FLOATS + INTS + ("bool",))
@pytest.mark.parametrize("op", sorted(COMPARE))
def test_comparisons_and_logic_broadcast_like_torch(rng, op, dtype):
    for sa, sb in PAIRS:
        # few distinct values (and zeros), so equal pairs and falsy operands are common
        a, b = (rng.integers(-2, 3, s).astype(NP[dtype]) for s in (sa, sb))
        got = run_op(op, a, b)
        assert got.dtype == np.bool_
        check(got, COMPARE[op](tt(a), tt(b)))


@pytest.mark.parametrize("dtype", FLOATS + INTS + ("bool",))
def test_logical_not_matches_torch(rng, dtype):
    for shape in SHAPES:
        x = rng.integers(-1, 2, shape).astype(NP[dtype])
        check(run_op("logical_not", x), torch.logical_not(tt(x)))


def test_comparisons_with_nan_and_inf_match_torch():
    values = np.array([-math.inf, -1.0, -0.0, 0.0, 1.0, math.inf, math.nan], np.float32)
    a, b = values[:, None], values[None, :]
    for op, fn in COMPARE.items():
        check(run_op(op, a, b), fn(tt(a), tt(b)))
    check(run_op("logical_not", values), torch.logical_not(tt(values)))


# -- where, clamp, cast -----------------------------------------------------------------------
@pytest.mark.parametrize(("da", "db"), [("f32", "f32"), ("i32", "f16"), ("i64", "i8"),
                                        ("bool", "bool"), ("bf16", "f64")])
def test_where_broadcasts_and_promotes_like_torch(rng, da, db):
    for sc, sa in PAIRS:
        full = np.broadcast_shapes(sc, sa)
        sb = tuple(1 if rng.random() < 0.4 else d for d in full[int(rng.integers(0, len(full) + 1)):])
        cond = rng.random(sc) < 0.5
        a, b = sample(rng, sa, da), sample(rng, sb, db)
        if min(a.ndim, b.ndim) == 0 and da != db:
            continue  # torch's 0-d operands do not take part in promotion; archir's do
        check(run_op("where", cond, a, b), torch.where(tt(cond), tt(a), tt(b)))


CLAMPS: list[dict[str, Any]] = [{"min": -1.0}, {"max": 0.5}, {"min": -0.5, "max": 2.0},
                                {"min": 1.0, "max": -1.0}, {"min": -math.inf, "max": math.inf}, {}]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bounds", CLAMPS, ids=str)
def test_clamp_floats_match_torch(rng, dtype, bounds):
    x = np.concatenate([sample(rng, (10,), dtype), np.array([math.nan, -math.inf], NP[dtype])])
    want = torch.clamp(tt(x), **bounds) if bounds else tt(x)  # torch.clamp wants some bound
    check(run_op("clamp", x, **bounds), want)


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("bounds", [*CLAMPS, {"min": -1.5, "max": 2.7}], ids=str)
def test_clamp_integers_keep_their_dtype(rng, dtype, bounds):
    x = sample(rng, (20,), dtype, -4, 4)
    # archir clips in floating point and casts back (truncating): that is torch on f64, then .to()
    want = torch.clamp(tt(x).double(), **bounds).to(tt(x).dtype) if bounds else tt(x)
    check(run_op("clamp", x, **bounds), want)


CAST_VALUES = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 3.9, -3.9, 100.0, 1e-3, 0.1]


@pytest.mark.parametrize("src", FLOATS + INTS + ("bool",))
@pytest.mark.parametrize("dst", FLOATS + INTS + ("bool",))
def test_cast_matches_torch(src, dst):
    # values every dtype holds; float to int truncates towards zero in both
    x = np.array(CAST_VALUES, np.float64).astype(NP[src])
    check(run_op("cast", x, dtype=dst), tt(x).to(tt(np.zeros(1, NP[dst])).dtype))


@pytest.mark.parametrize("dst", ["f16", "bf16", "bool"])
def test_cast_rounds_and_saturates_like_torch(dst):
    x = np.array([70000.0, -70000.0, 1e-8, 1.0009765625, 3.14159, math.inf, -math.inf, math.nan],
                 np.float32)
    with np.errstate(over="ignore"):  # 70000 overflows f16 to inf, as in torch
        check(run_op("cast", x, dtype=dst), tt(x).to(tt(np.zeros(1, NP[dst])).dtype))


# -- type inference errors --------------------------------------------------------------------
def _infer_error(op: str, *types: TensorType, **attrs: Any) -> ArchirError:
    b = GraphBuilder("bad")
    inputs = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    with pytest.raises(ArchirError) as info:
        b.op(op, *inputs, **attrs)
    assert info.value.loc is not None and info.value.loc.file == __file__  # points at the caller
    return info.value


@pytest.mark.parametrize("op", ["add", "pow", "div", "maximum", "eq", "logical_or"])
def test_shapes_that_do_not_broadcast_are_rejected(op):
    err = _infer_error(op, f32[2, 3], f32[4, 3])
    assert isinstance(err, TypeInferenceError)
    assert err.message == "shapes [2, 3], [4, 3] do not broadcast"
    err = _infer_error(op, f32["B", 3], f32["T", 3])
    assert err.message == "shapes [B, 3], [T, 3] do not broadcast"


def test_where_errors_name_the_problem():
    assert _infer_error("where", f32[3], f32[3], f32[3]).message == \
        "where's cond must be bool, got f32[3]"
    err = _infer_error("where", DType.bool[2], f32[3], f32[1])
    assert err.message == "shapes [2], [3] do not broadcast"


@pytest.mark.parametrize("op", [*sorted(FLOAT_UNARY), "gelu"])
@pytest.mark.parametrize("dtype", (*INTS, "bool"))
def test_float_ops_reject_integer_and_bool_tensors(op, dtype):
    t = TensorType((3,), DType(dtype))
    assert _infer_error(op, t).message == f"x must have a float dtype, got {t}"


@pytest.mark.parametrize("op", [*sorted(NUMERIC_UNARY), "clamp"])
def test_numeric_ops_reject_bool(op):
    assert _infer_error(op, DType.bool[3]).message == "x must be numeric, got bool[3]"


@pytest.mark.parametrize("op", ["sub", "pow"])
def test_bool_subtraction_and_power_are_rejected(op):
    err = _infer_error(op, DType.bool[3], DType.bool[1])
    assert err.message == "operands must be numeric, got bool[3] and bool[1]"
    assert err.hint is not None


def test_bad_attributes_are_rejected():
    assert "approximate" in _infer_error("gelu", f32[3], approximate="fast").message
    assert "dtype" in _infer_error("cast", i64[3], dtype="f8").message
    assert "min" in _infer_error("clamp", f32[3], min="low").message
