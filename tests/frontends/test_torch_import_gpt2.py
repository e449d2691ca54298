"""The torch importer on Hugging Face GPT2LMHeadModel from a tiny random config (batch and
sequence dynamic, one import run at two sizes) against eager PyTorch within 1e-4 on the
interpreter and the torch backend."""

import pytest
import torch
from torch.export import Dim

import archir
from tests.frontends.torch_check import assert_matches, check_structure


@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64,
                                     use_cache=False, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 100, (2, 7))
    spec = {"input_ids": {0: Dim("B", max=64), 1: Dim("T", max=64)}}
    graph = archir.from_torch(model, (), kwargs={"input_ids": ids}, dynamic_shapes=spec)
    return model, graph


def test_gpt2_imports_with_symbolic_batch_and_sequence(gpt2):
    _, graph = gpt2
    text = check_structure(graph)
    assert str(graph.inputs[0].type) == "i64[B, T]"
    assert str(graph.outputs[0].type) == "f32[B, T, 100]"
    assert "transformer.h.1.mlp.c_fc.weight" in {p.name for p in graph.params}
    assert "@transformer.h.0.attn" in text and "attention(" in text


def test_gpt2_matches_eager_at_two_sizes(gpt2):
    model, graph = gpt2

    class Logits(torch.nn.Module):
        def forward(self, ids):
            return model(input_ids=ids).logits

    for batch, length in ((2, 7), (3, 12)):
        ids = torch.randint(0, 100, (batch, length), generator=torch.Generator().manual_seed(length))
        assert_matches(graph, Logits(), [ids])
