"""Pruning at initialisation as an experiment: for each target compression, a scorer (SNIP,
GraSP, SynFlow, magnitude, random) draws a mask at θ0 in one or more rounds, the masked network
trains from θ0, and the controls train beside it under the same budget."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import registry
from .at_init import density_of, prune_at_init
from .errors import ConfigError
from .masks import Mask
from .nm_select import pattern_of
from .rewind import load_state
from .stage_graph import DENSE, Node
from .runner import Runner, stage_seed
from .scorers import ScoringContext

def scoring_batches_for(domain, scorer: str, pruning, seed: int, model: nn.Module) -> tuple[list | None, str]:
    """The batches ``scorer`` scores on, and what they are: a scorer that needs class-balanced
    batches (GraSP) takes ``pruning.samples_per_class`` examples of every class in each of
    ``pruning.scoring_batches``, as Wang et al. 2020, or, where the domain has no classes
    (:meth:`Domain.balanced_scoring_batches` gives None: regression, language modelling, RL), its
    ordinary scoring batches; every other scorer takes the ordinary ones."""
    if registry.scorer_needs(scorer).data == "class_balanced":
        balanced = domain.balanced_scoring_batches(pruning.samples_per_class, pruning.scoring_batches, seed)
        if balanced is not None:
            return balanced, "class_balanced"
    return domain.scoring_batches(pruning.scoring_batches, seed, model=model), "ordinary"


def scoring_context(domain, model: nn.Module, prunable, mask: Mask, *, scorer: str, batches, seed: int,
                    forward_ones) -> ScoringContext:
    return ScoringContext(
        weights={n: p.detach() for n, p in prunable.items()}, mask=mask,
        generator=torch.Generator().manual_seed(seed), model=model, domain=domain, prunable=prunable,
        batches=batches, loss=partial(domain.scoring_loss, temperature=registry.scorer_needs(scorer).temperature),
        forward_ones=forward_ones, forward_ones_unavailable=domain.forward_ones_unavailable)


def display_name(scorer: str) -> str:
    return {"synflow": "SynFlow", "snip": "SNIP", "grasp": "GraSP"}.get(scorer, repr(scorer))


class AtInitRun(Runner):
    method = "at_init"

    def check(self, template: nn.Module) -> None:
        p = self.config.pruning
        self.scorer = registry.scorers.get(p.scorer)
        self.pattern, self.input_axes = pattern_of(p, self.shapes, self.domain, template)
        needs = registry.scorer_needs(p.scorer)
        self.iterations = p.iterations or needs.iterations
        if needs.forward_ones and self.forward_ones is None:
            raise ConfigError(f"pruning.scorer: {display_name(p.scorer)} needs an all-ones input, and domain "
                              f"{self.domain.name!r} cannot give one: {self.domain.forward_ones_unavailable}")
        self.batch_kind = None
        if needs.data == "class_balanced":  # refuse a samples_per_class the split cannot give, before training
            self.batch_kind = ("class_balanced" if self.domain.balanced_scoring_batches(p.samples_per_class, 1, 0)
                               is not None else "ordinary")

    def levels(self) -> list[int]:
        return list(range(1, len(self.config.pruning.compressions) + 1))

    def mask_needs(self, level: int) -> list[Node]:
        return [DENSE]  # every level scores θ0, which the dense stage writes first

    def level_mask(self, level: int, previous: Mask) -> Mask:
        cfg = self.config
        model = self.domain.build_model(seed=cfg.seed)
        load_state(model, self.run.load_state("init"))
        prunable = self.prunable(model)
        seed = stage_seed(cfg.seed, level, "score")
        batches, _ = scoring_batches_for(self.domain, cfg.pruning.scorer, cfg.pruning, seed, model)
        ones = Mask({n: torch.ones(s, dtype=torch.bool) for n, s in self.shapes.items()})

        def make_ctx(mask: Mask) -> ScoringContext:
            return scoring_context(self.domain, model, prunable, mask, scorer=cfg.pruning.scorer, batches=batches,
                                   seed=seed, forward_ones=self.forward_ones)

        density = density_of(cfg.pruning.compressions[level - 1])
        return prune_at_init(self.scorer, make_ctx, ones, list(prunable), density, iterations=self.iterations,
                             pattern=self.pattern, input_axes=self.input_axes)

    def load_start_weights(self, model: nn.Module, level: int) -> None:
        load_state(model, self.run.load_state("init"))

    def ticket_rewind_file(self, level: int, model: nn.Module) -> Path:
        return self.run.state_path("init")

    def ticket_meta(self, level: int) -> dict[str, Any]:
        p = self.config.pruning
        return {"method": "at_init", "scorer": p.scorer, "level": level, "compression": p.compressions[level - 1],
                "iterations": self.iterations, "scoring_batches": p.scoring_batches, "seed": self.config.seed,
                **({"pattern": str(self.pattern)} if self.pattern else {}),
                **({"samples_per_class": p.samples_per_class, "batches": self.batch_kind}
                   if self.batch_kind is not None else {})}
