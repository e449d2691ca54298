"""A dense autoencoder (Hinton and Salakhutdinov, 2006, "Reducing the dimensionality of data
with neural networks"): an encoder squeezes the input to a small code, a mirrored decoder
rebuilds it.

64 -> 32 -> 8 -> 32 -> 64 with ReLU hidden layers, a tanh code and a sigmoid output (inputs
scaled to [0, 1]); returns (reconstruction, code). Checked against torch.nn Sequentials.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="autoencoder", family="F1 dense", factory="autoencoder",
               reference="torch.nn.Sequential encoder and decoder (Linear, ReLU, Tanh, Sigmoid)",
               sizes=({"B": 4}, {"B": 11}))


@dataclass(frozen=True)
class AutoencoderConfig:
    features: int = 64
    hidden: int = 32
    code: int = 8


class Encoder(nn.Module):
    def __init__(self, c: AutoencoderConfig):
        self.fc1 = nn.Linear(c.features, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.code)

    def forward(self, x):
        return archir.tanh(self.fc2(archir.relu(self.fc1(x))))


class Decoder(nn.Module):
    def __init__(self, c: AutoencoderConfig):
        self.fc1 = nn.Linear(c.code, c.hidden)
        self.fc2 = nn.Linear(c.hidden, c.features)

    def forward(self, code):
        return archir.sigmoid(self.fc2(archir.relu(self.fc1(code))))


@archir.model(x=archir.f32["B", AutoencoderConfig.features])
class Autoencoder(nn.Module):
    def __init__(self, c: AutoencoderConfig = AutoencoderConfig()):
        self.config = c
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)

    def forward(self, x):
        code = self.encoder(x)
        return self.decoder(code), code


def autoencoder() -> Autoencoder:
    """A 64 -> 8 -> 64 autoencoder with seeded random weights."""
    return Autoencoder().init(seed=0)
