"""Every registry op on the llvm backend against the numpy interpreter, one compiled graph for all.

Tolerance: integer and bool results exactly; floats 1e-5 relative + 1e-5 x the output's largest
magnitude (f32/f64), 1e-2 for 16-bit floats.
"""

from __future__ import annotations

import numpy as np
import pytest

from archir.backend import compile_graph
from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.registry import all_ops
from archir.types import DType, TensorType
from tests.backends.llvm.op_cases import CASES
from tests.harness import single_op_graph

CONTROL = {"scan", "cond", "while", "fused"}  # covered by test_control.py


@pytest.fixture(scope="module")
def all_cases():
    """One graph holding every case side by side, compiled once; outputs by case id."""
    b = GraphBuilder("all_ops")
    arrays, slices = [], {}
    for cid, op, inputs, attrs in CASES:
        values = []
        for i, a in enumerate(inputs):
            values.append(b.input(f"{cid}_{i}", TensorType(a.shape, DType.from_numpy(a.dtype))))
            arrays.append(a)
        result = b.op(op, *values, **attrs)
        results = result if isinstance(result, tuple) else (result,)
        slices[cid] = (len(b.outputs), len(b.outputs) + len(results))
        b.output(*results)
    outputs = compile_graph(b.build(), "llvm", pipeline="")(*arrays)
    return {cid: outputs[lo:hi] for cid, (lo, hi) in slices.items()}


def assert_agrees(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for g, e in zip(got, want, strict=True):
        assert (g.dtype, g.shape) == (e.dtype, e.shape)
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(g, e)
        else:
            scale = float(np.max(np.abs(e[np.isfinite(e)]), initial=1.0))
            tol = 1e-5 if e.dtype.itemsize >= 4 else 1e-2
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_matches_interpreter(all_cases, case):
    cid, op, inputs, attrs = case
    want = run(single_op_graph(op, *inputs, **attrs), *inputs)
    assert_agrees(all_cases[cid], want)


def test_every_op_has_a_case():
    covered = {c[1] for c in CASES} | CONTROL
    missing = sorted(o.name for o in all_ops() if o.name not in covered)
    assert not missing, f"ops without an llvm test case: {missing}"


def test_out_of_range_index_is_an_error_not_a_crash():
    from archir.errors import ArchirError

    ids = np.array([[1, 12]], np.int64)
    table = np.ones((10, 4), np.float32)
    compiled = compile_graph(single_op_graph("embedding", ids, table), "llvm", pipeline="")
    with pytest.raises(ArchirError, match=r"embedding index out of range.*\[0, 10\)"):
        compiled(ids, table)
    np.testing.assert_array_equal(compiled(np.array([[1, 9]]), table)[0], np.ones((1, 2, 4), np.float32))
