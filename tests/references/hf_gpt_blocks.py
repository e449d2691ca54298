"""What the GPT-1 and GPT-2 references share: both Hugging Face models keep q, k and v in one
Conv1D (`c_attn`, weight [in, 3 * out]) and their projections as Conv1D (weight [in, out]), so the
archir Linear weights of each block are transposed and concatenated the same way.

Not a zoo reference itself (no example is named hf_gpt_blocks); gpt1.py and gpt2.py load it.
"""

import torch
from torch import nn


def hf_blocks(sd: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The HF `transformer.h.{i}.*` tensors of `layers` archir `blocks.{i}.*` blocks."""
    out = {}
    for i in range(layers):
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
