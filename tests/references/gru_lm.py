"""Reference for examples/gru_lm.py: torch.nn.Embedding, GRU and Linear with the same weights."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class TorchGRULM(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.vocab, c.dim)
        self.gru = nn.GRU(c.dim, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, c.vocab)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, h_n = self.gru(self.embed(ids))
        return self.head(hidden), h_n


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchGRULM(model.config).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return net, lambda ids: (torch.from_numpy(ids),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(ids: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in net(*torch_args(ids))]

    return run
