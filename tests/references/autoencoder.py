"""Reference for examples/autoencoder.py: torch.nn.Sequential encoder and decoder.

archir's `encoder.fc1` / `encoder.fc2` are entries 0 and 2 of the encoder Sequential (a ReLU
sits between them); the same holds for the decoder.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

SEQUENTIAL_INDEX = {"fc1": "0", "fc2": "2"}


class TorchAutoencoder(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(c.features, c.hidden), nn.ReLU(),
                                     nn.Linear(c.hidden, c.code), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(c.code, c.hidden), nn.ReLU(),
                                     nn.Linear(c.hidden, c.features), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchAutoencoder(model.config).eval()
    state = {}
    for name, value in model.state_dict().items():
        part, layer, param = name.split(".")
        state[f"{part}.{SEQUENTIAL_INDEX[layer]}.{param}"] = torch.from_numpy(value)
    net.load_state_dict(state)
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in net(*torch_args(x))]

    return run
