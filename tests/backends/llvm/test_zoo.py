"""Zoo examples on the llvm backend against their independent PyTorch / transformers references,
at each entry's sizes with one build (tolerance: the entry's, 1e-4 by default).
"""

from __future__ import annotations

import os

import pytest

from archir import zoo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FAST = {"perceptron", "mlp_classifier", "autoencoder", "lstm_lm", "gru_lm", "elman_lm", "lenet"}
ENTRIES = zoo.entries()


def _param(entry, path):
    marks = () if entry.name in FAST else (pytest.mark.slow,)
    return pytest.param(entry, path, id=entry.name, marks=marks)


@pytest.mark.parametrize("entry, path", [_param(e, p) for e, p in ENTRIES])
def test_zoo_example_matches_reference(entry, path):
    for result in zoo.check(entry, path, "llvm"):
        assert result.ok, f"{entry.name} at {result.sizes}: max error {result.max_abs_error:.3g}"
