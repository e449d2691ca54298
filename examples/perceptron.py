"""The perceptron (Rosenblatt, 1958) in its logistic form: one linear unit and a sigmoid.

A single-layer binary classifier, p(y = 1 | x) = sigmoid(w . x + b), the smooth stand-in for
the original threshold unit. Checked against `torch.nn.Linear` followed by `torch.sigmoid`.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="perceptron", family="F1 dense", factory="perceptron",
               reference="torch.nn.Linear + torch.sigmoid", sizes=({"B": 3}, {"B": 8}))


@dataclass(frozen=True)
class PerceptronConfig:
    features: int = 16


@archir.model(x=archir.f32["B", PerceptronConfig.features])
class Perceptron(nn.Module):
    def __init__(self, c: PerceptronConfig = PerceptronConfig()):
        self.config = c
        self.fc = nn.Linear(c.features, 1)

    def forward(self, x):
        return archir.sigmoid(self.fc(x))  # [B, 1]: the probability of the positive class


def perceptron() -> Perceptron:
    """A perceptron over 16 features with seeded random weights."""
    return Perceptron().init(seed=0)
