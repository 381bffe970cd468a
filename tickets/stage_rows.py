"""A trained stage's result row (what results.csv and the reports read), and its early-stop step."""

from __future__ import annotations

from typing import Any

from . import progress
from .divergence import finite
from .domain import Domain, TrainResult
from .masks import Mask


def early_stop(history: list[dict[str, float]], metric: str, higher_is_better: bool) -> int | None:
    """The step of the best validation record: lowest loss when recorded (Frankle & Carbin's
    early-stop iteration), else the best primary metric."""
    if not history:
        return None
    key = "loss" if all("loss" in h for h in history) else metric
    usable = [h for h in history if finite(h.get(key))]  # a NaN would make min/max meaningless
    if not usable:
        return None
    if key == "loss":
        return int(min(usable, key=lambda h: h["loss"])["step"])
    sign = 1.0 if higher_is_better else -1.0
    return int(max(usable, key=lambda h: sign * h[metric])["step"])


def result_row(dom: Domain, level: int, condition: str, mask: Mask, metrics: dict[str, float], result: TrainResult,
               wall: float) -> dict[str, Any]:
    """The row of a stage (the runner adds its collapse diagnosis and mask time), announced on stderr."""
    row = {
        "level": level,
        "condition": condition,
        "weights_remaining_pct": 100.0 * mask.density(),
        "layer_density": mask.layer_density(),
        "empty_layers": mask.empty_layers(),
        "metric": dom.primary_metric,
        "value": metrics[dom.primary_metric],
        "loss": metrics.get("loss"),
        "early_stop_step": early_stop(result.history, dom.primary_metric, dom.higher_is_better),
        "steps": result.steps,
        "wall_seconds": wall,
        "metrics": metrics,
        "summary": dom.summarize(result.history),
        "history": result.history,
    }
    progress.message(f"level {level:2d} {condition:<13} {row['weights_remaining_pct']:6.2f}% weights  "
                     f"{dom.primary_metric} {row['value']:.4f}  ({wall:.1f}s)")
    return row
