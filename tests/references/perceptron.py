"""Reference for examples/perceptron.py: torch.nn.Linear and torch.sigmoid with the same weights."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class TorchPerceptron(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.fc = nn.Linear(c.features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x))


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchPerceptron(model.config).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(x)).numpy()]

    return run
