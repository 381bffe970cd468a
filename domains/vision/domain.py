"""The vision domain adapter: image classifiers trained with the accelerate loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from domains.supervised import LoopConfig, evaluate_loop, train_loop
from tickets.domain import Domain, StepCallback, TrainResult
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
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ConfigError("val_fraction/test_fraction: each in (0, 1), together below 1")


def _loss(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(batch["inputs"])
    return F.cross_entropy(logits, batch["labels"]), logits


class VisionDomain(Domain):
    name = "vision"
    Config = VisionConfig
    primary_metric = "accuracy"

    @cached_property
    def data(self) -> data.ImageData:
        return data.load(self.config.dataset, val_fraction=self.config.val_fraction,
                         test_fraction=self.config.test_fraction)

    def build_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return models.build(self.config.model, self.data.input_shape, self.data.num_classes)

    def train(self, model: nn.Module, *, steps: int, start_step: int = 0, seed: int = 0,
              on_step: StepCallback | None = None, eval_every: int = 0) -> TrainResult:
        return train_loop(model, self.data.train, _loss, optimizer=self.config.optimizer, loop=self.config,
                          steps=steps, start_step=start_step, seed=seed, on_step=on_step,
                          eval_every=eval_every, validate=lambda m: self.evaluate(m, "validation"))

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        table = {"train": self.data.train, "validation": self.data.validation, "test": self.data.test}[split]
        return evaluate_loop(model, table, _loss, loop=self.config)
