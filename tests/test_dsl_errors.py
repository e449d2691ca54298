"""DSL mistakes raise ArchirError located at the user's own line, not at a line inside the DSL.

Each expected line is found in this file's source by a marker comment (`# <- error`) on the
offending line, so the tests do not depend on line numbers.
"""

import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import archir
from archir import nn
from archir.backend import compile_graph
from archir.errors import ArchirError, ArgumentError, TypeInferenceError

MARKER = "# <- error"


def marked_line(obj: Any) -> int:
    """The line number of the one line of `obj`'s source that carries MARKER."""
    lines, start = inspect.getsourcelines(obj)
    hits = [start + i for i, text in enumerate(lines) if MARKER in text]
    assert len(hits) == 1, f"{obj} needs exactly one marked line, has {len(hits)}"
    return hits[0]


def raises_at(fn: Callable[[], Any], where: Any, error: type[ArchirError] = ArchirError) -> ArchirError:
    """Run fn, expect `error`, and check its location is the marked line of `where`."""
    with pytest.raises(error) as info:
        fn()
    err = info.value
    assert err.loc is not None, f"no location on: {err}"
    assert os.path.samefile(err.loc.file, __file__), f"located in {err.loc.file}, not this test file"
    assert err.loc.line == marked_line(where), str(err)
    assert str(err).startswith(f"{err.loc.file}:{err.loc.line}: error: ")
    return err


class BadMatmul(nn.Module):
    def __init__(self) -> None:
        self.w = nn.Parameter(5, 7)

    def forward(self, x):
        h = x * 2.0
        return h @ self.w  # <- error


def test_matmul_inner_dims_mismatch_points_at_the_matmul() -> None:
    err = raises_at(lambda: BadMatmul().init().to_graph(x=archir.f32["B", 6]), BadMatmul.forward,
                    TypeInferenceError)
    assert "matmul inner dims differ" in err.message
    assert "6" in err.message and "5" in err.message


class WrongLinearInput(nn.Module):
    def __init__(self) -> None:
        self.proj = nn.Linear(5, 3)

    def forward(self, x):
        return self.proj(x)  # <- error


def test_mistake_inside_a_library_layer_points_at_the_users_call() -> None:
    err = raises_at(lambda: WrongLinearInput().init().to_graph(x=archir.f32["B", 6]),
                    WrongLinearInput.forward, TypeInferenceError)
    assert "linear" in err.message and "6 features" in err.message
    assert err.hint is not None and "[out_features, in_features]" in err.hint


@archir.model(x=archir.f32["B", 6], y=archir.f32["B", 6])
class TwoDeclaredOneTaken(nn.Module):
    def forward(self, x):  # <- error
        return x


def test_declared_inputs_differ_from_forward_signature() -> None:
    err = raises_at(lambda: TwoDeclaredOneTaken().to_graph(), TwoDeclaredOneTaken.forward)
    assert "takes 1 inputs (x)" in err.message and "declares 2 (x, y)" in err.message


class Pair(nn.Module):
    def forward(self, a, b):
        return a + b


class CallsPairWithOne(nn.Module):
    def __init__(self) -> None:
        self.pair = Pair()

    def forward(self, x):
        return self.pair(x)  # <- error


def test_submodule_called_with_too_few_arguments() -> None:
    err = raises_at(lambda: CallsPairWithOne().to_graph(x=archir.f32["B", 6]), CallsPairWithOne.forward)
    assert "Pair" in err.message and "'b'" in err.message
    assert isinstance(err, TypeError)  # still a TypeError, as Python would raise


@archir.model(x=archir.f32["B", 6])
class Identity(nn.Module):
    def forward(self, x):
        return x * 1.0


def test_compiled_model_called_with_wrong_argument_count() -> None:
    compiled = compile_graph(Identity().to_graph())
    x = np.zeros((2, 6), np.float32)

    def call_with_two() -> None:
        compiled(x, x)  # <- error

    err = raises_at(call_with_two, call_with_two, ArgumentError)
    assert "takes 1 inputs" in err.message and "got 2" in err.message


def test_compiled_model_called_with_wrong_dtype() -> None:
    compiled = compile_graph(Identity().to_graph())

    def call_with_f64() -> None:
        compiled(np.zeros((2, 6), np.float64))  # <- error

    err = raises_at(call_with_f64, call_with_f64, ArgumentError)
    assert "f32[B, 6]" in err.message and "float64" in err.message


class UsesUnsetAttribute(nn.Module):
    def __init__(self) -> None:
        self.scale = nn.Parameter(6)

    def forward(self, x):
        return x * self.scale + self.shift  # <- error


def test_parameter_used_but_never_set() -> None:
    err = raises_at(lambda: UsesUnsetAttribute().init().to_graph(x=archir.f32["B", 6]),
                    UsesUnsetAttribute.forward)
    assert "UsesUnsetAttribute has no attribute 'shift'" in err.message
    assert err.hint is not None and "self.shift" in err.hint
    assert isinstance(err, AttributeError)


class FloatIds(nn.Module):
    def __init__(self) -> None:
        self.emb = nn.Embedding(10, 4)

    def forward(self, ids):
        return self.emb(ids)  # <- error


def test_wrong_dtype_for_embedding_ids() -> None:
    err = raises_at(lambda: FloatIds().init().to_graph(ids=archir.f32["B", "T"]), FloatIds.forward,
                    TypeInferenceError)
    assert "integer dtype" in err.message and "f32[B, T]" in err.message


class FloatCondition(nn.Module):
    def forward(self, x):
        return archir.where(x, x, x * 0.0)  # <- error


def test_wrong_dtype_for_where_condition() -> None:
    err = raises_at(lambda: FloatCondition().to_graph(x=archir.f32["B", 6]), FloatCondition.forward,
                    TypeInferenceError)
    assert "cond must be bool" in err.message


class IndexOutOfRange(nn.Module):
    def forward(self, x):
        return x[:, 10]  # <- error


def test_index_out_of_range() -> None:
    err = raises_at(lambda: IndexOutOfRange().to_graph(x=archir.f32["B", 6]), IndexOutOfRange.forward)
    assert "index 10 is out of range for axis 1 of size 6" in err.message


class NegativeIndexOutOfRange(nn.Module):
    def forward(self, x):
        return x[:, -7]  # <- error


def test_negative_index_out_of_range() -> None:
    err = raises_at(lambda: NegativeIndexOutOfRange().to_graph(x=archir.f32["B", 6]),
                    NegativeIndexOutOfRange.forward)
    assert "index -7 is out of range" in err.message


class TooManyIndices(nn.Module):
    def forward(self, x):
        return x[0, 1, 2]  # <- error


def test_too_many_indices() -> None:
    err = raises_at(lambda: TooManyIndices().to_graph(x=archir.f32["B", 6]), TooManyIndices.forward)
    assert "too many indices (3) for a tensor of rank 2" in err.message


class BroadcastMismatch(nn.Module):
    def forward(self, x, y):
        return x + y  # <- error


def test_broadcast_mismatch_in_add() -> None:
    err = raises_at(lambda: BroadcastMismatch().to_graph(x=archir.f32["B", 6], y=archir.f32["B", 5]),
                    BroadcastMismatch.forward, TypeInferenceError)
    assert "[B, 6], [B, 5] do not broadcast" in err.message
    assert err.node is not None and err.node.startswith("add(")


def test_valid_indices_still_trace_and_run() -> None:
    """The range check must not reject the edges of a valid range."""

    @archir.model(x=archir.f32[3, 6])
    def edges(x):
        return x[:, 5] + x[:, -6] + x[-1, :].sum()

    x = np.arange(18, dtype=np.float32).reshape(3, 6)
    (out,) = compile_graph(edges.to_graph())(x)
    np.testing.assert_allclose(out, x[:, 5] + x[:, -6] + x[-1, :].sum(), rtol=0, atol=1e-6)
