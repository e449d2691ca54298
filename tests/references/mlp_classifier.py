"""Reference for examples/mlp_classifier.py: a torch.nn.Sequential of Linear and ReLU layers.

The Sequential interleaves ReLUs, so archir's `hidden.i` is entry 2 * i and `head` comes last.
"""

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


def reference(model):
    c = model.config
    widths = (c.features, *c.hidden)
    layers: list[nn.Module] = []
    for a, b in pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], c.classes))
    net = nn.Sequential(*layers).eval()
    net.load_state_dict({sequential_name(k, len(c.hidden)): torch.from_numpy(v)
                         for k, v in model.state_dict().items()})

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            logits = net(torch.from_numpy(x))
            return [torch.softmax(logits, -1).numpy(), torch.log_softmax(logits, -1).numpy()]

    return run
