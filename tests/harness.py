"""Helpers for op tests: run one op through builder, verifier, text round trip and interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archir.backend import compile_graph
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


# Every op test also runs each compiling backend against the interpreter.
BACKENDS = ("torch", "llvm")


def run_op(op: str, *arrays: np.ndarray | None, **attrs: Any) -> Any:
    """Run one op on the interpreter (after the round trip); a single result comes back bare.

    Each backend of BACKENDS runs the same graph and must agree with the interpreter: exactly for
    integer and bool results; for floats within 1e-5 relative plus 1e-5 of the output's largest
    magnitude (accumulation order differs in contractions), 1e-2 for 16-bit floats."""
    graph = check_round_trip(single_op_graph(op, *arrays, **attrs))
    present = [a for a in arrays if a is not None]
    outputs = run(graph, *present)
    for backend in BACKENDS:
        check_backend_agrees(graph, present, outputs, backend)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def check_backend_agrees(graph: Graph, inputs: list[np.ndarray], expected: list[np.ndarray],
                         backend: str) -> None:
    got = compile_graph(graph, backend, pipeline="")(*inputs)
    for g, e in zip(got, expected, strict=True):
        assert (g.dtype, g.shape) == (e.dtype, e.shape), \
            f"{backend}: {g.dtype}{g.shape} != {e.dtype}{e.shape}"
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(g, e, err_msg=f"{backend} backend")
        else:
            scale = float(np.max(np.abs(e[np.isfinite(e)]), initial=1.0))
            atol = 1e-5 * scale if e.dtype.itemsize >= 4 else 1e-2 * scale
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=1e-5,
                                       atol=atol, err_msg=f"{backend} backend")


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
