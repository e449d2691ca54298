"""Accuracy and codegen tests of the LLVM backend's vectorised math functions (vecmath.py).

Each function runs in a JIT-compiled kernel (vecmath_kernel.py: a loop at the host vector width
then a scalar tail, and a scalar-only twin) and is compared with references: float64
numpy/scipy for f32 (errors in ulps of the float32 result), 80-bit long double or mpmath for f64.
"""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest
import scipy.special as sp
from archir.backends.llvm.target import create_module
from archir.backends.llvm.vecmath import FUNCTIONS, math_function
from archir.backends.llvm.vecmath_kernel import MathKernels
from llvmlite import ir

from archir.errors import OpDefinitionError

LD = np.longdouble

# Max error in ulps of the reference rounded to the type (subnormal spacing for subnormal results).
# Measured maxima (AVX2+FMA host) are about 0.5 ulp below these.
F32_ULP = {"exp": 1.5, "expm1": 2.5, "log": 2, "log1p": 2, "pow": 1, "tanh": 3, "sigmoid": 2.5,
           "silu": 3.5, "gelu_tanh": 3.5, "erf": 3, "gelu": 4.5, "sin": 2, "cos": 2}
F64_ULP = {"exp": 1.5, "expm1": 2.5, "log": 1.5, "log1p": 2, "tanh": 3, "sigmoid": 2.5, "silu": 3,
           "erf": 1.5, "gelu": 3.5, "sin": 2, "cos": 2}
# f64 gelu_tanh and pow round their exp argument in f64: relative error bounds proportional to
# the argument are tested separately below.


@pytest.fixture(scope="module")
def f32() -> MathKernels:
    return MathKernels(ir.FloatType(), with_scalar=True)


@pytest.fixture(scope="module")
def f64() -> MathKernels:
    return MathKernels(ir.DoubleType(), with_scalar=True)


def ulp_errors(got: np.ndarray, ref: np.ndarray, dtype: type) -> np.ndarray:
    """|got - ref| in ulps of ref rounded to dtype; 0 where got equals the rounded ref (incl.
    both NaN, equal infinities), inf where one is inf/NaN and the other is not."""
    wide = ref.dtype
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        same = (got == rounded) | (np.isnan(got) & np.isnan(ref))
        err = np.abs(got.astype(wide) - ref) / np.spacing(np.abs(rounded)).astype(wide)
    err[same] = 0
    return np.where(np.isnan(err), np.inf, err)


def _worst(err: np.ndarray, *inputs: np.ndarray) -> str:
    i = int(np.argmax(err))
    return f"max {float(err[i]):.3g} ulp at input {[x[i] for x in inputs]}"


# -- f32: float64 references -------------------------------------------------------------------
def _ref64(name: str, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    with np.errstate(all="ignore"):
        if name == "pow":
            return np.power(x, y)
        if name == "gelu_tanh":  # x sigmoid(2u) is 0.5 x (1 + tanh u) without the tail cancellation
            return x * sp.expit(2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
        table = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
                 "sigmoid": sp.expit, "silu": lambda v: v * sp.expit(v), "erf": sp.erf,
                 "gelu": lambda v: 0.5 * v * sp.erfc(-v / np.sqrt(2)), "sin": np.sin, "cos": np.cos}
        return table[name](x)


F32_SPECIAL = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-45, -1e-45, 1.1754944e-38,
                          88.72283, 88.72284, -87.33654, -103.972, -103.973, -104.0, 0.5, 4.0, -9.0])


def _f32_inputs(name: str) -> np.ndarray:
    """A stride through all 2^32 bit patterns (both signs, subnormals, huge) plus dense ranges."""
    rng = np.random.default_rng(0)
    every = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = rng.uniform(-12, 12, 200_000).astype(np.float32)
    near_one = (1 + rng.uniform(-0.3, 0.3, 50_000)).astype(np.float32)
    x = np.concatenate([every, dense, near_one, F32_SPECIAL])
    if name in ("sin", "cos"):  # huge finite arguments take the cold libm branch: all of them count
        x = np.concatenate([x, rng.uniform(-1e4, 1e4, 100_000).astype(np.float32)])
    return x


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - {"pow"}))
def test_f32_accuracy(f32: MathKernels, name: str) -> None:
    x = _f32_inputs(name)
    with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns among the inputs
        ref = _ref64(name, x.astype(np.float64))
    for scalar in (False, True):
        err = ulp_errors(f32.kernel(name, scalar)(x), ref, np.float32)
        assert err.max() <= F32_ULP[name], f"{name} {'scalar' if scalar else 'vector'}: {_worst(err, x)}"


def test_f32_pow_accuracy(f32: MathKernels) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    x = np.concatenate([(2.0 ** rng.uniform(-40, 40, n) * rng.choice([-1, 1], n)),
                        rng.uniform(0, 4, n)]).astype(np.float32)
    y = np.concatenate([np.round(rng.uniform(-12, 12, n)),  # integers: negative bases allowed
                        rng.uniform(-60, 60, n)]).astype(np.float32)
    ref = _ref64("pow", x.astype(np.float64), y.astype(np.float64))
    for scalar in (False, True):
        err = ulp_errors(f32.kernel("pow", scalar)(x, y), ref, np.float32)
        assert err.max() <= F32_ULP["pow"], _worst(err, x, y)


POW_GRID = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1 / 3, -2.5, -8.0, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_special_cases_match_numpy(f32: MathKernels, f64: MathKernels, dtype: type) -> None:
    xs, ys = np.meshgrid(np.array(POW_GRID, dtype), np.array(POW_GRID, dtype))
    x, y = xs.ravel(), ys.ravel()
    got = (f32 if dtype == np.float32 else f64).kernel("pow")(x, y)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
        # f32 rounds an f64 core: 1 ulp. f64: the exp argument's rounding, (|y log x| + 4) 2^-52.
        tol = 2.0**-23 if dtype == np.float32 else (np.abs(y * np.log(np.abs(x))) + 4) * 2.0**-52
        rel_err = np.abs(got - want) / np.abs(want)
    exact = (got == want) & (np.signbit(got) == np.signbit(want))
    close = np.isnan(want) | exact | (np.isfinite(want) & (rel_err <= tol))
    bad = ~(close & (np.isnan(got) == np.isnan(want)))
    assert not bad.any(), list(zip(x[bad], y[bad], got[bad], want[bad], strict=True))


SPECIAL_CASES = {  # name: [(input, expected)] from numpy / torch semantics (torch for silu/gelu at -inf)
    "exp": [(-np.inf, 0.0), (np.inf, np.inf), (np.nan, np.nan), (0.0, 1.0), (-0.0, 1.0)],
    "log": [(0.0, -np.inf), (-0.0, -np.inf), (-1.0, np.nan), (-np.inf, np.nan), (np.inf, np.inf),
            (np.nan, np.nan), (1.0, 0.0)],
    "expm1": [(-np.inf, -1.0), (np.inf, np.inf), (np.nan, np.nan), (-0.0, -0.0)],
    "log1p": [(-1.0, -np.inf), (-2.0, np.nan), (np.inf, np.inf), (np.nan, np.nan), (-0.0, -0.0)],
    "tanh": [(-np.inf, -1.0), (np.inf, 1.0), (np.nan, np.nan), (-0.0, -0.0)],
    "sigmoid": [(-np.inf, 0.0), (np.inf, 1.0), (np.nan, np.nan), (0.0, 0.5)],
    "silu": [(-np.inf, np.nan), (np.inf, np.inf), (np.nan, np.nan), (0.0, 0.0)],
    "gelu": [(-np.inf, np.nan), (np.inf, np.inf), (np.nan, np.nan), (0.0, 0.0)],
    "gelu_tanh": [(-np.inf, np.nan), (np.inf, np.inf), (np.nan, np.nan), (0.0, 0.0)],
    "erf": [(-np.inf, -1.0), (np.inf, 1.0), (np.nan, np.nan), (-0.0, -0.0)],
    "sin": [(np.inf, np.nan), (-np.inf, np.nan), (np.nan, np.nan), (-0.0, -0.0), (3e8, float(np.sin(3e8)))],
    "cos": [(np.inf, np.nan), (np.nan, np.nan), (0.0, 1.0), (3e8, float(np.cos(3e8))),
            (-(2.0**100), float(np.cos(-(2.0**100))))],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SPECIAL_CASES))
def test_special_values(f32: MathKernels, f64: MathKernels, dtype: type, name: str) -> None:
    x = np.array([c[0] for c in SPECIAL_CASES[name]], dtype)
    want = np.array([c[1] for c in SPECIAL_CASES[name]], dtype)
    got = (f32 if dtype == np.float32 else f64).kernel(name)(x)
    ok = (np.isnan(got) & np.isnan(want)) | ((got == want) & (np.signbit(got) == np.signbit(want)))
    assert ok.all(), list(zip(x, got, want, strict=True))


# -- f64: long double (80-bit) and mpmath references ---------------------------------------------
def _ref_ld(name: str, x: np.ndarray) -> np.ndarray:
    v = x.astype(LD)
    with np.errstate(all="ignore"), mpmath.workdps(40):  # 40 digits: -x/sqrt 2 must not round
        if name == "erf":
            return np.array([mpmath.erf(mpmath.mpf(t)) if np.isfinite(t) else np.sign(t) for t in x], LD)
        if name == "gelu":
            return np.array([mpmath.mpf(t) * mpmath.erfc(-mpmath.mpf(t) / mpmath.sqrt(2)) / 2 for t in x], LD)
        table = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
                 "sigmoid": lambda t: 1 / (1 + np.exp(-t)), "silu": lambda t: t / (1 + np.exp(-t)),
                 "sin": np.sin, "cos": np.cos}
        return table[name](v)


F64_RANGES = {"exp": (-40, 9.55), "expm1": (-60, 9.55), "log": (-1074, 1024), "log1p": (-60, 1024),
              "tanh": (-60, 5), "sigmoid": (-60, 9.6), "silu": (-60, 9.6), "erf": (-30, 2.6),
              "gelu": (-30, 5.3), "sin": (-30, 27.5), "cos": (-30, 27.5)}


@pytest.mark.skipif(np.finfo(LD).nmant < 60, reason="needs 80-bit long double references")
@pytest.mark.parametrize("name", sorted(F64_ULP))
def test_f64_accuracy(f64: MathKernels, name: str) -> None:
    """Log-spaced magnitudes of both signs over each function's interesting range."""
    rng = np.random.default_rng(2)
    n = 3000 if name in ("erf", "gelu") else 40_000
    lo, hi = F64_RANGES[name]
    x = 2.0 ** rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)
    if name == "log":
        x = np.concatenate([np.abs(x), rng.uniform(0.5, 2.0, n)])
    ref = _ref_ld(name, x)
    for scalar in (False, True):
        err = ulp_errors(f64.kernel(name, scalar)(x), ref, np.float64)
        assert err.max() <= F64_ULP[name], f"{name}: {_worst(err, x)}"


def test_f64_pow_relative_error(f64: MathKernels) -> None:
    """exp(y log x) in f64: log's ulp times |y| plus the argument's rounding, (2|y ln x| + 4) 2^-52."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.01, 100, 20_000)
    y = rng.uniform(-100, 100, 20_000)
    ref = np.power(x.astype(LD), y.astype(LD))
    normal = (ref > 1e-300) & (ref < 1e300)
    rel = (np.abs(f64.kernel("pow")(x, y) - ref) / ref)[normal]
    ratio = rel / ((2 * np.abs(y * np.log(x)) + 4) * 2.0**-52)[normal]
    assert ratio.max() <= 1, f"{ratio.max():.3g} of the bound at x={x[normal][np.argmax(ratio)]}"


def test_f64_gelu_tanh_relative_error(f64: MathKernels) -> None:
    """2u = x (k0 + k1 x^2) takes three roundings in f64: (2|2u| + 4) 2^-52 relative in the tail."""
    rng = np.random.default_rng(4)
    x = rng.uniform(-25, 25, 20_000)
    xl = x.astype(LD)
    two_u = 2 * np.sqrt(LD(2) / LD(np.pi)) * (xl + LD(0.044715) * xl**3)
    ref = xl / (1 + np.exp(-two_u))
    normal = np.abs(ref) > 1e-300
    rel = (np.abs(f64.kernel("gelu_tanh")(x) - ref) / np.abs(ref))[normal]
    ratio = rel / ((2 * np.abs(two_u) + 4) * 2.0**-52)[normal]
    assert ratio.max() <= 1, f"{ratio.max():.3g} of the bound at x={x[normal][np.argmax(ratio)]}"


# -- code shape and interface ---------------------------------------------------------------------
def test_vector_kernels_call_no_functions(f32: MathKernels, f64: MathKernels) -> None:
    """Everything is inlined into straight-line vector code: no libm call per element. The only
    calls are sin/cos of the cold branch taken when a lane holds a finite |x| > 2e8."""
    for compiled in (f32, f64):
        calls = [line for line in compiled.asm.splitlines() if re.match(r"\s*call", line)]
        assert all(re.search(r"\b(sin|cos)(@PLT)?\s*$", c) for c in calls), calls[:5]
        assert re.search(r"\bvfmadd|\bvmulp[sd]\s+%ymm|\bvmulp[sd]\s+%zmm|\bmulp[sd]", compiled.asm)


def test_math_function_declares_once() -> None:
    module = create_module("declare_once")
    ty = ir.VectorType(ir.FloatType(), 8)
    first = math_function(module, "exp", ty)
    assert math_function(module, "exp", ty) is first
    assert math_function(module, "exp", ir.FloatType()) is not first
    assert first.linkage == "internal" and "alwaysinline" in first.attributes
    assert [a.type for a in math_function(module, "pow", ty).args] == [ty, ty]


def test_math_function_rejects_unknown_name_and_type() -> None:
    module = create_module("reject")
    with pytest.raises(OpDefinitionError, match="no vectorised math function 'softplus'"):
        math_function(module, "softplus", ir.FloatType())
    with pytest.raises(OpDefinitionError, match="needs float, double"):
        math_function(module, "exp", ir.IntType(32))


@pytest.mark.parametrize("name", ["gelu_tanh", "sigmoid", "silu"])
def test_f32_logistic_negative_tail_dense(f32: MathKernels, name: str) -> None:
    """The negative tail, densely: relative accuracy where exp(-|z|) amplifies any error in z
    (gelu_tanh's compensated 2u), down through the subnormal results to the flush to 0."""
    rng = np.random.default_rng(6)
    lowest = {"gelu_tanh": -11.0, "sigmoid": -106.0, "silu": -112.0}[name]
    x = np.concatenate([rng.uniform(lowest, 0, 400_000), -np.exp(rng.uniform(-30, np.log(-lowest), 100_000)),
                        np.float32([-0.0, 0.0, lowest, 1e-45])]).astype(np.float32)
    ref = _ref64(name, x.astype(np.float64))
    err = ulp_errors(f32.kernel(name)(x), ref, np.float32)
    assert err.max() <= F32_ULP[name], _worst(err, x)


def test_f32_gelu_tanh_keeps_sign_of_zero(f32: MathKernels) -> None:
    """-0 -> -0 (torch's 0.5 * x * (1 + tanh(...)) gives -0 too); a large negative x gives -0."""
    got = f32.kernel("gelu_tanh")(np.float32([-0.0, 0.0, -50.0]))
    assert np.signbit(got).tolist() == [True, False, True] and (got == 0).all()


def test_f32_gelu_tanh_without_fma_keeps_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without FMA builds 2u in f64 (head + tail back to f32) instead of the fma pair: the
    same ulp bound over the general inputs and the dense negative tail."""
    from archir.backends.llvm import vecmath_activation

    monkeypatch.setattr(vecmath_activation, "_host_has_fma", lambda: False)
    kernels = MathKernels(ir.FloatType())
    rng = np.random.default_rng(7)
    tail = np.concatenate([rng.uniform(-11.0, 0, 200_000), -np.exp(rng.uniform(-30, np.log(11.0), 50_000))])
    x = np.concatenate([_f32_inputs("gelu_tanh"), tail.astype(np.float32)])
    with np.errstate(invalid="ignore"):
        ref = _ref64("gelu_tanh", x.astype(np.float64))
    err = ulp_errors(kernels.kernel("gelu_tanh")(x), ref, np.float32)
    assert err.max() <= F32_ULP["gelu_tanh"], _worst(err, x)
