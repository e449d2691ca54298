"""Reference for examples/gpt2.py: Hugging Face GPT2LMHeadModel with the same weights.

HF's GPT-2 keeps q, k and v in one Conv1D (`c_attn`, weight [in, 3 * out]) and its projections
as Conv1D too (weight [in, out]): the archir Linear weights are transposed and concatenated.
"""

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from archir.zoo import REFERENCES, load_module

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Loaded by path like every reference (they are not a package the CLI can import).
_shared = load_module(REFERENCES / "hf_gpt_blocks.py", "reference")


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    sd = {k: torch.from_numpy(v) for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"],
           "lm_head.weight": sd["wte.weight"]}
    out.update(_shared.hf_blocks(sd, model.config.layers))
    return out


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    config = GPT2Config(vocab_size=c.vocab, n_positions=c.max_len, n_embd=c.dim, n_layer=c.layers,
                        n_head=c.heads, layer_norm_epsilon=c.eps, bos_token_id=0, eos_token_id=0,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    hf = GPT2LMHeadModel(config).eval()
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith(("attn.bias", "attn.masked_bias")) for k in missing), missing
    return _shared.LMLogits(hf).eval(), lambda ids: (torch.from_numpy(ids),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(ids: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(ids)).numpy()]

    return run
