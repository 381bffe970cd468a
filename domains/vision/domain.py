"""The vision domain adapter: image classifiers trained with the accelerate loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domains.supervised import Batch, LoopConfig, SupervisedDomain
from tickets.errors import ConfigError, did_you_mean
from tickets.optim import OptimizerConfig

from . import data, models


@dataclass
class VisionConfig(LoopConfig):
    model: str = "lenet_300_100"  # a name in domains.vision.models.MODELS
    width: int | None = None  # channel width of the models that take one (None: the paper's)
    dataset: data.VisionDataConfig = field(default_factory=data.VisionDataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.model not in models.MODELS:
            raise ConfigError(f"model: unknown vision model {self.model!r}{did_you_mean(self.model, models.MODELS)} "
                              f"(known: {', '.join(models.MODELS)})")
        if self.width is not None and models.MODELS[self.model].default_width is None:
            raise ConfigError(f"width: {self.model} takes no width")
        if self.width is not None and self.width < 1:
            raise ConfigError(f"width: must be positive, got {self.width}")


class VisionDomain(SupervisedDomain):
    name = "vision"
    Config = VisionConfig

    @cached_property
    def data(self) -> data.ImageData:
        return data.load(self.config.dataset)

    def build_model(self, seed: int) -> nn.Module:
        shape, classes = self.data.input_shape, self.data.num_classes  # load data outside the seeded block
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return models.build(self.config.model, shape, classes, width=self.config.width)

    def loss(self, model: nn.Module, batch: Batch, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(self.data.to_inputs(batch["images"], train=train))
        return F.cross_entropy(logits, batch["labels"]), logits

    def forward_ones(self, model: nn.Module) -> torch.Tensor:
        p = next(model.parameters())
        return model(torch.ones((1, *self.data.input_shape), dtype=p.dtype, device=p.device))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input_shape": list(self.data.input_shape),
                "num_classes": self.data.num_classes}
