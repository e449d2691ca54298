"""An LSTM language model (Hochreiter and Schmidhuber, 1997; forget gate as in Gers et al., 2000;
as an LM, Zaremba et al., 2014): token embedding, stacked LSTM layers, a linear head to logits.

Each layer is one `scan` carrying (h, c) with its input projection hoisted out of the loop.
Checked against torch.nn.Embedding + torch.nn.LSTM + torch.nn.Linear with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="lstm_lm", family="F3 recurrent", factory="lstm_lm",
               reference="torch.nn Embedding, LSTM, Linear",
               sizes=({"B": 2, "T": 6}, {"B": 3, "T": 11}), int_high=50)


@dataclass(frozen=True)
class LSTMLMConfig:
    vocab: int = 50
    dim: int = 16
    hidden: int = 32
    layers: int = 2


@archir.model(ids=archir.i64["B", "T"])
class LSTMLM(nn.Module):
    def __init__(self, c: LSTMLMConfig = LSTMLMConfig()):
        self.config = c
        self.embed = nn.Embedding(c.vocab, c.dim)
        self.lstm = nn.LSTM(c.dim, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, c.vocab)

    def forward(self, ids):
        """ids [B, T] -> (logits [B, T, vocab], h_n and c_n [layers, B, hidden])."""
        hidden, (h_n, c_n) = self.lstm(self.embed(ids))
        return self.head(hidden), h_n, c_n


def lstm_lm() -> LSTMLM:
    """A tiny two-layer LSTM language model with seeded random weights."""
    return LSTMLM().init(seed=0)
