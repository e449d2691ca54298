"""Shared checks for the torch importer tests: an imported graph verifies, round-trips through
the text format, and matches the eager module (the independent reference) on each backend."""

import numpy as np
import torch

from archir.backend import compile_graph
from archir.parser import parse
from archir.printer import print_graph
from archir.verifier import verify

TOLERANCE = 1e-4


def check_structure(graph) -> str:
    verify(graph)
    text = print_graph(graph)
    assert print_graph(parse(text)) == text
    return text


def max_errors(graph, module, inputs: list[torch.Tensor], backends=("interp", "torch", "llvm")) -> dict:
    """The largest |archir - eager| per backend over every output."""
    with torch.no_grad():
        ref = module(*inputs)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    errors = {}
    for backend in backends:
        outs = compile_graph(graph, backend)(*[t.numpy() for t in inputs])
        assert len(outs) == len(refs)
        errors[backend] = max(float(np.max(np.abs(np.asarray(o, np.float64) - r.numpy())))
                              for o, r in zip(outs, refs, strict=True))
    return errors


def assert_matches(graph, module, inputs: list[torch.Tensor]) -> None:
    errors = max_errors(graph, module, inputs)
    for backend, err in errors.items():
        assert err <= TOLERANCE, f"{backend}: max abs error {err:.3g} > {TOLERANCE}"
