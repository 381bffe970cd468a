"""The vision domain adapter: image classifiers trained with the accelerate loop."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domains.supervised import Batch, SupervisedDomain

from . import data, models
from .config import VisionConfig


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
