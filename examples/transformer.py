"""The Transformer (Vaswani et al., 2017, "Attention Is All You Need"): an encoder-decoder built
from attention alone, run with teacher forcing.

Source and target tokens are embedded, scaled by sqrt(d_model) and given the fixed sinusoidal
position encoding. Post-norm encoder layers (self-attention under a source padding mask, then a
ReLU feed-forward) and decoder layers (causal self-attention, cross-attention over the encoder's
memory, feed-forward) each add a residual and then a layer norm; both stacks end in a layer norm,
as torch.nn.Transformer does. A linear generator and a log-softmax give the next-token
log-probabilities. Checked against torch.nn.Transformer with the same weights.
"""

import math
from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="transformer", family="F4 transformers", factory="transformer",
               reference="torch.nn.Transformer (post-norm) with plain torch embeddings",
               sizes=({"B": 2, "S": 7, "T": 5}, {"B": 3, "S": 4, "T": 9}), int_high=50)


@dataclass(frozen=True)
class TransformerConfig:
    src_vocab: int = 50
    tgt_vocab: int = 50
    dim: int = 32  # d_model
    heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    ff: int = 64  # d_ff, the feed-forward width
    eps: float = 1e-5


class LayerWithFeedForward(nn.Module):
    """What encoder and decoder layers share: FFN(x) = max(0, x W1 + b1) W2 + b2, its weights
    named linear1/linear2 as in torch's layers."""

    def __init__(self, c: TransformerConfig):
        self.linear1 = nn.Linear(c.dim, c.ff)
        self.linear2 = nn.Linear(c.ff, c.dim)

    def feed_forward(self, x):
        return self.linear2(archir.relu(self.linear1(x)))


class EncoderLayer(LayerWithFeedForward):
    def __init__(self, c: TransformerConfig):
        super().__init__(c)
        self.self_attn = nn.MultiHeadAttention(c.dim, c.heads)
        self.norm1 = nn.LayerNorm(c.dim, c.eps)
        self.norm2 = nn.LayerNorm(c.dim, c.eps)

    def forward(self, x, src_mask):
        x = self.norm1(x + self.self_attn(x, key_mask=src_mask))
        return self.norm2(x + self.feed_forward(x))


class DecoderLayer(LayerWithFeedForward):
    def __init__(self, c: TransformerConfig):
        super().__init__(c)
        self.self_attn = nn.MultiHeadAttention(c.dim, c.heads, causal=True)
        self.multihead_attn = nn.MultiHeadAttention(c.dim, c.heads)  # over the encoder's memory
        self.norm1 = nn.LayerNorm(c.dim, c.eps)
        self.norm2 = nn.LayerNorm(c.dim, c.eps)
        self.norm3 = nn.LayerNorm(c.dim, c.eps)

    def forward(self, y, memory, src_mask):
        y = self.norm1(y + self.self_attn(y))
        y = self.norm2(y + self.multihead_attn(y, context=memory, key_mask=src_mask))
        return self.norm3(y + self.feed_forward(y))


class Stack(nn.Module):
    """A stack of layers and the final layer norm torch.nn.Transformer puts after it."""

    def __init__(self, layers: list[nn.Module], c: TransformerConfig):
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, x, *context):
        for layer in self.layers:
            x = layer(x, *context)
        return self.norm(x)


@archir.model(src=archir.i64["B", "S"], tgt=archir.i64["B", "T"], src_mask=archir.boolean["B", "S"])
class Transformer(nn.Module):
    def __init__(self, c: TransformerConfig = TransformerConfig()):
        self.config = c
        self.src_embed = nn.Embedding(c.src_vocab, c.dim)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.dim)
        self.position = nn.SinusoidalPositionalEncoding(c.dim)
        self.encoder = Stack([EncoderLayer(c) for _ in range(c.enc_layers)], c)
        self.decoder = Stack([DecoderLayer(c) for _ in range(c.dec_layers)], c)
        self.generator = nn.Linear(c.dim, c.tgt_vocab)

    def embed(self, table: nn.Embedding, ids):
        return table(ids) * math.sqrt(self.config.dim) + self.position(ids.shape[1])

    def forward(self, src, tgt, src_mask):
        """src [B, S], tgt [B, T] (decoder inputs), src_mask [B, S] (True = a real token)
        -> log-probabilities [B, T, tgt_vocab]."""
        memory = self.encoder(self.embed(self.src_embed, src), src_mask)
        out = self.decoder(self.embed(self.tgt_embed, tgt), memory, src_mask)
        return archir.log_softmax(self.generator(out), axis=-1)


def _vary_norms(model: nn.Module) -> None:
    """Layer norms start near (1, 0) but not at it, so a norm loaded into the wrong slot shows."""
    for path, p in model.named_parameters():
        if ".norm" in path and path.endswith(".weight"):
            p.init = lambda rng, shape: 1.0 + 0.1 * rng.standard_normal(shape)
        elif ".norm" in path:
            p.init = ("normal", 0.1)


def transformer() -> Transformer:
    """A tiny encoder-decoder Transformer with seeded random weights."""
    model = Transformer()
    _vary_norms(model)
    return model.init(seed=0)
