"""Early-Bird tickets as an experiment (You et al. 2020): for each target compression, train the
dense network from θ0 while drawing masks every few steps; the ticket is the first mask that the
last ``window`` masks agree on. It then trains from θk (``rewind``) or on from the weights at the
draw, next to the controls. The step of the draw is the time-to-ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed, progress
from .at_init import density_of
from .early_bird import (EarlyBirdMonitor, TicketDrawn, batchnorm_weights, bn_channel_mask, channel_to_weight_mask,
                         slimming_penalty)
from .errors import ConfigError, DivergedError
from .masks import Mask
from .rewind import capture, load_state
from .runner import Runner, seed_everything, stage_seed
from .store import read_json, write_json


class EarlyBirdRun(Runner):
    method = "early_bird"

    def check(self, template: nn.Module) -> None:
        eb = self.config.pruning.early_bird
        if (eb.mode == "bn_channels" or eb.slimming) and not batchnorm_weights(template):
            key = "mode" if eb.mode == "bn_channels" else "slimming"
            raise ConfigError(f"pruning.early_bird.{key}: {type(template).__name__} has no BatchNorm layer "
                              "to rank channels by or to penalise")
        if eb.mode == "bn_channels":
            channel_to_weight_mask(template, bn_channel_mask(template, 0.5))  # fails now if BN follows no conv
        if eb.every > self.config.train.steps:
            raise ConfigError(f"pruning.early_bird.every: {eb.every} is beyond train.steps ({self.config.train.steps})")

    def levels(self) -> list[int]:
        return list(range(1, len(self.config.pruning.compressions) + 1))

    def _draw_path(self, level: int) -> Path:
        return self.run.level_dir(level) / "early_bird.json"

    def level_mask(self, level: int, previous: Mask) -> Mask:
        cfg, eb = self.config, self.config.pruning.early_bird
        seed_everything(stage_seed(cfg.seed, level, "search"))
        model = self.domain.build_model(seed=cfg.seed)
        load_state(model, self.run.load_state("init"))
        prunable = self.prunable(model)
        monitor = EarlyBirdMonitor(model, prunable, density_of(cfg.pruning.compressions[level - 1]), eb.every,
                                   mode=eb.mode, window=eb.window, epsilon=eb.epsilon)
        penalty = slimming_penalty(model, eb.slimming) if eb.slimming else None
        try:
            try:
                self.domain.train(model, steps=cfg.train.steps, seed=cfg.seed, on_step=monitor)
            except DivergedError as exc:
                raise DivergedError(f"level {level} early-bird search: {exc}; "
                                    "nothing of this level is recorded") from None
            bad = [n for n, p in prunable.items() if not bool(torch.isfinite(p.detach()).all())]
            if bad:
                raise DivergedError(f"level {level} early-bird search: training diverged: {', '.join(bad)} holds NaN "
                                    "or infinite values; lower the learning rate; nothing of this level is recorded")
            mask, step = monitor.current_mask(), None  # never drawn: the mask at the end of the budget
            if distributed.is_main():
                start = ("" if eb.rewind else "; with early_bird.rewind false there is no draw to train on from, so "
                         f"the ticket and its controls train from θk (rewind.step {cfg.rewind.step}) like a rewound "
                         "ticket, over the full budget (recorded as found.start: rewind)")
                progress.message(f"warning: level {level}: no Early-Bird ticket was drawn within train.steps; "
                                 f"using the mask of the fully trained network{start}")
        except TicketDrawn as drawn:
            mask, step = drawn.mask, drawn.step
        finally:
            if penalty is not None:
                penalty.remove()
        if eb.mode == "bn_channels":
            mask = channel_to_weight_mask(model, mask)
            mask = Mask({n: mask[n] if n in mask else prunable[n].new_ones(prunable[n].shape, dtype=bool).cpu()
                         for n in prunable})
        if distributed.is_main():
            self.run.save_state(f"level_{level:02d}/drawn", capture(model))
            write_json(self._draw_path(level), {**monitor.summary(), "drawn_step": step})
        distributed.barrier()
        return mask

    def _from_draw(self, level: int) -> bool:
        """Whether the level trains on from the weights at the draw: ``early_bird.rewind`` false and
        a ticket drawn. Without a draw there is nothing to go on from, and the level trains from θk
        over the full budget, as with ``rewind`` (an explicit fallback, recorded in ticket.json)."""
        if self.config.pruning.early_bird.rewind:
            return False
        return read_json(self._draw_path(level)).get("drawn_step") is not None

    def start_step(self, level: int) -> int:
        """θk's step when rewinding (or when nothing was drawn); else the draw's step (training goes
        on from there, every condition with the same remaining budget)."""
        if not self._from_draw(level):
            return self.config.rewind.step
        return read_json(self._draw_path(level))["drawn_step"]

    def load_start_weights(self, model: nn.Module, level: int) -> None:
        load_state(model, self.run.load_state(f"level_{level:02d}/drawn" if self._from_draw(level) else "rewind"))

    def ticket_meta(self, level: int) -> dict[str, Any]:
        p = self.config.pruning
        draw = read_json(self._draw_path(level)) if self._draw_path(level).is_file() else {}
        return {"method": "early_bird", "level": level, "compression": p.compressions[level - 1],
                "drawn_step": draw.get("drawn_step"), "search": draw, "rewind": p.early_bird.rewind,
                "start": "draw" if self._from_draw(level) else "rewind", "start_step": self.start_step(level),
                "seed": self.config.seed}
