"""Optimizer and learning-rate schedule settings: checked without importing torch (a config
error is answered before the heavy imports; see tickets.cli)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from .errors import ConfigError

if TYPE_CHECKING:
    import torch


Implementation = Literal["default", "for_loop", "foreach", "fused"]
IMPLEMENTATIONS = get_args(Implementation)


@dataclass
class OptimizerConfig:
    """An optimizer by name with its hyperparameters."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    betas: list[float] | None = None  # Adam/AdamW; None keeps torch's default (0.9, 0.999)
    # how torch computes the step: "default" is torch's choice (for_loop on CPU, foreach on CUDA);
    # on the CPU for_loop and foreach give the same numbers bit for bit; "fused" kernels cut a
    # LeNet-300-100 stage by ~22% on the CPU but round differently, so they make another run
    implementation: Implementation = "default"

    def __post_init__(self):
        for key in ("lr", "momentum", "weight_decay"):  # also when built in code, not only from YAML
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError("momentum/weight_decay: must be non-negative")
        if self.name != "sgd" and (self.momentum or self.nesterov):
            raise ConfigError(f"momentum: only SGD takes momentum/nesterov, optimizer is {self.name!r}")
        if self.nesterov and not self.momentum:
            raise ConfigError("nesterov: needs momentum > 0")
        if self.implementation not in IMPLEMENTATIONS:
            raise ConfigError(f"implementation: {self.implementation!r} is not one of "
                              f"{', '.join(map(repr, IMPLEMENTATIONS))}")
        if self.betas is not None:
            if self.name == "sgd":
                raise ConfigError("betas: only Adam/AdamW take betas, optimizer is 'sgd'")
            if len(self.betas) != 2:
                raise ConfigError(f"betas: needs two numbers, got {self.betas}")
            for i, beta in enumerate(self.betas):
                if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
                    raise ConfigError(f"betas.{i}: must be in [0, 1), got {beta!r}")

    def torch_class(self) -> type[torch.optim.Optimizer]:
        import torch  # here, so that configs are checked without importing torch

        return {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.name]

    def kwargs(self) -> dict:
        kw: dict = {"lr": self.lr, "weight_decay": self.weight_decay}
        if self.implementation == "fused":
            kw["fused"] = True
        elif self.implementation != "default":
            kw["foreach"] = self.implementation == "foreach"
        if self.name == "sgd":
            kw.update(momentum=self.momentum, nesterov=self.nesterov)
        elif self.betas is not None:
            kw["betas"] = tuple(self.betas)
        return kw

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.implementation == "fused":
            import torch

            if tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 4):
                raise ConfigError(f"implementation: 'fused' needs torch 2.4 or newer (fused CPU kernels), "
                                  f"this is torch {torch.__version__}")
        return self.torch_class()(params, **self.kwargs())


@dataclass
class ScheduleConfig:
    """The learning rate at each step, as a factor of the optimizer's ``lr``: linear warmup over
    ``warmup_steps``, then constant, step decay (``gamma`` at each milestone), or cosine or linear
    decay (BERT fine-tuning's schedule) to ``final_factor`` at the end of the budget. A closed
    form of the step alone, so a level that starts at rewind step k trains with exactly the
    learning rate the dense run had at k."""

    kind: Literal["constant", "step", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # steps at which step decay multiplies by gamma
    gamma: float = 0.1
    final_factor: float = 0.0  # cosine and linear only

    def __post_init__(self):
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must be >= 0, got {self.warmup_steps}")
        if self.milestones != sorted(self.milestones) or any(m <= 0 for m in self.milestones):
            raise ConfigError(f"milestones: must be increasing positive steps, got {self.milestones}")
        if self.milestones and self.kind != "step":
            raise ConfigError(f"milestones: only for kind 'step', kind is {self.kind!r}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma: must be in (0, 1], got {self.gamma}")
        if not 0 <= self.final_factor <= 1:
            raise ConfigError(f"final_factor: must be in [0, 1], got {self.final_factor}")

    def factor(self, step: int, total_steps: int) -> float:
        """The factor for the optimizer step taken at 0-based ``step``."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "step":
            return warm * self.gamma ** sum(step >= m for m in self.milestones)
        t = min(max(step - self.warmup_steps, 0) / max(total_steps - self.warmup_steps, 1), 1.0)
        if self.kind == "cosine":
            return warm * (self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * t)))
        if self.kind == "linear":
            return warm * (self.final_factor + (1 - self.final_factor) * (1 - t))
        return warm
