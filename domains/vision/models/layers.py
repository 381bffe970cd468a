"""Pieces shared by the model families: initialisers and the parsing of layer plans."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

Shape = tuple[int, int, int]  # (channels, height, width)
Plan = Sequence[int | str]  # conv output channels, "M" for a 2x2 max-pool after the previous conv


def parse_plan(plan: Plan) -> tuple[list[int], frozenset[int]]:
    """``[64, 64, "M", 128]`` -> the convs' channels ``[64, 64, 128]`` and the indices of the convs
    followed by a 2x2 max-pool (``{1}``)."""
    channels: list[int] = []
    pool_after: set[int] = set()
    for spec in plan:
        if spec == "M":
            if not channels:
                raise ValueError(f"plan {list(plan)} pools before any convolution")
            pool_after.add(len(channels) - 1)
        else:
            channels.append(int(spec))
    return channels, frozenset(pool_after)


def too_small(input_shape: Shape, what: str) -> ValueError:
    return ValueError(f"input_shape {tuple(input_shape)} is too small for {what}")


def init_glorot(model: nn.Module) -> None:
    """Gaussian Glorot (Xavier normal) weights and zero biases for every Linear and Conv2d."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_kaiming(model: nn.Module) -> None:
    """Kaiming (He) normal weights, std sqrt(2 / fan_in), for every Linear and Conv2d (as
    open_lth's ``kaiming_normal``), zero biases; BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
