"""A multi-layer perceptron classifier (Rumelhart, Hinton and Williams, 1986).

Fully connected hidden layers with ReLU, then a linear head over the classes; returns the class
probabilities (softmax) and their logarithms (log-softmax). Checked against a
`torch.nn.Sequential` of `Linear` and `ReLU` with the same weights.
"""

from dataclasses import dataclass
from itertools import pairwise

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="mlp_classifier", family="F1 dense", factory="mlp_classifier",
               reference="torch.nn.Sequential(Linear, ReLU, ..., Linear) + softmax",
               sizes=({"B": 2}, {"B": 9}))


@dataclass(frozen=True)
class MLPConfig:
    features: int = 20
    hidden: tuple[int, ...] = (32, 24)
    classes: int = 5


@archir.model(x=archir.f32["B", MLPConfig.features])
class MLPClassifier(nn.Module):
    def __init__(self, c: MLPConfig = MLPConfig()):
        self.config = c
        widths = (c.features, *c.hidden)
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in pairwise(widths)])
        self.head = nn.Linear(widths[-1], c.classes)

    def forward(self, x):
        for layer in self.hidden:
            x = archir.relu(layer(x))
        logits = self.head(x)
        return archir.softmax(logits), archir.log_softmax(logits)  # probabilities, log-probs


def mlp_classifier() -> MLPClassifier:
    """A 20 -> 32 -> 24 -> 5 classifier with seeded random weights."""
    return MLPClassifier().init(seed=0)
