"""Plain conv + fully connected networks of Frankle & Carbin (2019): LeNet-300-100, LeNet-5,
Conv-2, Conv-4 and Conv-6. No normalisation; Gaussian Glorot weights and zero biases."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Plan, Shape, init_glorot, parse_plan, too_small


class ConvFC(nn.Module):
    """Convolutions with ReLU (a 2x2 max-pool where the plan says "M"), flatten, fully connected
    hidden layers with ReLU, and a linear output layer.

    Parameters: ``convs.{i}``, ``hidden.{i}``, ``output``. The flattened size is computed from
    ``input_shape``, so one plan serves 1x28x28 and 3x32x32 inputs alike.
    """

    def __init__(self, input_shape: Shape, num_classes: int, plan: Plan = (), hidden: Sequence[int] = (),
                 kernel_size: int = 3, padding: int = 1):
        super().__init__()
        c, h, w = input_shape
        channels, self.pool_after = parse_plan(plan)
        self.convs = nn.ModuleList()
        for i, out in enumerate(channels):
            self.convs.append(nn.Conv2d(c, out, kernel_size, padding=padding))
            c, h, w = out, h + 2 * padding - kernel_size + 1, w + 2 * padding - kernel_size + 1
            if i in self.pool_after:
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise too_small(input_shape, f"the convolutions {list(plan)}")
        sizes = [c * h * w, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.output = nn.Linear(sizes[-1], num_classes)
        init_glorot(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.output(x)


class LeNet300100(ConvFC):
    """LeNet-300-100: fully connected 300-100-classes with ReLU (``hidden.0``, ``hidden.1``,
    ``output``). Takes images or already flat inputs of ``in_features`` values."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, hidden: Sequence[int] = (300, 100)):
        super().__init__((in_features, 1, 1), num_classes, hidden=hidden)


def lenet_300_100(input_shape: Shape, num_classes: int) -> nn.Module:
    c, h, w = input_shape
    return LeNet300100(c * h * w, num_classes)


def lenet_5(input_shape: Shape, num_classes: int) -> nn.Module:
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 (no padding), pool, conv 16@5x5, pool,
    fc 120, fc 84, output. 16x5x5 features at 32x32, 16x4x4 at 28x28."""
    return ConvFC(input_shape, num_classes, plan=(6, "M", 16, "M"), hidden=(120, 84), kernel_size=5, padding=0)


def conv_net(depth: int, input_shape: Shape, num_classes: int, width: int) -> nn.Module:
    """Conv-2/4/6 (Frankle & Carbin 2019, Figure 2): ``depth // 2`` stages of two 3x3 'same'
    convolutions and a 2x2 max-pool, with w, 2w and 4w channels (w = 64 in the paper), then
    fc 256, fc 256, output."""
    w = width
    plan = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, "M"][: 3 * (depth // 2)]
    return ConvFC(input_shape, num_classes, plan=plan, hidden=(256, 256))
