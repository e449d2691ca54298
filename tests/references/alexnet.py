"""Reference for examples/alexnet.py: torchvision's AlexNet layout written with torch.nn built-ins.

`features` and `classifier` are Sequentials indexed as in torchvision, so the archir names
`conv1`..`conv5`, `fc1`..`fc3` map to Sequential indices (ReLU, pooling and dropout take the
other slots). torchvision's adaptive average pool is an identity here (2x2 in, 2x2 out) and is
left out.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

TORCH_NAMES = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
               "conv4": "features.8", "conv5": "features.10", "fc1": "classifier.1",
               "fc2": "classifier.4", "fc3": "classifier.6"}


class TorchAlexNet(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(c.dropout), nn.Linear(c5 * 2 * 2, c.hidden), nn.ReLU(),
            nn.Dropout(c.dropout), nn.Linear(c.hidden, c.hidden), nn.ReLU(),
            nn.Linear(c.hidden, c.classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchAlexNet(model.config).eval()
    state = {}
    for name, value in model.state_dict().items():
        layer, param = name.split(".")
        state[f"{TORCH_NAMES[layer]}.{param}"] = torch.from_numpy(value)
    net.load_state_dict(state)
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(x)).numpy()]

    return run
