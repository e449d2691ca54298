"""GPT-2 (Radford et al., 2019): a decoder-only causal language model.

Token and learned position embeddings, pre-norm blocks of causal multi-head self-attention and
a GELU(tanh) MLP with residual connections, a final layer norm, and a softmax head tied to the
token embedding. Checked against Hugging Face `GPT2LMHeadModel` with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="gpt2", family="F4 transformers", factory="gpt2",
               reference="transformers GPT2LMHeadModel",
               sizes=({"B": 1, "T": 8}, {"B": 2, "T": 13}), int_high=100)


@dataclass(frozen=True)
class GPT2Config:
    vocab: int = 100
    max_len: int = 64
    dim: int = 32
    heads: int = 4
    layers: int = 2
    eps: float = 1e-5


class MLP(nn.Module):
    def __init__(self, dim: int):
        self.fc = nn.Linear(dim, 4 * dim)
        self.proj = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.proj(archir.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c: GPT2Config):
        self.ln_1 = nn.LayerNorm(c.dim, c.eps)
        self.attn = nn.MultiHeadAttention(c.dim, c.heads, causal=True)
        self.ln_2 = nn.LayerNorm(c.dim, c.eps)
        self.mlp = MLP(c.dim)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@archir.model(ids=archir.i64["B", "T"])
class GPT2(nn.Module):
    def __init__(self, c: GPT2Config = GPT2Config()):
        self.config = c
        self.wte = nn.Embedding(c.vocab, c.dim)
        self.wpe = nn.Embedding(c.max_len, c.dim)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.layers)])
        self.ln_f = nn.LayerNorm(c.dim, c.eps)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(archir.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return archir.linear(self.ln_f(x), self.wte.weight)  # head tied to the token embedding


def gpt2() -> GPT2:
    """A small GPT-2 with seeded random weights."""
    return GPT2().init(seed=0)
