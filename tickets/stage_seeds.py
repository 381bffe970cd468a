"""The seeds of a run's stages: each stage's random draws depend only on the run's seed and the
stage's own name (level, condition, purpose), never on which stages ran before it or where."""

from __future__ import annotations

import hashlib
import random as _random
from typing import Any

import numpy as np
import torch


def stage_seed(seed: int, *parts: Any) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def seed_everything(seed: int) -> None:
    _random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
