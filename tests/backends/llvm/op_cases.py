"""One or more small cases per registry op, for the llvm backend's op-by-op tests.

A case is (id, op, inputs, attrs); inputs are numpy arrays (fixed seed), attrs the op's.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

Case = tuple[str, str, list[np.ndarray], dict[str, Any]]


def _cases() -> list[Case]:
    rng = np.random.default_rng(1234)

    def f(*shape: int, dtype: Any = np.float32) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    def pos(*shape: int) -> np.ndarray:
        return (rng.random(shape) + 0.1).astype(np.float32)

    def ints(high: int, *shape: int, dtype: Any = np.int64) -> np.ndarray:
        return rng.integers(0, high, shape).astype(dtype)

    def bools(*shape: int) -> np.ndarray:
        return rng.random(shape) < 0.5

    cases: list[Case] = []
    for op in ("exp", "tanh", "sigmoid", "silu", "erf", "sin", "cos", "floor"):
        cases.append((op, op, [f(3, 17)], {}))
    for op in ("log", "sqrt", "rsqrt", "reciprocal"):
        cases.append((op, op, [pos(4, 9)], {}))
    cases.append(("exp_f64", "exp", [f(5, dtype=np.float64)], {}))
    cases.append(("gelu", "gelu", [f(2, 33)], {}))
    cases.append(("gelu_tanh", "gelu", [f(2, 33)], {"approximate": "tanh"}))
    for op in ("neg", "abs", "relu"):
        cases.append((op, op, [f(3, 5)], {}))
        cases.append((f"{op}_i32", op, [ints(9, 3, 5, dtype=np.int32) - 4], {}))
    for op in ("add", "sub", "mul", "maximum", "minimum"):
        cases.append((op, op, [f(2, 3, 4), f(3, 1)], {}))
        cases.append((f"{op}_i64", op, [ints(20, 4, 3) - 10, ints(20, 3) - 10], {}))
    cases.append(("add_f16", "add", [f(3, 8, dtype=np.float16), f(8, dtype=np.float16)], {}))
    bf = ml_dtypes.bfloat16
    cases.append(("mul_bf16", "mul", [f(3, 8, dtype=bf), f(3, 8, dtype=bf)], {}))
    cases.append(("add_mixed", "add", [f(4, 2), ints(5, 4, 2, dtype=np.int32)], {}))
    cases.append(("add_bool", "add", [bools(5), bools(5)], {}))
    cases.append(("add_i8", "add", [ints(50, 6, dtype=np.int8), ints(50, 6, dtype=np.int8)], {}))
    cases.append(("pow", "pow", [pos(3, 4), f(4)], {}))
    cases.append(("pow_i64", "pow", [ints(5, 6), ints(4, 6)], {}))
    cases.append(("div", "div", [f(3, 4), pos(4)], {}))
    cases.append(("div_int", "div", [ints(100, 5), ints(9, 5) + 1], {}))
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        a = np.round(f(4, 6))
        cases.append((op, op, [a, np.round(f(6))], {}))
    cases.append(("lt_int", "lt", [ints(5, 7, dtype=np.int32), ints(5, 7)], {}))
    cases.append(("logical_and", "logical_and", [bools(3, 4), bools(4)], {}))
    cases.append(("logical_or", "logical_or", [bools(3, 4), bools(3, 4)], {}))
    cases.append(("logical_not", "logical_not", [bools(7)], {}))
    cases.append(("where", "where", [bools(3, 4), f(3, 4), f(4)], {}))
    cases.append(("clamp", "clamp", [f(4, 5)], {"min": -0.5, "max": 0.7}))
    cases.append(("clamp_low", "clamp", [f(4, 5)], {"min": 0.0}))
    cases.append(("clamp_int", "clamp", [ints(20, 9) - 10], {"min": -3.0, "max": 4.0}))
    for src, dst in ((np.float32, "i64"), (np.float32, "bool"), (np.int64, "f32"), (np.int32, "i8"),
                     (np.float32, "f16"), (np.float32, "bf16"), (np.float64, "f32"), (np.bool_, "f32")):
        x = (f(3, 4) * 4).astype(src) if src is not np.bool_ else bools(3, 4)
        cases.append((f"cast_{np.dtype(src).name}_{dst}", "cast", [x], {"dtype": dst}))
    # reductions
    for op in ("sum", "mean", "max", "min", "prod"):
        cases.append((op, op, [f(3, 4, 5)], {"axes": [1]}))
        cases.append((f"{op}_all", op, [f(2, 6)], {}))
        cases.append((f"{op}_keep", op, [f(3, 4, 5)], {"axes": [0, 2], "keepdims": True}))
    cases.append(("sum_int", "sum", [ints(9, 4, 5, dtype=np.int32)], {"axes": [0]}))
    cases.append(("sum_bool", "sum", [bools(4, 5)], {"axes": [1]}))
    cases.append(("max_i64", "max", [ints(100, 4, 5)], {"axes": [1]}))
    for op in ("argmax", "argmin"):
        cases.append((op, op, [f(4, 6)], {"axis": 1}))
        cases.append((f"{op}_keep0", op, [np.round(f(5, 3))], {"axis": 0, "keepdims": True}))
    # nn
    cases.append(("softmax", "softmax", [f(3, 7)], {}))
    cases.append(("softmax_axis0", "softmax", [f(3, 7)], {"axis": 0}))
    cases.append(("log_softmax", "log_softmax", [f(2, 3, 5)], {"axis": 1}))
    cases.append(("layer_norm", "layer_norm", [f(4, 8), f(8), f(8)], {}))
    cases.append(("layer_norm_2axes", "layer_norm", [f(2, 3, 4)], {"begin_axis": 1}))
    cases.append(("rms_norm", "rms_norm", [f(3, 16), f(16)], {}))
    cases.append(("batch_norm", "batch_norm", [f(2, 3, 4, 4), f(3), pos(3), f(3), f(3)], {}))
    cases.append(("attention", "attention", [f(2, 5, 8), f(2, 6, 8), f(2, 6, 4)], {}))
    qkv = [f(2, 2, 5, 8), f(2, 2, 5, 8), f(2, 2, 5, 8)]
    cases.append(("attention_causal", "attention", qkv, {"causal": True}))
    cases.append(("attention_mask", "attention", [f(3, 8), f(4, 8), f(4, 8), bools(3, 4)], {"scale": 0.3}))
    # layout
    x = f(2, 3, 4)
    cases.append(("reshape", "reshape", [x], {"shape": [6, -1]}))
    cases.append(("transpose", "transpose", [x], {"perm": [2, 0, 1]}))
    cases.append(("transpose_reshape", "reshape", [f(4, 3).T.copy()], {"shape": [12]}))
    cases.append(("expand", "expand", [f(3, 1)], {"shape": [2, 3, 5]}))
    cases.append(("squeeze", "squeeze", [f(3, 1, 4)], {"axes": [1]}))
    cases.append(("unsqueeze", "unsqueeze", [f(3, 4)], {"axes": [0, 2]}))
    cases.append(("slice", "slice", [f(6, 8)], {"axes": [0, 1], "starts": [1, -6], "ends": [5, 2**31 - 1],
                                                 "steps": [2, 1]}))
    cases.append(("slice_neg_step", "slice", [f(6, 8)],
                  {"axes": [1], "starts": [6], "ends": [0], "steps": [-2]}))
    cases.append(("concat", "concat", [f(2, 3), f(2, 5), f(2, 1)], {"axis": 1}))
    cases.append(("split", "split", [f(7, 3)], {"axis": 0, "sizes": [2, -1, 1]}))
    cases.append(("pad", "pad", [f(3, 4)], {"pads": [1, 2, 0, 3], "value": 1.5}))
    cases.append(("pad_crop", "pad", [f(5, 6)], {"pads": [-1, 2, 1, -2]}))
    cases.append(("tril", "tril", [f(2, 4, 5)], {}))
    cases.append(("triu", "triu", [f(4, 5)], {"diagonal": 1}))
    cases.append(("full", "full", [], {"shape": [2, 3], "value": 2.5}))
    cases.append(("full_i32", "full", [], {"shape": [4], "value": 7.0, "dtype": "i32"}))
    cases.append(("iota", "iota", [], {"shape": [3, 4], "axis": 1}))
    cases.append(("iota_f32", "iota", [], {"shape": [5], "dtype": "f32"}))
    # indexing
    cases.append(("embedding", "embedding", [ints(10, 2, 3), f(10, 4)], {}))
    cases.append(("gather", "gather", [f(4, 5), ints(4, 3, 5)], {"axis": 0}))
    cases.append(("gather_small", "gather", [f(4, 5), ints(5, 2, 3)], {"axis": 1}))
    cases.append(("index_select", "index_select", [f(4, 5, 2), ints(5, 7, dtype=np.int32)], {"axis": 1}))
    cases.append(("scatter_add", "scatter_add", [f(5, 3), ints(5, 6, 3), f(6, 3)], {"axis": 0}))
    ties = np.round(f(3, 9))
    cases.append(("topk", "topk", [ties], {"k": 4}))
    cases.append(("topk_smallest", "topk", [ties], {"k": 3, "largest": False, "axis": 1}))
    cases.append(("topk_axis0_int", "topk", [ints(5, 6, 2)], {"k": 2, "axis": 0}))
    # contractions and windows
    cases.append(("matmul", "matmul", [f(5, 7), f(7, 3)], {}))
    cases.append(("matmul_batched", "matmul", [f(2, 1, 4, 6), f(3, 6, 5)], {}))
    cases.append(("matmul_vec", "matmul", [f(6), f(2, 6, 3)], {}))
    cases.append(("matmul_matvec", "matmul", [f(4, 6), f(6)], {}))
    cases.append(("matmul_f64", "matmul", [f(3, 4, dtype=np.float64), f(4, 2, dtype=np.float64)], {}))
    cases.append(("matmul_i64", "matmul", [ints(5, 3, 4), ints(5, 4, 2)], {}))
    cases.append(("linear", "linear", [f(2, 3, 6), f(5, 6), f(5)], {}))
    cases.append(("linear_nobias", "linear", [f(4, 6), f(5, 6)], {}))
    cases.append(("conv1d", "conv1d", [f(2, 4, 9), f(6, 2, 3), f(6)], {"stride": [2], "padding": [1],
                                                                        "groups": 2}))
    cases.append(("conv2d", "conv2d", [f(2, 3, 7, 6), f(4, 3, 3, 3), f(4)], {"padding": [1, 1]}))
    cases.append(("conv2d_dilated", "conv2d", [f(1, 2, 8, 8), f(3, 2, 2, 3)], {"stride": [2, 1],
                                                                                "dilation": [2, 1]}))
    cases.append(("max_pool1d", "max_pool1d", [f(2, 3, 9)], {"kernel": [3], "stride": [2], "padding": [1]}))
    cases.append(("max_pool2d", "max_pool2d", [f(2, 3, 6, 6)], {"kernel": [2, 2]}))
    cases.append(("avg_pool1d", "avg_pool1d", [f(2, 3, 8)], {"kernel": [2]}))
    cases.append(("avg_pool2d", "avg_pool2d", [f(1, 2, 7, 7)], {"kernel": [3, 3], "stride": [2, 2],
                                                                 "padding": [1, 1]}))
    return cases


CASES = _cases()
