"""Reference for examples/transformer.py: torch.nn.Transformer (post-norm, batch first, no dropout)
between plain torch embeddings with the sinusoidal encoding and a linear generator.

torch's attention keeps q, k and v in one packed `in_proj_weight` [3 d, d] (and `in_proj_bias`):
the archir q/k/v projections are concatenated in that order. torch's padding masks are True where
a key is ignored, the archir `src_mask` True where it is attended.
"""

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from archir.ir import Graph
from archir.symbolic import evaluate


def sinusoidal(length: int, dim: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.pow(10000.0, torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos / div)
    pe[:, 1::2] = torch.cos(pos / div)
    return pe


class TorchTransformer(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.dim = c.dim
        self.src_embed = nn.Embedding(c.src_vocab, c.dim)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.dim)
        self.transformer = nn.Transformer(
            d_model=c.dim, nhead=c.heads, num_encoder_layers=c.enc_layers,
            num_decoder_layers=c.dec_layers, dim_feedforward=c.ff, dropout=0.0,
            layer_norm_eps=c.eps, batch_first=True, norm_first=False)
        # The nested-tensor fast path zeroes padded memory rows (masked anyway); keep the plain path.
        self.transformer.encoder.use_nested_tensor = False
        self.generator = nn.Linear(c.dim, c.tgt_vocab)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return table(ids) * math.sqrt(self.dim) + sinusoidal(ids.shape[1], self.dim)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        out = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt),
                               tgt_mask=causal, tgt_is_causal=True,
                               src_key_padding_mask=~src_mask, memory_key_padding_mask=~src_mask)
        return torch.log_softmax(self.generator(out), dim=-1)


def torch_state_dict(model) -> dict[str, torch.Tensor]:
    """archir names -> torch names: the stacks move under `transformer.`, q/k/v projections pack."""
    sd = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    out = {}
    for key, value in sd.items():
        attn, proj, param = key.rsplit(".", 2) if key.count(".") >= 2 else ("", "", key)
        prefix = "transformer." if key.startswith(("encoder.", "decoder.")) else ""
        if proj == "q_proj":  # k_proj and v_proj go in with it
            parts = [sd[f"{attn}.{p}.{param}"] for p in ("q_proj", "k_proj", "v_proj")]
            out[f"{prefix}{attn}.in_proj_{param}"] = torch.cat(parts)
        elif proj not in ("k_proj", "v_proj"):
            out[prefix + key] = value
    return out


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchTransformer(model.config).eval()
    net.load_state_dict(torch_state_dict(model))  # strict: every torch weight comes from archir
    return net, lambda src, tgt, src_mask: (torch.from_numpy(src), torch.from_numpy(tgt),
                                            torch.from_numpy(src_mask))


def reference(model):
    net, torch_args = torch_module(model)

    def run(src: np.ndarray, tgt: np.ndarray, src_mask: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = net(*torch_args(src, tgt, src_mask))
        return [out.numpy()]

    return run


def make_inputs(graph: Graph, sizes: dict[str, int], rng: np.random.Generator) -> list[np.ndarray]:
    """Token ids over each whole vocabulary and a source mask of real prefixes: row 0 unpadded,
    every other row at least one real token long (a row of only padding has no defined output)."""
    arrays = []
    for v in graph.inputs:
        shape = tuple(evaluate(d, sizes) for d in v.type.shape)
        if v.name == "src_mask":
            lengths = rng.integers(1, shape[1] + 1, shape[0])
            lengths[0] = shape[1]
            arrays.append(np.arange(shape[1])[None, :] < lengths[:, None])
        else:
            vocab = graph.param(f"{v.name}_embed.weight").type.shape[0]
            arrays.append(rng.integers(0, vocab, shape).astype(np.int64))
    return arrays
