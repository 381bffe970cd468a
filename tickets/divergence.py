"""Signs that a training run diverged, read from the model and its metrics after training: NaN or
infinite weights and buffers, and NaN or infinite test or validation figures."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nonfinite_tensors(model: nn.Module, skip_buffers: frozenset[str] = frozenset()) -> list[str]:
    """The model's floating-point parameters and buffers (BatchNorm statistics) holding a NaN or
    an infinity; buffers in ``skip_buffers`` (non-finite by design, e.g. a -inf attention mask,
    found so before training) are left out."""
    tensors = [*model.named_parameters(), *((n, b) for n, b in model.named_buffers() if n not in skip_buffers)]
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all())]


def nonfinite_buffers(model: nn.Module) -> frozenset[str]:
    return frozenset(n for n, b in model.named_buffers() if b.is_floating_point() and not bool(torch.isfinite(b).all()))


def names(bad: list[str]) -> str:
    return bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")


def nonfinite_metrics(metrics: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """Descriptions of the test metrics and validation records that are NaN or infinite."""
    bad = [f"the test {k} is {v}" for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    for record in history:
        bad += [f"the validation {k} at step {record.get('step')} is {v}" for k, v in record.items()
                if isinstance(v, float) and not math.isfinite(v)]
    return bad
