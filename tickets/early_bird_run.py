"""Early-Bird tickets as an experiment (You et al. 2020): the dense network trains from θ0 while
masks are drawn every few steps at each target compression; a compression's ticket is the first
mask that its last ``window`` masks agree on. It then trains from θk (``rewind``) or on from the
weights at its draw, next to the controls. The step of the draw is the time-to-ticket.

One dense run serves every compression. A domain's training draws each step's batches and random
numbers from (seed, step) alone, so the run from θ0 is the same whatever the compression, and one
detector per compression on a single run draws the tickets that a run per compression, stopped at
its own draw, would. The run stops once every detector has drawn, or at ``train.steps``.

A level's search leaves, written at its draw (at the end of the budget if nothing was drawn),
``early_bird.json`` last:
  level_XX/drawn.safetensors            the full state at the draw
  level_XX/early_bird_mask.safetensors  the level's mask (bool, one tensor per prunable weight)
  level_XX/early_bird.json              the search record (observations, drawn_step)
A resumed run takes the mask of a level whose ticket is not done from these, checked (the mask
must be the one the saved weights give); a level without all three is searched again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed, progress, stage_graph, store, validate
from .artifact import FORMAT
from .at_init import density_of
from .divergence import nonfinite_buffers, nonfinite_tensors
from .early_bird import (AllTicketsDrawn, EarlyBirdMonitor, EarlyBirdSearch, batchnorm_weights, bn_channel_mask,
                         channel_to_weight_mask, slimming_penalty)
from .errors import ArtifactError, ConfigError, DivergedError
from .masks import Mask
from .rewind import capture, load_state
from .runner import Runner, seed_everything, stage_seed
from .stage_graph import DENSE, Node
from .store import read_json, write_json
from .ticket_files import MASK_DTYPES

MASK_FILE = "early_bird_mask.safetensors"


class _DrawDiverged(Exception):
    """A ticket drawn from non-finite weights (raised inside training, so the loop's own
    divergence check, which names the step of a non-finite loss, gets to speak first)."""


class _SharedSearchDiverged(Exception):
    """A search of several levels diverged: which draws came before the divergence is unknown."""


class EarlyBirdRun(Runner):
    method = "early_bird"

    def __init__(self, *args: Any, **kwargs: Any):
        self._found: dict[int, tuple[Mask, int | None]] = {}  # drawn by this process, not yet used
        self._alone = False  # after a shared search diverged: each level searched by a run of its own
        super().__init__(*args, **kwargs)

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

    def mask_needs(self, level: int) -> list[Node]:
        """The first level's search draws every level's ticket in one pass (θ0 from the dense
        stage); a later level reads what it wrote, or searches alone where its files are missing."""
        first = self.levels()[0]
        return [DENSE] if level == first else [stage_graph.mask(first)]

    def _draw_path(self, level: int) -> Path:
        return self.run.level_dir(level) / "early_bird.json"

    def _search_files(self, level: int) -> list[Path]:
        """The level's search output, in the order it is written (early_bird.json last)."""
        return [self.run.state_path(f"level_{level:02d}/drawn"), self.run.level_dir(level) / MASK_FILE,
                self._draw_path(level)]

    def level_mask(self, level: int, previous: Mask) -> Mask:
        found = self._found.pop(level, None) or self._saved(level)
        if found is None:
            self._search(level)
            found = self._found.pop(level)
        mask, step = found
        if step is None and distributed.is_main():
            cfg = self.config
            start = ("" if cfg.pruning.early_bird.rewind else "; with early_bird.rewind false there is no draw to "
                     f"train on from, so the ticket and its controls train from θk (rewind.step {cfg.rewind.step}) "
                     "like a rewound ticket, over the full budget (recorded as found.start: rewind)")
            progress.message(f"warning: level {level}: no Early-Bird ticket was drawn within train.steps; "
                             f"using the mask of the fully trained network{start}")
        return mask

    # ---- the search ----------------------------------------------------------------------------
    def _search(self, level: int) -> None:
        """Search ``level`` and, on the same run, every later level still to be found."""
        levels = [level] if self._alone else [
            lvl for lvl in self.levels() if lvl == level or (
                lvl > level and not self.run.done(lvl, "ticket")
                and not all(os.path.lexists(p) for p in self._search_files(lvl)))]
        distributed.barrier()  # every process has read the files before the main one discards or writes them
        try:
            self._search_levels(levels)
        except _SharedSearchDiverged:
            # A run of one level stops at its draw, before a later divergence: redo each level so.
            self._alone = True
            if distributed.is_main():
                progress.message(f"warning: the shared Early-Bird search of levels {', '.join(map(str, levels))} "
                                 "diverged; searching each level with a run of its own")
            self._search_levels([level])

    def _monitor(self, model: nn.Module, prunable: dict[str, nn.Parameter], level: int) -> EarlyBirdMonitor:
        cfg, eb = self.config, self.config.pruning.early_bird
        return EarlyBirdMonitor(model, prunable, density_of(cfg.pruning.compressions[level - 1]), eb.every,
                                mode=eb.mode, window=eb.window, epsilon=eb.epsilon, stop=False)

    def _search_levels(self, levels: list[int]) -> None:
        cfg, eb = self.config, self.config.pruning.early_bird
        shared = len(levels) > 1
        self._discard(levels)  # a stale early_bird.json must not complete files written anew
        # the first level's search seed, as in a search of its own; the run does not depend on it
        # (training reseeds its generators by step), so the later levels share it
        seed_everything(stage_seed(cfg.seed, levels[0], "search"))
        self._search_start = time.perf_counter()
        model = self.domain.build_model(seed=cfg.seed)
        load_state(model, self.run.load_state("init"))
        prunable = self.prunable(model)
        by_design = nonfinite_buffers(model)
        monitors = {lvl: self._monitor(model, prunable, lvl) for lvl in levels}

        def on_draw(lvl: int, monitor: EarlyBirdMonitor) -> None:
            bad = _nonfinite(prunable)
            if bad:
                raise _DrawDiverged(f"training diverged: {', '.join(bad)} holds NaN or infinite values at step "
                                    f"{monitor.drawn_step}, where the ticket was drawn; lower the learning rate")
            self._record(lvl, model, prunable, monitor, monitor.drawn_mask, monitor.drawn_step)

        penalty = slimming_penalty(model, eb.slimming) if eb.slimming else None
        try:
            try:
                self.domain.train(model, steps=cfg.train.steps, seed=cfg.seed,
                                  on_step=EarlyBirdSearch(monitors, on_draw))
            except AllTicketsDrawn:
                pass
            else:  # the budget ran out before some draw: those levels take the trained network's mask
                bad = _nonfinite(prunable)
                if bad:
                    raise DivergedError(f"training diverged: {', '.join(bad)} holds NaN or infinite values; "
                                        "lower the learning rate")
                for lvl, monitor in monitors.items():
                    if monitor.drawn_step is None:
                        self._record(lvl, model, prunable, monitor, monitor.current_mask(), None)
        except (DivergedError, _DrawDiverged) as exc:
            self._discard(levels)
            if shared:
                raise _SharedSearchDiverged from None
            raise DivergedError(f"level {levels[0]} early-bird search: {exc}; "
                                "nothing of this level is recorded") from None
        except Exception:  # a library choking on NaN (SB3) is a divergence too
            if shared and nonfinite_tensors(model, by_design):
                self._discard(levels)
                raise _SharedSearchDiverged from None
            raise
        finally:
            if penalty is not None:
                penalty.remove()
        distributed.barrier()

    def _record(self, level: int, model: nn.Module, prunable: dict[str, nn.Parameter], monitor: EarlyBirdMonitor,
                mask: Mask, step: int | None) -> None:
        """Keep a level's draw, and (main process) write its files, early_bird.json last."""
        mask = self._weight_mask(model, prunable, mask)
        self._found[level] = (mask, step)
        if distributed.is_main():
            drawn, mask_path, draw_path = self._search_files(level)
            store.write_tensors(drawn, capture(model))
            store.write_tensors(mask_path, mask.to_dict(), metadata={"format": FORMAT})
            seconds = time.perf_counter() - self._search_start  # what a search of this level alone takes
            write_json(draw_path, {**monitor.summary(), "drawn_step": step, "search_seconds": seconds})

    def _weight_mask(self, model: nn.Module, prunable: dict[str, nn.Parameter], mask: Mask) -> Mask:
        """A channel ticket as a mask over the prunable weights (pruned channels' conv weights)."""
        if self.config.pruning.early_bird.mode != "bn_channels":
            return mask
        mask = channel_to_weight_mask(model, mask)
        return Mask({n: mask[n] if n in mask else prunable[n].new_ones(prunable[n].shape, dtype=bool).cpu()
                     for n in prunable})

    def _discard(self, levels: list[int]) -> None:
        self._found = {lvl: f for lvl, f in self._found.items() if lvl not in levels}
        if distributed.is_main():
            for level in levels:
                for path in reversed(self._search_files(level)):
                    Path(path).unlink(missing_ok=True)

    # ---- resuming ------------------------------------------------------------------------------
    def _saved(self, level: int) -> tuple[Mask, int | None] | None:
        """The level's search as an earlier run of this config left it, checked; None where a
        file of it is missing (it is searched again). A damaged one is an ArtifactError."""
        drawn_path, mask_path, draw_path = files = self._search_files(level)
        if not all(os.path.lexists(p) for p in files):
            return None
        draw = read_json(draw_path)
        step = draw.get("drawn_step", "missing") if isinstance(draw, dict) else "missing"
        if not (step is None or validate.is_count(step)):
            raise ArtifactError(f"{draw_path}: 'drawn_step' must be a step or null, got {step!r:.80}", draw_path)
        mask = self._read_mask(mask_path)
        model = self.domain.build_model(seed=self.config.seed)
        try:
            load_state(model, validate.read_tensors(drawn_path))  # read whole: NaN weights are refused there
        except KeyError as exc:
            raise ArtifactError(f"{drawn_path}: does not fit the model ({exc.args[0]})", drawn_path) from None
        prunable = self.prunable(model)
        # a mask is a function of the weights it is drawn from: the two files must agree
        expected = self._weight_mask(model, prunable, self._monitor(model, prunable, level).current_mask())
        if mask != expected:
            raise ArtifactError(f"{mask_path}: is not the level's mask of the weights in {drawn_path.name} "
                                f"(compression {self.config.pruning.compressions[level - 1]})", mask_path)
        return mask, step

    def _read_mask(self, path: Path) -> Mask:
        header = validate.safetensors_header(path, MASK_FILE)
        shapes = {n: tuple(s) for n, s in self.shapes.items()}
        if {n: tuple(s) for n, (_, s) in header.items()} != shapes:
            raise ArtifactError(f"{path}: its names and shapes are not those of the model's prunable weights", path)
        for name, (dtype, _) in header.items():
            if dtype not in MASK_DTYPES:
                raise ArtifactError(f"{path}: mask {name} has dtype {dtype}; masks are BOOL or U8 (0/1)", path)
        tensors = validate.read_tensors(path, MASK_FILE)
        try:
            return Mask({n: tensors[n] for n in shapes})  # in the prunable order, as the search gives it
        except ValueError as exc:
            raise ArtifactError(f"{path}: {exc}", path) from None

    # ---- where a level starts --------------------------------------------------------------------
    def found_seconds(self, level: int, measured: float) -> float:
        """From the search's start to this level's draw: the shared pass ran it for every level."""
        if not self._draw_path(level).is_file():
            return measured
        seconds = read_json(self._draw_path(level)).get("search_seconds")
        return seconds if validate.is_number(seconds) else measured

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


def _nonfinite(params: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, p in params.items() if not bool(torch.isfinite(p.detach()).all())]
