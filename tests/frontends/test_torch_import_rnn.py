"""torch.nn.LSTM and GRU (the zoo's lstm_lm and gru_lm references): aten.lstm / aten.gru have no
archir converter, so the importer has torch decompose them (unrolled over a static length) and
the result must match eager within 1e-4. Slow: the decomposition takes about 10 s per model."""

from types import SimpleNamespace

import pytest
import torch
from torch.export import Dim

import archir
from tests.frontends.torch_check import assert_matches, check_structure
from tests.references.gru_lm import TorchGRULM
from tests.references.lstm_lm import TorchLSTMLM

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("reference", [TorchLSTMLM, TorchGRULM])
def test_recurrent_lm_imports_by_decomposition(reference):
    torch.manual_seed(0)
    model = reference(SimpleNamespace(vocab=20, dim=8, hidden=8, layers=2)).eval()
    ids = torch.randint(0, 20, (2, 5))
    graph = archir.from_torch(model, (ids,), dynamic_shapes=({0: Dim("B")},))
    check_structure(graph)
    assert str(graph.inputs[0].type) == "i64[B, 5]"
    for batch in (2, 4):
        gen = torch.Generator().manual_seed(batch)
        assert_matches(graph, model, [torch.randint(0, 20, (batch, 5), generator=gen)])
