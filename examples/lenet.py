"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998): the convolutional network for handwritten
digits.

Two 5x5 convolutions with tanh, each followed by 2x2 average pooling (the paper's subsampling
layers), then three fully connected layers 400 -> 120 -> 84 -> 10 giving class logits. The
28x28 input is zero-padded by 2, as the paper's 32x32 input is. Checked against torch.nn
built-ins with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="lenet", family="F2 vision", factory="lenet",
               reference="torch.nn Conv2d, Tanh, AvgPool2d, Flatten, Linear",
               sizes=({"B": 2}, {"B": 5}))


@dataclass(frozen=True)
class LeNetConfig:
    channels: tuple[int, int] = (6, 16)
    hidden: tuple[int, int] = (120, 84)
    classes: int = 10


@archir.model(x=archir.f32["B", 1, 28, 28])
class LeNet(nn.Module):
    def __init__(self, c: LeNetConfig = LeNetConfig()):
        self.config = c
        c1, c2 = c.channels
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)  # 28x28 -> 28x28, pooled to 14x14
        self.conv2 = nn.Conv2d(c1, c2, 5)  # 14x14 -> 10x10, pooled to 5x5
        self.fc1 = nn.Linear(c2 * 5 * 5, c.hidden[0])
        self.fc2 = nn.Linear(c.hidden[0], c.hidden[1])
        self.fc3 = nn.Linear(c.hidden[1], c.classes)

    def forward(self, x):
        x = archir.avg_pool2d(archir.tanh(self.conv1(x)), kernel=[2, 2])
        x = archir.avg_pool2d(archir.tanh(self.conv2(x)), kernel=[2, 2])
        x = x.flatten(1)
        x = archir.tanh(self.fc1(x))
        x = archir.tanh(self.fc2(x))
        return self.fc3(x)


def lenet() -> LeNet:
    """LeNet-5 with seeded random weights."""
    return LeNet().init(seed=0)
