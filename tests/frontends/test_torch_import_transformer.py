"""The torch importer on the zoo's torch.nn.Transformer reference (tests/references/transformer.py:
embeddings, sinusoidal encoding written by slice assignment, encoder-decoder with padding and
causal masks) against eager PyTorch within 1e-4, at two sizes from one symbolic import.
Slow (about 25 s): the export plus the functionalization its in-place writes need."""

from types import SimpleNamespace

import pytest
import torch
from torch.export import Dim

import archir
from tests.frontends.torch_check import assert_matches, check_structure
from tests.references.transformer import TorchTransformer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transformer():
    torch.manual_seed(0)
    c = SimpleNamespace(dim=16, heads=2, enc_layers=1, dec_layers=1, ff=32, eps=1e-5,
                        src_vocab=20, tgt_vocab=24)
    model = TorchTransformer(c).eval()
    src, tgt = torch.randint(0, 20, (2, 5)), torch.randint(0, 24, (2, 4))
    mask = torch.ones(2, 5, dtype=torch.bool)
    b, s, t = Dim("B"), Dim("S"), Dim("T")
    graph = archir.from_torch(model, (src, tgt, mask),
                              dynamic_shapes=({0: b, 1: s}, {0: b, 1: t}, {0: b, 1: s}))
    return model, graph


def test_torch_transformer_reference_matches_eager(transformer):
    model, graph = transformer
    check_structure(graph)
    assert [str(v.type) for v in graph.inputs] == ["i64[B, S]", "i64[B, T]", "bool[B, S]"]
    for batch, s, t in ((2, 5, 4), (3, 7, 6)):
        g = torch.Generator().manual_seed(s)
        src = torch.randint(0, 20, (batch, s), generator=g)
        tgt = torch.randint(0, 24, (batch, t), generator=g)
        mask = torch.ones(batch, s, dtype=torch.bool)
        mask[1, s - 2:] = False  # a padded source row
        assert_matches(graph, model, [src, tgt, mask])
