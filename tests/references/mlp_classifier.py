"""Reference for examples/mlp_classifier.py: a torch.nn.Sequential of Linear and ReLU layers.

The Sequential interleaves ReLUs, so archir's `hidden.i` is entry 2 * i and `head` comes last.
"""

from collections.abc import Callable
from itertools import pairwise

import numpy as np
import torch
from torch import nn


def sequential_name(name: str, num_hidden: int) -> str:
    """`hidden.1.weight` -> `2.weight`; `head.bias` -> `<last>.bias`."""
    parts = name.split(".")
    if parts[0] == "head":
        return f"{2 * num_hidden}.{parts[1]}"
    return f"{2 * int(parts[1])}.{parts[2]}"


class TorchMLPClassifier(nn.Module):
    """softmax and log-softmax of the Sequential's logits; the Sequential's names load unchanged."""

    def __init__(self, c) -> None:
        super().__init__()
        widths = (c.features, *c.hidden)
        layers: list[nn.Module] = []
        for a, b in pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], c.classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return torch.softmax(logits, -1), torch.log_softmax(logits, -1)


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    c = model.config
    net = TorchMLPClassifier(c).eval()
    net.net.load_state_dict({sequential_name(k, len(c.hidden)): torch.from_numpy(v)
                             for k, v in model.state_dict().items()})
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in net(*torch_args(x))]

    return run
