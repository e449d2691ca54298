"""Reference for examples/seq2seq_attention.py: Bahdanau et al. (2015) written out in plain PyTorch.

The encoder is torch.nn.GRU (bidirectional); the decoder is a Python loop over target positions
applying the paper's equations with torch ops, its GRU step a torch.nn.GRUCell.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.query_proj = nn.Linear(c.dec_hidden, c.align, bias=False)  # W_a
        self.key_proj = nn.Linear(2 * c.enc_hidden, c.align, bias=False)  # U_a
        self.score = nn.Linear(c.align, 1, bias=False)  # v_a


class Decoder(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        annotation = 2 * c.enc_hidden
        self.embed = nn.Embedding(c.tgt_vocab, c.embed)
        self.init_proj = nn.Linear(c.enc_hidden, c.dec_hidden)
        self.attention = Attention(c)
        self.cell = nn.GRUCell(c.embed + annotation, c.dec_hidden)
        self.readout = nn.Linear(c.dec_hidden + c.embed + annotation, 2 * c.maxout)
        self.head = nn.Linear(c.maxout, c.tgt_vocab)

    def forward(self, tgt: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = h.shape[-1] // 2
        s = torch.tanh(self.init_proj(h[:, 0, hidden:]))  # s_0 = tanh(W_s bwd h_1)
        u_h = self.attention.key_proj(h)
        ys = self.embed(tgt)
        logits, alignments = [], []
        for i in range(tgt.shape[1]):
            y = ys[:, i]
            e = self.attention.score(torch.tanh(self.attention.query_proj(s)[:, None, :] + u_h))[..., 0]
            a = torch.softmax(e, dim=1)
            c = torch.einsum("bs,bsd->bd", a, h)
            t = self.readout(torch.cat([s, y, c], dim=-1))
            t = torch.maximum(t[:, 0::2], t[:, 1::2])
            logits.append(self.head(t))
            alignments.append(a)
            s = self.cell(torch.cat([y, c], dim=-1), s)
        return torch.stack(logits, dim=1), torch.stack(alignments, dim=1)


class TorchSeq2SeqAttention(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(c.src_vocab, c.embed)
        self.encoder = nn.GRU(c.embed, c.enc_hidden, batch_first=True, bidirectional=True)
        self.decoder = Decoder(c)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        annotations, _ = self.encoder(self.src_embed(src))
        return self.decoder(tgt, annotations)


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchSeq2SeqAttention(model.config).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return net, lambda src, tgt: (torch.from_numpy(src), torch.from_numpy(tgt))


def reference(model):
    net, torch_args = torch_module(model)

    def run(src: np.ndarray, tgt: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in net(*torch_args(src, tgt))]

    return run
