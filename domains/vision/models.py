"""Vision models (plain torch)."""

from __future__ import annotations

import math

import torch
from torch import nn


class LeNet300100(nn.Module):
    """LeNet-300-100 (Frankle & Carbin 2019): fully connected 300-100-classes, ReLU, with
    Gaussian Glorot initialisation and zero biases."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, hidden: tuple[int, ...] = (300, 100)):
        super().__init__()
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = nn.Linear(sizes[-1], num_classes)
        for layer in [*self.hidden, self.output]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.output(x)


MODELS = {"lenet_300_100": LeNet300100}


def build(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MODELS[name](in_features=math.prod(input_shape), num_classes=num_classes)
