"""The vision domain adapter: image classifiers trained with the accelerate loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from domains.supervised import LoopConfig, SupervisedDomain
from tickets.errors import ConfigError
from tickets.optim import OptimizerConfig

from . import data, models


@dataclass
class VisionConfig(LoopConfig):
    model: Literal["lenet_300_100"] = "lenet_300_100"
    dataset: Literal["mnist_subset", "digits"] = "mnist_subset"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    val_fraction: float = 0.1  # held out of training for the early-stop iteration
    test_fraction: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        v, t = self.val_fraction, self.test_fraction
        if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
            raise ConfigError("val_fraction/test_fraction: each in (0, 1), together below 1")


def _loss(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(batch["inputs"])
    return F.cross_entropy(logits, batch["labels"]), logits


class VisionDomain(SupervisedDomain):
    name = "vision"
    Config = VisionConfig
    loss = staticmethod(_loss)

    @cached_property
    def data(self) -> data.ImageData:
        return data.load(self.config.dataset, val_fraction=self.config.val_fraction,
                         test_fraction=self.config.test_fraction)

    def build_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return models.build(self.config.model, self.data.input_shape, self.data.num_classes)
