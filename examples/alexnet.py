"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), the ImageNet winner that started the deep
learning era in vision, at a quarter of its width and on 96x96 images.

Five convolutions with ReLU (the first 11x11 with stride 4), 3x3 stride-2 max pooling after the
first, second and fifth, then three fully connected layers with dropout (an identity at
inference). As in torchvision, local response normalisation is left out. Checked against a
torchvision-layout `features` / `classifier` pair of torch.nn Sequentials.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="alexnet", family="F2 vision", factory="alexnet",
               reference="torch.nn Sequential of Conv2d, ReLU, MaxPool2d, Dropout, Linear",
               sizes=({"B": 1}, {"B": 3}))


@dataclass(frozen=True)
class AlexNetConfig:
    image: int = 96
    channels: tuple[int, ...] = (16, 48, 96, 64, 64)  # the paper's 64, 192, 384, 256, 256 / 4
    hidden: int = 128
    classes: int = 10
    dropout: float = 0.5


def max_pool(x):
    return archir.max_pool2d(x, kernel=[3, 3], stride=[2, 2])  # overlapping pooling, as the paper


@archir.model(x=archir.f32["B", 3, AlexNetConfig.image, AlexNetConfig.image])
class AlexNet(nn.Module):
    def __init__(self, c: AlexNetConfig = AlexNetConfig()):
        self.config = c
        c1, c2, c3, c4, c5 = c.channels
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4, padding=2)  # 96 -> 23, pooled to 11
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)  # 11, pooled to 5
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)  # 5, pooled to 2
        self.dropout = nn.Dropout(c.dropout)
        self.fc1 = nn.Linear(c5 * 2 * 2, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.hidden)
        self.fc3 = nn.Linear(c.hidden, c.classes)

    def forward(self, x):
        x = max_pool(archir.relu(self.conv1(x)))
        x = max_pool(archir.relu(self.conv2(x)))
        x = archir.relu(self.conv3(x))
        x = archir.relu(self.conv4(x))
        x = max_pool(archir.relu(self.conv5(x)))
        x = self.dropout(x.flatten(1))
        x = self.dropout(archir.relu(self.fc1(x)))
        x = archir.relu(self.fc2(x))
        return self.fc3(x)


def alexnet() -> AlexNet:
    """A quarter-width AlexNet for 96x96 images with seeded random weights."""
    return AlexNet().init(seed=0)
