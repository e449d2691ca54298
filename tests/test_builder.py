"""The builder: graphs it makes, and errors that point at the user's line."""

import inspect

import numpy as np
import pytest

from archir import ArchirError, GraphBuilder, OpDefinitionError, TypeInferenceError, f32, i64
from archir.printer import print_graph


def test_builds_and_prints_with_scopes_and_params():
    b = GraphBuilder("g")
    x = b.input("x", f32["B", 4])
    w = b.param("blocks.0.w", f32[4], np.ones(4, np.float32))
    with b.scope("blocks.0"):
        y = b.add(x, w, name="res")
    b.output(y)
    text = print_graph(b.build())
    assert "%0 = add(%x, %blocks.0.w) : f32[B, 4] @blocks.0.res" in text
    assert "params(%blocks.0.w: f32[4])" in text


def test_shape_mismatch_points_at_the_calling_line():
    b = GraphBuilder("g")
    x = b.input("x", f32["B", 4])
    z = b.input("z", f32[3])
    line = inspect.currentframe().f_lineno + 2
    with pytest.raises(TypeInferenceError) as info:
        b.add(x, z)
    err = info.value
    assert err.loc is not None and (err.loc.file, err.loc.line) == (__file__, line)
    assert str(err).startswith(f"{__file__}:{line}: error: ")
    assert "shapes [B, 4], [3] do not broadcast" in str(err)
    assert "add(%x, %z)" in str(err)


def test_unknown_op_and_bad_attribute_are_clear():
    b = GraphBuilder("g")
    x = b.input("x", f32[2])
    with pytest.raises(OpDefinitionError, match="unknown op 'gelux'") as info:
        b.gelux(x)
    assert "did you mean gelu" in str(info.value)
    with pytest.raises(OpDefinitionError, match="must be one of 'none', 'tanh', got 'fast'"):
        b.gelu(x, approximate="fast")
    with pytest.raises(OpDefinitionError, match="gelu has no attribute 'approx'"):
        b.gelu(x, approx="tanh")
    with pytest.raises(OpDefinitionError, match="cast needs attribute 'dtype'"):
        b.cast(x)
    with pytest.raises(OpDefinitionError, match="exp takes 1 operands"):
        b.exp(x, x)


def test_param_data_must_match_its_type():
    b = GraphBuilder("g")
    with pytest.raises(TypeInferenceError, match=r"declared f32\[4\] but its data is float64\[4\]"):
        b.param("w", f32[4], np.ones(4))
    with pytest.raises(ArchirError, match="already has an input or parameter 'w'"):
        b.param("w", f32[4])
        b.input("w", i64[4])


def test_build_without_outputs_is_an_error():
    b = GraphBuilder("g")
    b.input("x", f32[2])
    with pytest.raises(ArchirError, match="has no outputs"):
        b.build()
