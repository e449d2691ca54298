"""Shared checks for the torch importer tests: an imported graph verifies, round-trips through
the text format, and matches the eager module (the independent reference) on each backend."""

from typing import Any

import numpy as np
import torch

from archir.backend import compile_graph
from archir.parser import parse
from archir.printer import print_graph
from archir.verifier import verify

TOLERANCE = 1e-4


def max_error(got: Any, want: Any, same_dtype: bool = False) -> float:
    """Largest |got - want| over every output (tensors, arrays, or sequences of them), after
    checking that outputs line up in number and shape (and dtype when `same_dtype`)."""
    gots = list(got) if isinstance(got, list | tuple) else [got]
    wants = list(want) if isinstance(want, list | tuple) else [want]
    assert len(gots) == len(wants), f"{len(gots)} outputs, the reference gives {len(wants)}"
    error = 0.0
    for g, w in zip(gots, wants, strict=True):
        g_np = g.detach().numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
        w_np = w.detach().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
        assert g_np.shape == w_np.shape, f"shape {g_np.shape} != reference {w_np.shape}"
        assert not same_dtype or g_np.dtype == w_np.dtype, f"dtype {g_np.dtype} != reference {w_np.dtype}"
        diff = np.abs(g_np.astype(np.float64) - w_np.astype(np.float64))
        error = max(error, float(np.max(diff, initial=0.0)))
    return error


def check_structure(graph) -> str:
    verify(graph)
    text = print_graph(graph)
    assert print_graph(parse(text)) == text
    return text


def max_errors(graph, module, inputs: list[torch.Tensor], backends=("interp", "torch", "llvm")) -> dict:
    """The largest |archir - eager| per backend over every output."""
    with torch.no_grad():
        ref = module(*inputs)
    return {backend: max_error(compile_graph(graph, backend)(*[t.numpy() for t in inputs]), ref)
            for backend in backends}


def assert_matches(graph, module, inputs: list[torch.Tensor]) -> None:
    errors = max_errors(graph, module, inputs)
    for backend, err in errors.items():
        assert err <= TOLERANCE, f"{backend}: max abs error {err:.3g} > {TOLERANCE}"
