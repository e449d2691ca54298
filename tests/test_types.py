"""Types: dtypes, tensor and tuple types, broadcasting (with symbols) and dtype promotion."""

import itertools

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archir import (
    DType,
    TensorType,
    TupleType,
    TypeInferenceError,
    bf16,
    boolean,
    f16,
    f32,
    f64,
    i8,
    i32,
    i64,
)
from archir.symbolic import as_dim
from archir.types import broadcast_shapes, is_symbolic, normalize_axis, promote_dtypes, scalar

B, T = as_dim("B"), as_dim("T")
TORCH = {f64: torch.float64, f32: torch.float32, f16: torch.float16, bf16: torch.bfloat16,
         i64: torch.int64, i32: torch.int32, i8: torch.int8, boolean: torch.bool}


def test_dtype_properties():
    assert [d.value for d in DType] == ["f64", "f32", "f16", "bf16", "i64", "i32", "i8", "bool"]
    assert {d for d in DType if d.is_float} == {f64, f32, f16, bf16}
    assert {d for d in DType if d.is_int} == {i64, i32, i8}
    assert [d.itemsize for d in DType] == [8, 4, 2, 2, 8, 4, 1, 1]
    assert bf16.numpy == np.dtype(ml_dtypes.bfloat16) and boolean.numpy == np.dtype(bool)
    for d in DType:
        assert DType.from_numpy(d.numpy) is d
        assert str(d) == d.value
    with pytest.raises(TypeInferenceError, match="numpy dtype uint8 has no archir dtype"):
        DType.from_numpy(np.dtype(np.uint8))


def test_tensor_types():
    t = f32["B", 768]
    assert t == TensorType((B, 768), f32) and str(t) == "f32[B, 768]"
    assert str(f32[()]) == "f32[]" and f32[()] == scalar(f32) and scalar(f32).rank == 0
    assert str(i64[3]) == "i64[3]"
    assert str(bf16["B*T", "T + 1"]) == "bf16[B*T, T + 1]"
    assert t.rank == 2 and t.numel() == as_dim("768*B")
    assert t.free_symbols() == {"B"} and f32["B*T", "H"].free_symbols() == {"B", "T", "H"}
    assert not t.is_static() and f32[2, 3].is_static()
    assert t.with_shape([4, "T"]) == f32[4, "T"] and t.with_dtype(f16) == f16["B", 768]
    assert t.concrete_shape({"B": 3}) == (3, 768)
    assert hash(f32["B", 768]) == hash(TensorType(("B", 768), f32))
    with pytest.raises(TypeInferenceError, match=r"symbolic dim B has unbound symbols \['B'\]"):
        t.concrete_shape({})
    with pytest.raises(TypeInferenceError, match="a dim must be an int or a symbol, got True"):
        f32[True]
    with pytest.raises(TypeInferenceError, match=r"bad dim 'B \+': expected a dim"):
        f32["B +"]


def test_tuple_types():
    t = TupleType((f32[4], TupleType((i64["B"],)), boolean[()]))
    assert str(t) == "tuple<f32[4], tuple<i64[B]>, bool[]>"
    assert t == TupleType((f32[4], TupleType((i64["B"],)), boolean[()]))
    assert t != TupleType((f32[4],))


def _torch_promote(a: DType, b: DType) -> torch.dtype:
    return torch.promote_types(TORCH[a], TORCH[b])


@pytest.mark.parametrize(("a", "b"), list(itertools.product(DType, DType)))
def test_promotion_matches_torch(a, b):
    """bool < ints < floats, wider wins within a kind, f16 with bf16 gives f32: torch's table."""
    assert TORCH[promote_dtypes(a, b)] == _torch_promote(a, b)


def test_promotion_spot_checks_and_many_operands():
    assert promote_dtypes(f16, bf16) == f32
    assert promote_dtypes(i64, f16) == f16
    assert promote_dtypes(boolean, i8) == i8
    assert promote_dtypes(i8, i32, boolean) == i32
    assert promote_dtypes(f32) == f32
    for dtypes in itertools.product(DType, repeat=3):
        assert promote_dtypes(*dtypes) == promote_dtypes(*reversed(dtypes))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.integers(1, 4), max_size=4), min_size=1, max_size=3))
def test_broadcast_matches_numpy_on_static_shapes(shapes):
    try:
        want = np.broadcast_shapes(*map(tuple, shapes))
    except ValueError:
        with pytest.raises(TypeInferenceError, match="do not broadcast"):
            broadcast_shapes(*shapes)
        return
    assert broadcast_shapes(*shapes) == want


def test_broadcast_with_symbols():
    bt = as_dim("B*T")
    assert broadcast_shapes((B, 1, 4), (T, 1)) == (B, T, 4)
    assert broadcast_shapes((B, T), (B, T)) == (B, T)
    assert broadcast_shapes((1, 1), (B,)) == (1, B)
    assert broadcast_shapes((bt, 4), (1, 4), ()) == (bt, 4)
    assert broadcast_shapes() == ()
    with pytest.raises(TypeInferenceError) as info:
        broadcast_shapes((B, 4), (T, 4))
    assert info.value.message == "shapes [B, 4], [T, 4] do not broadcast"
    with pytest.raises(TypeInferenceError) as info:
        broadcast_shapes((B,), (3,))  # a symbol is not known to equal 3
    assert info.value.message == "shapes [B], [3] do not broadcast"


def test_normalize_axis():
    assert normalize_axis(-1, 3) == 2 and normalize_axis(0, 3) == 0 and normalize_axis(2, 3) == 2
    assert normalize_axis(0, 0) == 0  # a scalar's single pseudo-axis
    for axis, rank in ((3, 3), (-4, 3), (-1, 0), (1, 0)):
        with pytest.raises(TypeInferenceError) as info:
            normalize_axis(axis, rank)
        assert info.value.message == f"axis {axis} is out of range for rank {rank}"


def test_is_symbolic():
    assert is_symbolic(B) and is_symbolic(as_dim("T + 1")) and not is_symbolic(4)
