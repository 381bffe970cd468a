"""What a scorer needs, declared beside its registration so a config is checked against it before
torch is imported: which weights it scores (a trained ticket's, as IMP does, or the
initialisation's, as the pruning-at-init methods do), whether it needs the model, data batches
or an all-ones input, and its published defaults (scoring rounds, logit temperature).

A plugin scorer declares its needs as a ``needs`` attribute of the callable (or passes them to
``registry.scorers.register``); one that declares nothing is taken to look at ``ctx.weights``
alone, which fits every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

WEIGHTS = ("trained", "init")


@dataclass(frozen=True)
class ScorerNeeds:
    weights: tuple[str, ...] = WEIGHTS  # the weights it can score: "trained" (IMP), "init" (at_init)
    model: bool = False  # ctx.model / ctx.prunable: the network itself, at the scored weights
    data: Literal["none", "batches", "class_balanced"] = "none"  # ctx.batches and ctx.loss
    forward_ones: bool = False  # ctx.forward_ones: the network's output on an all-ones input
    iterations: int = 1  # default scoring rounds (pruning.iterations overrides)
    temperature: float = 1.0  # logits divided by this in ctx.loss

    def __post_init__(self):
        if not self.weights or any(w not in WEIGHTS for w in self.weights):
            raise ValueError(f"ScorerNeeds.weights: each of {WEIGHTS}, got {self.weights}")
        if self.data not in ("none", "batches", "class_balanced"):
            raise ValueError(f"ScorerNeeds.data: 'none', 'batches' or 'class_balanced', got {self.data!r}")
        if self.iterations < 1 or self.temperature <= 0:
            raise ValueError(f"ScorerNeeds: iterations >= 1 and temperature > 0, got {self.iterations}, "
                             f"{self.temperature}")

    @property
    def uses_model(self) -> bool:
        return self.model or self.data != "none" or self.forward_ones


def check_scorer_fits(name: str, needs: ScorerNeeds, method: str) -> None:
    """Refuse a scorer the method cannot serve: IMP scores the previous ticket's trained weights,
    of which it keeps the prunable tensors only (not a whole trained model to run data through)."""
    if method == "imp":
        if "trained" not in needs.weights:
            raise ConfigError(f"scorer: {name!r} scores the initialisation, not trained weights; use it with "
                              "pruning.method: at_init")
        if needs.uses_model:
            raise ConfigError(f"scorer: {name!r} needs the network itself ({describe(needs)}); IMP scores the "
                              "trained tickets' saved weights alone; use pruning.method: at_init")
    elif method == "at_init" and "init" not in needs.weights:
        raise ConfigError(f"scorer: {name!r} scores trained weights; use it with pruning.method: imp")


def describe(needs: ScorerNeeds) -> str:
    parts = ["the model"] if needs.model else []
    if needs.data != "none":
        parts.append(f"data ({needs.data})")
    if needs.forward_ones:
        parts.append("an all-ones input")
    return ", ".join(parts) or "the weights alone"
