"""Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020).

Each level prunes ``fraction`` of the weights the previous ticket kept (or, with ``fraction_of:
original``, of the original weights: Chen et al. 2020's 10% per level), scored on that ticket's
trained weights, and rewinds the survivors to θk (the weights after step ``rewind.step``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import registry
from .errors import ConfigError
from .masks import Mask
from .nm_select import pattern_of
from .rewind import load_state
from .runner import Runner, stage_seed
from .stage_rows import early_stop
from .scorers import ScoringContext, prune
from .store import read_tensors

__all__ = ["IMPRun", "early_stop"]


class IMPRun(Runner):
    method = "imp"

    def check(self, template: nn.Module) -> None:
        self.scorer = registry.scorers.get(self.config.pruning.scorer)  # an IMP scorer: see PruningConfig
        self.pattern, self.input_axes = pattern_of(self.config.pruning, self.shapes, self.domain, template)
        self.units = None
        if self.config.pruning.structure == "units":
            from .structured import units_of

            if self.config.pruning.scope == "global" and len({g.fraction for g in self.groups}) > 1:
                raise ConfigError("pruning.groups: per-group rates need scope: layer for structured tickets")
            self.units = units_of(self.domain, template, self.prunable(template),
                                  stage_seed(self.config.seed, "structure"))
            self.also_mask(template, self.units.coupled)  # the biases, norms and consumer columns units reach

    def levels(self) -> list[int]:
        return list(range(1, self.config.pruning.levels + 1))

    def start_step(self, level: int) -> int:
        return self.config.rewind.step

    def level_mask(self, level: int, previous: Mask) -> Mask:
        source = (0, "dense") if level == 1 else (level - 1, "ticket")
        ctx = ScoringContext(weights=read_tensors(self.run.trained_path(*source)), mask=previous,
                             generator=torch.Generator().manual_seed(stage_seed(self.config.seed, level, "score")),
                             domain=self.domain)
        p = self.config.pruning
        if self.units is not None:
            from .structured import prune_units

            fractions = {n: g.fraction for g in self.groups for n in g.members}
            return prune_units(self.units, ctx.weights, previous, fractions, p.scope, p.unit_score, self.shapes)
        return prune(self.scorer(ctx), previous, self.groups, p.scope, of=p.fraction_of, pattern=self.pattern,
                     input_axes=self.input_axes)

    def load_start_weights(self, model: nn.Module, level: int) -> None:
        load_state(model, self.run.load_state("rewind"))

    def ticket_rewind_file(self, level: int, model: nn.Module) -> Path:
        return self.run.state_path("rewind")

    def ticket_meta(self, level: int) -> dict[str, Any]:
        p = self.config.pruning
        return {"method": "imp", "scorer": p.scorer, "level": level, "fraction": p.fraction,
                "fraction_of": p.fraction_of, "scope": p.scope,
                "groups": [{"pattern": g.name, "fraction": g.fraction} for g in self.groups],
                "rewind_step": self.config.rewind.step, "seed": self.config.seed,
                **({"pattern": str(self.pattern)} if self.pattern else {}),
                **({"structure": "units", "unit_score": p.unit_score} if self.units is not None else {})}
