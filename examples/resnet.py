"""ResNet (He, Zhang, Ren and Sun, 2015, "Deep residual learning for image recognition"), small.

A stem (7x7 stride-2 convolution, batch norm, ReLU, 3x3 stride-2 max pool), stages of basic
blocks (two 3x3 convolutions with batch norm, added to an identity shortcut, or to a strided 1x1
convolution + batch norm where the shape changes, then ReLU), global average pooling and a
linear head. Batch norm runs in inference mode. The image size is symbolic: one graph serves any
H x W. Names follow torchvision (`layer2.0.downsample.0`); checked against torch.nn built-ins.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="resnet", family="F2 vision", factory="resnet",
               reference="torch.nn Conv2d, BatchNorm2d (eval), ReLU, MaxPool2d, Linear",
               sizes=({"B": 2, "H": 32, "W": 32}, {"B": 1, "H": 37, "W": 29}))


@dataclass(frozen=True)
class ResNetConfig:
    stem: int = 8
    widths: tuple[int, ...] = (8, 16, 32)  # one stage per width; each after the first halves H, W
    depths: tuple[int, ...] = (2, 1, 1)  # basic blocks per stage
    classes: int = 10


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def forward(self, x):
        y = archir.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return archir.relu(y + shortcut)


@archir.model(x=archir.f32["B", 3, "H", "W"])
class ResNet(nn.Module):
    def __init__(self, c: ResNetConfig = ResNetConfig()):
        self.config = c
        self.conv1 = nn.Conv2d(3, c.stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c.stem)
        self.stages = []
        channels = c.stem
        for i, (width, depth) in enumerate(zip(c.widths, c.depths, strict=True)):
            first_stride = 1 if i == 0 else 2
            stage = nn.Sequential(*[BasicBlock(channels if j == 0 else width, width,
                                               first_stride if j == 0 else 1)
                                    for j in range(depth)])
            setattr(self, f"layer{i + 1}", stage)  # torchvision's names: layer1, layer2, ...
            self.stages.append(stage)
            channels = width
        self.fc = nn.Linear(channels, c.classes)

    def forward(self, x):
        x = archir.relu(self.bn1(self.conv1(x)))
        x = archir.max_pool2d(x, kernel=[3, 3], stride=[2, 2], padding=[1, 1])
        for stage in self.stages:
            x = stage(x)
        return self.fc(x.mean(axis=[2, 3]))  # global average pool over the symbolic H, W


def resnet() -> ResNet:
    """A three-stage ResNet with seeded random weights and batch-norm statistics."""
    return ResNet().init(seed=0)
