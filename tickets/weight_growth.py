"""Finite but exploded weights: the one divergence sign every domain has (RL reports no loss;
PPO at lr 1e6 ends a rollout at max |w| 5.8e6 with finite returns). Sane runs measured end within
20 x max(1, start): digits LeNet with Adam lr 0.1 for 5000 steps 0.55 -> 17.5, SGD lr 1.0 -> 3.4;
ResNet-20, tiny BERT, PPO, DQN and SAC at their configs' rates within 5 x."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .divergence import finite
from .errors import DivergedError

WEIGHT_GROWTH = 1e3


def max_abs_weight(model: nn.Module) -> tuple[float, str | None]:
    """The largest |value| over the model's floating-point parameters, and whose it is."""
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point() and p.numel()]
    if not named:
        return 0.0, None
    device = named[0][1].device
    with torch.no_grad():  # one host read for the whole model
        peaks = torch.stack([p.detach().abs().max().float().to(device) for _, p in named]).cpu()
    i = int(torch.argmax(peaks))
    return float(peaks[i]), named[i][0]


def lr_of(domain: Any) -> float | None:
    """The domain's configured learning rate, where it has one (for the error's advice)."""
    lr = getattr(getattr(getattr(domain, "config", None), "optimizer", None), "lr", None)
    return lr if finite(lr) else None


def check_weight_growth(stage: str, model: nn.Module, start_max: float, steps: int, lr: float | None = None) -> None:
    """Raise :class:`DivergedError` when the weights grew over ``WEIGHT_GROWTH`` x max(1, start)."""
    end_max, name = max_abs_weight(model)
    scale = max(1.0, start_max)
    if end_max > WEIGHT_GROWTH * scale:
        advice = "lower the learning rate" + (f" (optimizer.lr is {lr:g})" if lr is not None else "")
        raise DivergedError(f"{stage}: training diverged: the weights grew from max |w| {start_max:.3g} to "
                            f"{end_max:.3g} ({name}) in {steps} steps, over {WEIGHT_GROWTH:g} x {scale:.3g} "
                            f"(the larger of 1 and the start's max |w|); {advice}; nothing of this stage is recorded")
