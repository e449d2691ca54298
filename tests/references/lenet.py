"""Reference for examples/lenet.py: LeNet-5 as a torch.nn.Module of built-in layers."""

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


def reference(model):
    net = TorchLeNet(model.config).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(torch.from_numpy(x)).numpy()]

    return run
