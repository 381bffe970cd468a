"""VGG with BatchNorm for small images, the CIFAR variant of open_lth (Frankle et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Shape, init_kaiming, parse_plan, too_small

# Simonyan & Zisserman's configurations A (11), D (16) and E (19) in units of the first width,
# without the fifth max-pool: at 32x32 the last convolutions see 2x2 maps.
PLANS = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8],
}


class ConvBN(nn.Module):
    """3x3 'same' convolution (no bias: BatchNorm's shift replaces it), BatchNorm, ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """ConvBN stacks with 2x2 max-pools, global average pool, one linear output layer.
    Channels w/2w/4w/8w (64/128/256/512 in the paper), output Linear(8w, classes).

    Parameters: ``layers.{i}.conv``, ``layers.{i}.bn``, ``output``. Open_lth average-pools the
    2x2 map a 32x32 input leaves; the global average is the same there and works for any input
    of at least 16x16 (28x28 MNIST ends in 1x1 maps, 64x64 in 4x4).
    """

    def __init__(self, input_shape: Shape, num_classes: int, depth: int, width: int):
        super().__init__()
        channels, self.pool_after = parse_plan([s if s == "M" else s * width for s in PLANS[depth]])
        if min(input_shape[1:]) < 2 ** len(self.pool_after):
            raise too_small(input_shape, f"VGG-{depth} ({len(self.pool_after)} max-pools)")
        c = input_shape[0]
        self.layers = nn.ModuleList()
        for out in channels:
            self.layers.append(ConvBN(c, out))
            c = out
        self.output = nn.Linear(c, num_classes)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        return self.output(x.mean(dim=(2, 3)))

