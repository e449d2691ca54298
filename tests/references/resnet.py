"""Reference for examples/resnet.py: a ResNet of torch.nn built-ins with torchvision's names.

Batch norm runs in eval mode on the archir model's running statistics, loaded with the rest of
the state dict; adaptive average pooling to 1x1 stands in for archir's mean over H and W.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class TorchBasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.downsample(x))


class TorchResNet(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, c.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c.stem)
        self.stem = nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        channels = c.stem
        for i, (width, depth) in enumerate(zip(c.widths, c.depths, strict=True)):
            blocks = [TorchBasicBlock(channels, width, 1 if i == 0 else 2)]
            blocks += [TorchBasicBlock(width, width, 1) for _ in range(depth - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            channels = width
        self.num_stages = len(c.widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, c.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = TorchResNet(model.config).eval()
    missing, unexpected = net.load_state_dict(
        {k: torch.from_numpy(v) for k, v in model.state_dict().items()}, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    return net, lambda x: (torch.from_numpy(x),)


def reference(model):
    net, torch_args = torch_module(model)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(x)).numpy()]

    return run
