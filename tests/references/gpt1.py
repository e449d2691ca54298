"""Reference for examples/gpt1.py: Hugging Face OpenAIGPTLMHeadModel with the same weights.

HF's GPT-1 keeps q, k and v in one Conv1D (`c_attn`, weight [in, 3 * out]) and its projections
as Conv1D too (weight [in, out]): the archir Linear weights are transposed and concatenated.
Its `afn="gelu"` is `gelu_new`, the tanh approximation, which the example uses too.
"""

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    sd = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    out = {"transformer.tokens_embed.weight": sd["tokens_embed.weight"],
           "transformer.positions_embed.weight": sd["positions_embed.weight"],
           "lm_head.weight": sd["tokens_embed.weight"]}
    for i in range(model.config.layers):
        src, dst = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[dst + f"{ln}.weight"] = sd[src + f"{ln}.weight"]
            out[dst + f"{ln}.bias"] = sd[src + f"{ln}.bias"]
        qkv = [src + f"attn.{p}_proj" for p in "qkv"]
        out[dst + "attn.c_attn.weight"] = torch.cat([sd[p + ".weight"].T for p in qkv], dim=1)
        out[dst + "attn.c_attn.bias"] = torch.cat([sd[p + ".bias"] for p in qkv])
        for hf_name, ours in (("attn.c_proj", "attn.out_proj"), ("mlp.c_fc", "mlp.fc"),
                              ("mlp.c_proj", "mlp.proj")):
            out[dst + hf_name + ".weight"] = sd[src + ours + ".weight"].T.contiguous()
            out[dst + hf_name + ".bias"] = sd[src + ours + ".bias"]
    return out


class LMLogits(nn.Module):
    """The HF model giving the logits alone."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(ids).logits


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    from transformers import OpenAIGPTConfig, OpenAIGPTLMHeadModel

    c = model.config
    config = OpenAIGPTConfig(vocab_size=c.vocab, n_positions=c.max_len, n_embd=c.dim,
                             n_layer=c.layers, n_head=c.heads, layer_norm_epsilon=c.eps,
                             afn="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = OpenAIGPTLMHeadModel(config).eval()
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("attn.bias") for k in missing), missing  # the causal-mask buffers
    return LMLogits(hf).eval(), lambda ids: (torch.from_numpy(ids),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(ids: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(ids)).numpy()]

    return run
