"""GPT-1 (Radford et al., 2018): the first generative pre-trained transformer, decoder-only.

Token and learned position embeddings, then post-norm blocks (layer norm after each residual
sum, as in the original Transformer) of causal multi-head self-attention and a GELU(tanh) MLP,
no final layer norm, and a head tied to the token embedding. Checked against Hugging Face
`OpenAIGPTLMHeadModel` with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="gpt1", family="F4 transformers", factory="gpt1",
               reference="transformers OpenAIGPTLMHeadModel",
               sizes=({"B": 1, "T": 9}, {"B": 3, "T": 16}), int_high=100)


@dataclass(frozen=True)
class GPT1Config:
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
        # The released GPT-1 code used the tanh approximation of GELU.
        return self.proj(archir.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c: GPT1Config):
        self.attn = nn.MultiHeadAttention(c.dim, c.heads, causal=True)
        self.ln_1 = nn.LayerNorm(c.dim, c.eps)
        self.mlp = MLP(c.dim)
        self.ln_2 = nn.LayerNorm(c.dim, c.eps)

    def forward(self, x):
        x = self.ln_1(x + self.attn(x))  # post-norm: normalise after the residual sum
        return self.ln_2(x + self.mlp(x))


@archir.model(ids=archir.i64["B", "T"])
class GPT1(nn.Module):
    def __init__(self, c: GPT1Config = GPT1Config()):
        self.config = c
        self.tokens_embed = nn.Embedding(c.vocab, c.dim)
        self.positions_embed = nn.LearnedPositionalEmbedding(c.max_len, c.dim)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.layers)])

    def forward(self, ids):
        x = self.tokens_embed(ids) + self.positions_embed(ids.shape[1])
        for block in self.blocks:
            x = block(x)
        return archir.linear(x, self.tokens_embed.weight)  # head tied to the token embedding


def gpt1() -> GPT1:
    """A small GPT-1 with seeded random weights."""
    return GPT1().init(seed=0)
