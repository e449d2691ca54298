"""Reference for examples/lenet.py: LeNet-5 as a torch.nn.Module of built-in layers."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class TorchLeNet(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        c1, c2 = c.channels
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, c.hidden[0])
        self.fc2 = nn.Linear(c.hidden[0], c.hidden[1])
        self.fc3 = nn.Linear(c.hidden[1], c.classes)
        self.pool = nn.AvgPool2d(2)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        x = nn.Flatten()(x)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchLeNet(model.config).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(x)).numpy()]

    return run
