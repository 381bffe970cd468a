"""Iterative magnitude pruning with rewinding, and its controls.

Level 0 trains the dense network from θ0 and captures θk. Each further level prunes the
previous ticket's trained weights, rewinds the survivors to θk, trains from step k and evaluates;
each control (same mask with fresh weights, a random mask, a shuffled mask) trains from step k
under the same budget. Every stage is seeded from (seed, level, condition) alone and saved on
completion, so a rerun resumes at the first unfinished stage and reproduces the same table.
"""

from __future__ import annotations

import hashlib
import math
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import progress, registry
from .artifact import Ticket
from .config import Experiment
from .domain import Domain, TrainResult
from .enforce import MaskEnforcer
from .masks import Mask
from .rewind import apply_mask, capture, random_mask, rewind, shuffled_mask
from .run_dir import RunDir
from .store import link_or_copy, read_tensors, write_tensors
from .scorers import ScoringContext, prune
from .selection import Group, assign_groups, select_prunable

CONTROL_MASKS: dict[str, Callable[[Mask, torch.Generator], Mask]] = {
    "random_mask": random_mask,
    "shuffled_mask": shuffled_mask,
}


def stage_seed(seed: int, *parts: Any) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def seed_everything(seed: int) -> None:
    _random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def early_stop(history: list[dict[str, float]], metric: str, higher_is_better: bool) -> int | None:
    """The step of the best validation record: lowest loss when recorded (Frankle & Carbin's
    early-stop iteration), else the best primary metric."""
    if not history:
        return None
    if all("loss" in h for h in history):
        return int(min(history, key=lambda h: h["loss"])["step"])
    sign = 1.0 if higher_is_better else -1.0
    return int(max(history, key=lambda h: sign * h.get(metric, -math.inf * sign))["step"])


@dataclass
class Plan:
    """What a run prunes and how, worked out (and checked) before any training."""

    shapes: dict[str, torch.Size]
    groups: list[Group]


class IMPRun:
    def __init__(self, experiment: Experiment, out: str | Path = "runs", *, show_progress: bool | None = None):
        self.experiment = experiment
        self.config = experiment.config
        self.domain: Domain = experiment.make_domain()
        self.run = RunDir(Path(out) / f"{self.config.name}-{experiment.hash()}")
        self.show_progress = show_progress
        self.scorer = registry.scorers.get(self.config.pruning.scorer)
        self.plan = self._plan()

    # ---- setup ---------------------------------------------------------------------------------
    def _plan(self) -> Plan:
        model = self.domain.build_model(seed=self.config.seed)
        prunable = self._prunable(model)
        rules = [(g.pattern, g.fraction) for g in self.config.pruning.groups]
        groups = assign_groups(list(prunable), rules, self.config.pruning.fraction)
        return Plan({n: p.shape for n, p in prunable.items()}, groups)

    def _prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        p = self.config.pruning
        return select_prunable(model, p.include, p.exclude, base=self.domain.prunable(model))

    # ---- the loop ------------------------------------------------------------------------------
    def execute(self) -> RunDir:
        cfg = self.config
        self.run.claim(self.experiment.resolved())
        stages = [(0, "dense")] + [(lvl, c) for lvl in range(1, cfg.pruning.levels + 1)
                                   for c in ["ticket", *cfg.controls]]
        todo = sum(not self.run.done(lvl, c) for lvl, c in stages)
        if todo < len(stages):
            progress.message(f"resuming {self.run.path}: {len(stages) - todo} of {len(stages)} stages done")
        with progress.bar(len(stages), "stages", leave=True, force=self.show_progress) as bar:
            bar.update(len(stages) - todo)
            if not self.run.done(0, "dense"):
                self._dense()
                bar.update(1)
            mask = Mask({n: torch.ones(s, dtype=torch.bool) for n, s in self.plan.shapes.items()})
            for level in range(1, cfg.pruning.levels + 1):
                mask = self._level_mask(level, mask)
                for condition in ["ticket", *cfg.controls]:
                    if not self.run.done(level, condition):
                        self._stage(level, condition, mask)
                        bar.update(1)
        return self.run

    def _level_mask(self, level: int, previous: Mask) -> Mask:
        if self.run.done(level, "ticket"):
            return Ticket.load(self.run.ticket_dir(level), with_rewind=False).mask
        source = (0, "dense") if level == 1 else (level - 1, "ticket")
        weights = read_tensors(self.run.trained_path(*source))
        ctx = ScoringContext(weights=weights, mask=previous,
                             generator=torch.Generator().manual_seed(stage_seed(self.config.seed, level, "score")),
                             domain=self.domain)
        mask = prune(self.scorer(ctx), previous, self.plan.groups, self.config.pruning.scope)
        if mask.empty_layers():
            progress.message(f"warning: level {level} prunes away every weight of {', '.join(mask.empty_layers())} "
                             "(layer collapse); consider scope: layer or a lower group fraction")
        return mask

    def _dense(self) -> None:
        cfg = self.config
        k = cfg.rewind.step
        seed_everything(stage_seed(cfg.seed, 0, "dense"))
        model = self.domain.build_model(seed=cfg.seed)
        init_path = self.run.save_state("init", capture(model))
        captured: dict[str, Any] = {}

        def on_step(step: int) -> None:
            if k > 0 and "step" not in captured and step >= k:
                self.run.save_state("rewind", capture(model))
                captured["step"] = step

        if k == 0:
            link_or_copy(init_path, self.run.state_path("rewind"))
        mask = Mask.ones_like({n: p.detach() for n, p in self._prunable(model).items()})
        self._train_and_finish(0, "dense", model, mask, start_step=0, extra_on_step=on_step)
        if k > 0 and "step" not in captured:
            raise RuntimeError(f"training ended before rewind step {k}; lower rewind.step")

    def _stage(self, level: int, condition: str, mask: Mask) -> None:
        cfg = self.config
        seed = stage_seed(cfg.seed, level, condition)
        seed_everything(seed)
        generator = torch.Generator().manual_seed(seed)
        theta_k = self.run.load_state("rewind")
        if condition == "reinit":
            model = self.domain.build_model(seed=seed)
            apply_mask(model, mask)
        else:
            model = self.domain.build_model(seed=cfg.seed)
            if condition in CONTROL_MASKS:
                mask = CONTROL_MASKS[condition](mask, generator)
            rewind(model, theta_k, mask)
        if condition == "ticket":
            meta = {
                "domain": self.domain.name,
                "model": self.domain.model_identity(model),
                "found": {"method": "imp", "scorer": cfg.pruning.scorer, "level": level,
                          "fraction": cfg.pruning.fraction, "scope": cfg.pruning.scope,
                          "groups": [{"pattern": g.name, "fraction": g.fraction} for g in self.plan.groups],
                          "rewind_step": cfg.rewind.step, "seed": cfg.seed},
                "where": self.domain.describe(),
                "config_hash": self.experiment.hash(),
            }
            Ticket(mask, meta=meta).save(self.run.ticket_dir(level), rewind_file=self.run.state_path("rewind"))
        self._train_and_finish(level, condition, model, mask, start_step=cfg.rewind.step)

    def _train_and_finish(self, level: int, condition: str, model: nn.Module, mask: Mask, *,
                          start_step: int, extra_on_step: Callable[[int], None] | None = None) -> None:
        cfg = self.config
        prunable = self._prunable(model)
        steps_bar = progress.bar(cfg.train.steps, f"level {level} {condition}", force=self.show_progress,
                                 position=1)
        steps_bar.update(start_step)

        def on_step(step: int) -> None:
            steps_bar.update(step - steps_bar.n)
            if extra_on_step is not None:
                extra_on_step(step)

        t0 = time.perf_counter()
        with MaskEnforcer(prunable, mask, mask_grads=cfg.pruning.mask_grads):
            result: TrainResult = self.domain.train(model, steps=cfg.train.steps, start_step=start_step,
                                                    seed=cfg.seed, on_step=on_step,
                                                    eval_every=cfg.train.eval_every)
        steps_bar.close()
        metrics = self.domain.evaluate(model, split="test")
        wall = time.perf_counter() - t0
        for name, m in mask.items():
            if bool((prunable[name].detach().cpu()[~m] != 0).any()):
                raise RuntimeError(f"pruned weights of {name} are non-zero after training; "
                                   "the domain's training loop bypassed the mask")
        if condition in ("dense", "ticket"):
            write_tensors(self.run.trained_path(level, condition), {n: p.detach() for n, p in prunable.items()})
        dom = self.domain
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
            "history": result.history,
        }
        self.run.finish(level, condition, row)
        progress.message(f"level {level:2d} {condition:<13} {row['weights_remaining_pct']:6.2f}% weights  "
                         f"{dom.primary_metric} {row['value']:.4f}  ({wall:.1f}s)")


def run_experiment(experiment: Experiment, out: str | Path = "runs", *, show_progress: bool | None = None) -> RunDir:
    return IMPRun(experiment, out, show_progress=show_progress).execute()
