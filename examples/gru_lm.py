"""A GRU language model (gated recurrent unit of Cho et al., 2014): token embedding, stacked GRU
layers, a linear head to vocabulary logits.

Each layer is one `scan` with its input projection hoisted out of the loop; gates follow torch
(r, z, n with the reset gate applied after the hidden projection). Checked against
torch.nn.Embedding + torch.nn.GRU + torch.nn.Linear with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="gru_lm", family="F3 recurrent", factory="gru_lm",
               reference="torch.nn Embedding, GRU, Linear",
               sizes=({"B": 2, "T": 6}, {"B": 3, "T": 11}), int_high=50)


@dataclass(frozen=True)
class GRULMConfig:
    vocab: int = 50
    dim: int = 16
    hidden: int = 32
    layers: int = 2


@archir.model(ids=archir.i64["B", "T"])
class GRULM(nn.Module):
    def __init__(self, c: GRULMConfig = GRULMConfig()):
        self.config = c
        self.embed = nn.Embedding(c.vocab, c.dim)
        self.gru = nn.GRU(c.dim, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, c.vocab)

    def forward(self, ids):
        """ids [B, T] -> (logits [B, T, vocab], final hidden states [layers, B, hidden])."""
        hidden, h_n = self.gru(self.embed(ids))
        return self.head(hidden), h_n


def gru_lm() -> GRULM:
    """A tiny two-layer GRU language model with seeded random weights."""
    return GRULM().init(seed=0)
