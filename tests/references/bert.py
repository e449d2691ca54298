"""Reference for examples/bert.py: Hugging Face BertForMaskedLM from a tiny random BertConfig
(eager attention, no dropout) loaded with the same weights.

The archir module paths are HF's, so the state dict loads by name unchanged; only the tied MLM
decoder (weight = word embeddings, bias = `cls.predictions.bias`) is filled in explicitly.
"""

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from archir.ir import Graph
from archir.symbolic import evaluate

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    sd = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    sd["cls.predictions.decoder.bias"] = sd["cls.predictions.bias"]
    return sd


class MaskedLMLogits(nn.Module):
    """The HF model called with archir's input order, giving the logits alone."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids, token_type_ids=token_type_ids, attention_mask=attention_mask).logits


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    from transformers import BertConfig, BertForMaskedLM

    c = model.config
    config = BertConfig(vocab_size=c.vocab, hidden_size=c.dim, num_hidden_layers=c.layers,
                        num_attention_heads=c.heads, intermediate_size=c.ff, hidden_act="gelu",
                        max_position_embeddings=c.max_len, type_vocab_size=c.type_vocab,
                        layer_norm_eps=c.eps, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    hf = BertForMaskedLM(config).eval()
    hf.load_state_dict(hf_state_dict(model))  # strict: every HF weight comes from archir
    return MaskedLMLogits(hf).eval(), lambda *arrays: tuple(torch.from_numpy(a) for a in arrays)


def reference(model):
    net, torch_args = torch_module(model)

    def run(ids: np.ndarray, token_type_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(ids, token_type_ids, attention_mask)).numpy()]

    return run


def make_inputs(graph: Graph, sizes: dict[str, int], rng: np.random.Generator) -> list[np.ndarray]:
    """Sentence pairs as BERT sees them: token types 0 then 1 from a random split point, and
    padding after a random length of at least one real token (row 0 unpadded)."""
    b, t = (evaluate(d, sizes) for d in graph.inputs[0].type.shape)
    vocab = graph.param("bert.embeddings.word_embeddings.weight").type.shape[0]
    ids = rng.integers(0, vocab, (b, t)).astype(np.int64)
    lengths = rng.integers(1, t + 1, b)
    lengths[0] = t
    split = rng.integers(0, lengths + 1)  # the first segment-B position, possibly none
    positions = np.arange(t)[None, :]
    token_type_ids = ((positions >= split[:, None]) & (positions < lengths[:, None])).astype(np.int64)
    attention_mask = (positions < lengths[:, None]).astype(np.int64)
    return [ids, token_type_ids, attention_mask]
