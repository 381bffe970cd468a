"""Optimizer settings shared by every domain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from .errors import ConfigError


@dataclass
class OptimizerConfig:
    """An optimizer by name with its hyperparameters."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    betas: list[float] | None = None  # Adam/AdamW; None keeps torch's default (0.9, 0.999)

    def __post_init__(self):
        if self.lr <= 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError("momentum/weight_decay: must be non-negative")
        if self.name != "sgd" and (self.momentum or self.nesterov):
            raise ConfigError(f"momentum: only SGD takes momentum/nesterov, optimizer is {self.name!r}")
        if self.nesterov and not self.momentum:
            raise ConfigError("nesterov: needs momentum > 0")
        if self.betas is not None and len(self.betas) != 2:
            raise ConfigError(f"betas: needs two numbers, got {self.betas}")

    def torch_class(self) -> type[torch.optim.Optimizer]:
        return {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.name]

    def kwargs(self) -> dict:
        kw: dict = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.name == "sgd":
            kw.update(momentum=self.momentum, nesterov=self.nesterov)
        elif self.betas is not None:
            kw["betas"] = tuple(self.betas)
        return kw

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return self.torch_class()(params, **self.kwargs())
