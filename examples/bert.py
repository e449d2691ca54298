"""BERT (Devlin et al., 2019): a bidirectional transformer encoder with a masked-language-model head.

Word, learned position and token-type (segment) embeddings are summed and layer-normed; post-norm
encoder layers of multi-head self-attention (padding keys masked out by `attention_mask`) and a
GELU (exact erf) feed-forward follow; the MLM head is dense + GELU + layer norm, then a decoder
tied to the word embeddings plus a bias. Module paths follow Hugging Face's BertForMaskedLM, so
its `state_dict` names are ours one for one; checked against it with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="bert", family="F4 transformers", factory="bert",
               reference="transformers BertForMaskedLM (eager attention)",
               sizes=({"B": 2, "T": 8}, {"B": 3, "T": 13}), int_high=100)


@dataclass(frozen=True)
class BertConfig:
    vocab: int = 100
    max_len: int = 64
    type_vocab: int = 2  # segments A and B
    dim: int = 32
    heads: int = 4
    layers: int = 2
    ff: int = 64  # intermediate size
    eps: float = 1e-12


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        self.word_embeddings = nn.Embedding(c.vocab, c.dim)
        self.position_embeddings = nn.Embedding(c.max_len, c.dim)
        self.token_type_embeddings = nn.Embedding(c.type_vocab, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, ids, token_type_ids):
        positions = self.position_embeddings(archir.arange(ids.shape[1]))
        x = self.word_embeddings(ids) + self.token_type_embeddings(token_type_ids) + positions
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    """Scaled dot-product attention over heads; `keep` [B, T] is True at real (unpadded) keys."""

    def __init__(self, c: BertConfig):
        self.heads, self.head_dim = c.heads, c.dim // c.heads
        self.query = nn.Linear(c.dim, c.dim)
        self.key = nn.Linear(c.dim, c.dim)
        self.value = nn.Linear(c.dim, c.dim)

    def split_heads(self, x):  # [B, T, D] -> [B, H, T, Dh]
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, keep):
        q, k, v = (self.split_heads(proj(x)) for proj in (self.query, self.key, self.value))
        out = archir.attention(q, k, v, keep.unsqueeze(1).unsqueeze(1))  # mask [B, 1, 1, T]
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)


class AddNorm(nn.Module):
    """LayerNorm(dense(h) + residual): the post-norm output of attention and of the feed-forward."""

    def __init__(self, d_in: int, c: BertConfig):
        self.dense = nn.Linear(d_in, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        self.self = BertSelfAttention(c)
        self.output = AddNorm(c.dim, c)

    def forward(self, x, keep):
        return self.output(self.self(x, keep), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        self.dense = nn.Linear(c.dim, c.ff)

    def forward(self, x):
        return archir.gelu(self.dense(x))  # exact (erf) GELU


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = AddNorm(c.ff, c)

    def forward(self, x, keep):
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.layers)])

    def forward(self, x, keep):
        for layer in self.layer:
            x = layer(x, keep)
        return x


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, ids, token_type_ids, keep):
        return self.encoder(self.embeddings(ids, token_type_ids), keep)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: BertConfig):
        self.dense = nn.Linear(c.dim, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, x):
        return self.LayerNorm(archir.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c: BertConfig):
        self.transform = BertPredictionHeadTransform(c)
        self.bias = nn.Parameter(c.vocab, init=("normal", 0.1))

    def forward(self, x, decoder_weight):
        return archir.linear(self.transform(x), decoder_weight, self.bias)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c: BertConfig):
        self.predictions = BertLMPredictionHead(c)

    def forward(self, x, decoder_weight):
        return self.predictions(x, decoder_weight)


@archir.model(ids=archir.i64["B", "T"], token_type_ids=archir.i64["B", "T"],
              attention_mask=archir.i64["B", "T"])
class BertForMaskedLM(nn.Module):
    def __init__(self, c: BertConfig = BertConfig()):
        self.config = c
        self.bert = BertModel(c)
        self.cls = BertOnlyMLMHead(c)

    def forward(self, ids, token_type_ids, attention_mask):
        """ids, token_type_ids [B, T]; attention_mask [B, T] (1 = real token, 0 = padding)
        -> MLM logits [B, T, vocab]."""
        hidden = self.bert(ids, token_type_ids, attention_mask > 0)
        # The MLM decoder is tied to the word embeddings: the same weight, not a copy.
        return self.cls(hidden, self.bert.embeddings.word_embeddings.weight)


def _vary_norms(model: nn.Module) -> None:
    """Layer norms start near (1, 0) but not at it, so a norm loaded into the wrong slot shows."""
    for path, p in model.named_parameters():
        if ".LayerNorm.weight" in path:
            p.init = lambda rng, shape: 1.0 + 0.1 * rng.standard_normal(shape)
        elif ".LayerNorm.bias" in path:
            p.init = ("normal", 0.1)


def bert() -> BertForMaskedLM:
    """A tiny BERT masked-LM with seeded random weights."""
    model = BertForMaskedLM()
    _vary_norms(model)
    return model.init(seed=0)
