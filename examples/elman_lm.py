"""An Elman RNN language model (Elman, 1990, "Finding Structure in Time"; as an LM, Mikolov
et al., 2010): token embedding, a stack of tanh recurrent layers, a linear head to vocabulary logits.

Each layer is one `scan` over time with its input projection hoisted out of the loop. Checked
against torch.nn.Embedding + torch.nn.RNN + torch.nn.Linear with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="elman_lm", family="F3 recurrent", factory="elman_lm",
               reference="torch.nn Embedding, RNN (tanh), Linear",
               sizes=({"B": 2, "T": 6}, {"B": 3, "T": 11}), int_high=50)


@dataclass(frozen=True)
class ElmanLMConfig:
    vocab: int = 50
    dim: int = 16
    hidden: int = 32
    layers: int = 2


@archir.model(ids=archir.i64["B", "T"])
class ElmanLM(nn.Module):
    def __init__(self, c: ElmanLMConfig = ElmanLMConfig()):
        self.config = c
        self.embed = nn.Embedding(c.vocab, c.dim)
        self.rnn = nn.RNN(c.dim, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, c.vocab)

    def forward(self, ids):
        """ids [B, T] -> (logits [B, T, vocab], final hidden states [layers, B, hidden])."""
        hidden, h_n = self.rnn(self.embed(ids))
        return self.head(hidden), h_n


def elman_lm() -> ElmanLM:
    """A tiny two-layer Elman RNN language model with seeded random weights."""
    return ElmanLM().init(seed=0)
