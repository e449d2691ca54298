"""Helpers for pass tests: `.air` text in, a pipeline, `.air` text out; interpreter runs before/after.

Numerical checks compare the interpreter's outputs before and after a pipeline on seeded random
inputs with an absolute and relative tolerance of TOLERANCE.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from archir.interpreter import run
from archir.ir import Graph
from archir.parser import parse
from archir.pass_manager import PassManager
from archir.printer import print_graph
from archir.registry import _OPS, OpDef, Trait
from archir.types import DType, TensorType, f32
from archir.verifier import verify

TOLERANCE = 1e-6


def normalise(text: str) -> str:
    """The text with every run of whitespace turned into one space (the only difference allowed)."""
    return " ".join(text.split())


def parse_air(src: str) -> Graph:
    graph = parse(textwrap.dedent(src))
    verify(graph)
    return graph


def check_pipeline(src: str, pipeline: str, expected: str) -> Graph:
    """Run `pipeline` on the graph in `src` and compare its printed text with `expected`."""
    result = PassManager(pipeline).run(parse_air(src))
    verify(result)
    got = print_graph(result)
    assert normalise(got) == normalise(expected), f"after {pipeline}:\n{got}"
    assert print_graph(parse(got)) == got  # the result still round-trips
    return result


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    if dtype == DType.bool:
        return rng.random(shape) < 0.5
    if dtype.is_int:
        return rng.integers(-5, 6, size=shape).astype(dtype.numpy)
    return rng.standard_normal(shape).astype(dtype.numpy)


def random_arguments(graph: Graph, rng: np.random.Generator,
                     sizes: Mapping[str, int] | None = None) -> list[np.ndarray]:
    arrays = []
    for v in graph.inputs:
        assert isinstance(v.type, TensorType)
        arrays.append(random_array(rng, v.type.concrete_shape(dict(sizes or {})), v.type.dtype))
    return arrays


def give_random_params(graph: Graph, rng: np.random.Generator) -> Graph:
    """Attach seeded random data to every parameter of a graph parsed from text."""
    for p in graph.params:
        assert isinstance(p.type, TensorType) and p.name is not None
        graph.param_data[p.name] = random_array(rng, p.type.concrete_shape({}), p.type.dtype)
    return graph


def check_numerics(graph: Graph, pipeline: str, rng: np.random.Generator,
                   sizes: Mapping[str, int] | None = None, trials: int = 3) -> Graph:
    """The interpreter gives the same outputs (within TOLERANCE) before and after `pipeline`."""
    verify(graph)
    arguments = [random_arguments(graph, rng, sizes) for _ in range(trials)]
    before = [run(graph, *args) for args in arguments]
    result = PassManager(pipeline).run(graph)
    for args, want in zip(arguments, before, strict=True):
        got = run(result, *args)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64),
                                       rtol=TOLERANCE, atol=TOLERANCE)
    return result


def temporary_op(monkeypatch: Any, name: str, trait: Trait) -> None:
    """Register `name(x) -> f32[]` with `trait` for one test (monkeypatch removes it again)."""
    op = OpDef(name, ("x",), lambda x: TensorType((), f32), lambda x: np.zeros((), np.float32),
               traits=frozenset({trait}))
    monkeypatch.setitem(_OPS, name, op)
