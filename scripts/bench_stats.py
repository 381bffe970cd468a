"""Statistics shared by the benchmark scripts."""

from __future__ import annotations

import random
import statistics


def median_interval(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap 95% interval of the median of ``values`` (e.g. per-round ratios)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(reps))
    return medians[int(0.025 * reps)], medians[int(0.975 * reps) - 1]
