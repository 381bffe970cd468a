"""The settings of the supervised training loop (batch sizes, precision, schedule), shared by the
vision and NLP configs; checked without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tickets.errors import ConfigError
from tickets.optim_config import ScheduleConfig


@dataclass
class LoopConfig:
    """How the accelerate loop runs (shared by supervised domains)."""

    batch_size: int = 64  # per optimizer step, over all processes and accumulated micro-batches
    eval_batch_size: int = 512
    grad_accumulation: int = 1  # micro-batches per optimizer step
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    cpu: bool = False  # force the CPU even where a GPU is present
    max_grad_norm: float | None = None  # clip the gradients' global norm (BERT fine-tuning: 1.0)

    def __post_init__(self):
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("batch_size: must be positive")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm: must be positive, got {self.max_grad_norm}")
        if self.grad_accumulation < 1 or self.batch_size % self.grad_accumulation:
            raise ConfigError(f"grad_accumulation: must divide batch_size ({self.batch_size}), "
                              f"got {self.grad_accumulation}")
