"""Helpers for op tests: run one op through builder, verifier, text round trip and interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archir.builder import GraphBuilder
from archir.interpreter import run
from archir.ir import Graph
from archir.parser import parse
from archir.printer import print_graph
from archir.types import DType, TensorType
from archir.verifier import verify


def single_op_graph(op: str, *arrays: np.ndarray | None, **attrs: Any) -> Graph:
    """A graph whose inputs have the arrays' static types and whose outputs are the op's results."""
    b = GraphBuilder(op)
    inputs = []
    for i, a in enumerate(arrays):
        if a is None:
            break
        inputs.append(b.input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype))))
    result = b.op(op, *inputs, **attrs)
    b.output(*(result if isinstance(result, tuple) else (result,)))
    return b.build()


def check_round_trip(graph: Graph) -> Graph:
    """Verify, print, parse, verify again and check the text is unchanged; returns the parsed graph."""
    verify(graph)
    text = print_graph(graph)
    parsed = parse(text)
    parsed.param_data = dict(graph.param_data)
    verify(parsed)
    assert print_graph(parsed) == text
    return parsed


def run_op(op: str, *arrays: np.ndarray | None, **attrs: Any) -> Any:
    """Run one op on the interpreter (after the round trip); a single result comes back bare."""
    graph = check_round_trip(single_op_graph(op, *arrays, **attrs))
    present = [a for a in arrays if a is not None]
    outputs = run(graph, *present)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def rand(rng: np.random.Generator, *shape: int, dtype: Any = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def to_torch(a: np.ndarray) -> torch.Tensor:
    # np.array (not ascontiguousarray) keeps 0-d arrays 0-d.
    return torch.from_numpy(np.array(a))


def assert_close(got: np.ndarray, want: torch.Tensor | np.ndarray, atol: float = 1e-5,
                 rtol: float = 1e-5) -> None:
    """Shape, dtype kind and values must match; the tolerance is stated at each call site."""
    want_np = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want_np.shape, f"shape {got.shape} != {want_np.shape}"
    np.testing.assert_allclose(got.astype(np.float64), want_np.astype(np.float64),
                               atol=atol, rtol=rtol)
