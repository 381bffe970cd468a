"""Residual networks of basic blocks: the CIFAR ResNet-20/32/56 of He et al. (2016, Section 4.2)
and the common CIFAR ResNet-18."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Shape, init_kaiming


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class Projection(nn.Module):
    """The shortcut where a block changes shape: 1x1 convolution (with the block's stride) and
    BatchNorm (He et al.'s option B, as in open_lth)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        reshape = stride != 1 or c_in != c_out
        self.shortcut = Projection(c_in, c_out, stride) if reshape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (3x3 conv, stride 1, BN, ReLU; no max-pool), stages of basic blocks with widths
    ``width * 2**i`` (every stage after the first halves the resolution in its first block),
    global average pool, linear output layer.

    Parameters: ``conv1``, ``bn1``, ``stages.{s}.{b}.{conv1,bn1,conv2,bn2}``,
    ``stages.{s}.0.shortcut.{conv,bn}`` (projection blocks only), ``output``.
    """

    def __init__(self, input_shape: Shape, num_classes: int, blocks_per_stage: Sequence[int], width: int):
        super().__init__()
        self.conv1 = conv3x3(input_shape[0], width)
        self.bn1 = nn.BatchNorm2d(width)
        c = width
        self.stages = nn.ModuleList()
        for s, n in enumerate(blocks_per_stage):
            out = width * 2**s
            blocks = [BasicBlock(c if b == 0 else out, out, stride=2 if s > 0 and b == 0 else 1) for b in range(n)]
            self.stages.append(nn.Sequential(*blocks))
            c = out
        self.output = nn.Linear(c, num_classes)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.output(x.mean(dim=(2, 3)))


def cifar_resnet(depth: int, input_shape: Shape, num_classes: int, width: int) -> nn.Module:
    """ResNet-``depth`` for CIFAR: 3 stages of (depth - 2) / 6 blocks, widths w/2w/4w (16/32/64
    in the paper)."""
    if (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2, not {depth}")
    n = (depth - 2) // 6
    return ResNet(input_shape, num_classes, (n, n, n), width)


def resnet_18(input_shape: Shape, num_classes: int, width: int) -> nn.Module:
    """ResNet-18 for small images: 4 stages of 2 blocks, widths w/2w/4w/8w (64/128/256/512).

    The ImageNet stem (7x7 stride-2 conv and a max-pool, /4) is replaced by a 3x3 stride-1 conv
    at every input size: 32x32 inputs end in 4x4 maps and 64x64 (Tiny ImageNet) inputs in 8x8
    maps, which the global average pool reduces alike (the Tiny ImageNet ResNet-18 of, e.g.,
    Tanaka et al. 2020). A 64x64 image costs 4x a 32x32 one; the parameters are the same.
    """
    return ResNet(input_shape, num_classes, (2, 2, 2, 2), width)
