"""The stages of a ticket experiment, their files, and their resumption.

Level 0 trains the dense network from θ0 (capturing θk). Each further level has a mask (from a
strategy: IMP prunes the previous ticket, transfer takes a ticket found elsewhere) and trains the
ticket and each control under the same budget:
  ticket         the mask on the start weights (θk for IMP; the source ticket's for transfer)
  reinit         the same mask on freshly initialised weights
  random_mask    a random mask with the same per-layer sparsity, on the start weights
  shuffled_mask  the mask permuted within each output unit, on the start weights
  (and any other registered control: tickets.controls)
With ``rewind.optimizer`` the ticket and the mask controls also start from the optimizer state
captured at θk; the reinit control, on new weights, always starts with a fresh optimizer.
Every stage is seeded from (seed, level, condition) alone and saved on completion, so a rerun
resumes at the first unfinished stage and reproduces the same table. With several processes
every process trains, masks are the main process's, and only the main process writes.
"""

from __future__ import annotations

import abc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import analyses, distributed, progress, registry, resume, stage_graph
from .artifact import Ticket
from .collapse import diagnose
from .controls import check_control_mask
from .config import Experiment
from .domain import Domain, TrainResult, forward_ones_of
from .errors import ArtifactError, ConfigError
from .divergence import names, nonfinite_buffers, nonfinite_metrics, nonfinite_tensors
from .errors import DivergedError
from .enforce import MaskEnforcer
from .masks import Mask
from .rewind import capture
from .run_dir import RunDir
from .selection import Group, assign_groups, select_prunable
from .stage_graph import DENSE, Node
from .stage_rows import result_row
from .stage_seeds import seed_everything, stage_seed  # noqa: F401 (re-exported: tickets.runner.stage_seed)
from .store import link_or_copy, write_tensors
from .weight_growth import check_weight_growth, lr_of, max_abs_weight

class Runner(abc.ABC):
    """Runs the stages; subclasses say which levels there are, each level's mask, and the
    weights a level starts from."""

    method: str

    def __init__(self, experiment: Experiment, out: str | Path = "runs", *, show_progress: bool | None = None):
        distributed.init_from_env()
        self.experiment = experiment
        self.config = experiment.config
        self.domain: Domain = experiment.make_domain()
        self.run = RunDir(experiment.run_dir(out))
        self.show_progress = show_progress if distributed.is_main() else False
        template = self.domain.build_model(seed=self.config.seed)
        self.domain.check_config()  # settings that need the data or the environment, before any work
        self.also_masked: list[str] = []
        self.shapes = {n: p.shape for n, p in self.prunable(template).items()}
        rules = [(g.pattern, g.fraction) for g in self.config.pruning.groups]
        self.groups: list[Group] = assign_groups(list(self.shapes), rules, self.config.pruning.fraction)
        self.forward_ones = forward_ones_of(self.domain, template)
        if self.config.rewind.optimizer and not self.domain.supports_optimizer_state:
            raise ConfigError(f"rewind.optimizer: domain {self.domain.name!r} cannot capture or restore its "
                              "optimizer's state; leave rewind.optimizer false")
        multiple = self.domain.step_multiple()
        if self.config.rewind.step % multiple:
            raise ConfigError(f"rewind.step: {self.config.rewind.step} is not a step the {self.domain.name} loop "
                              f"reports (it reports every {multiple} steps)")
        every = self.config.train.eval_every
        if every % multiple:  # 0: only at the end
            lower, upper = every // multiple * multiple, (every // multiple + 1) * multiple
            use = " or ".join(str(s) for s in (lower, upper) if s > 0)
            raise ConfigError(f"train.eval_every: {every} is not a step the {self.domain.name} loop reports (its "
                              f"weights change every {multiple} steps, so evaluations between two would see the same "
                              f"weights and misplace the early-stop step); use {use}, or 0 to evaluate only at the end")
        self.domain.check_budget(self.config.train.steps, self.config.rewind.step)
        self.mask_seconds: dict[int, float] = {}
        self._masks: dict[int, Mask] = {}
        # (name, canonical options JSON) of analyses to run after every stage (a study's analyses:)
        self.analyses: list[tuple[str, str]] = []
        self.units = None  # a structured run's unit groups (IMP with pruning.structure: units)
        self.check(template)

    # ---- what a strategy provides -----------------------------------------------------------
    def check(self, template: nn.Module) -> None:
        """Validate everything the strategy needs before any training (raise on bad input)."""

    @abc.abstractmethod
    def levels(self) -> list[int]:
        """The levels after the dense level 0."""

    @abc.abstractmethod
    def level_mask(self, level: int, previous: Mask) -> Mask:
        """The mask of ``level`` (``previous``: the last level's mask, all ones before level 1);
        not called for a level whose ticket is already done (its saved mask is used)."""

    @abc.abstractmethod
    def load_start_weights(self, model: nn.Module, level: int) -> None:
        """Put the level's start weights into ``model`` (before masking)."""

    @abc.abstractmethod
    def ticket_meta(self, level: int) -> dict[str, Any]:
        """How the level's ticket was found, for ticket.json."""

    def start_step(self, level: int) -> int:
        return 0

    def ticket_rewind_file(self, level: int, model: nn.Module) -> Path | None:
        """A file holding the ticket's rewind weights to link into the ticket, or None to save
        the model's start weights."""
        return None

    def start_optimizer_state(self, level: int) -> dict[str, torch.Tensor] | None:
        """The optimizer state a level's ticket and mask controls start with: the one captured
        at θk with ``rewind.optimizer`` (the config allows it only where levels start at θk),
        else None (a fresh optimizer)."""
        return self.run.load_state("rewind_optimizer") if self.config.rewind.optimizer else None

    # ---- shared machinery ---------------------------------------------------------------------
    def found_seconds(self, level: int, measured: float) -> float:
        """The time it took to find ``level``'s mask (``measured``: its ``level_mask`` call); a
        method that finds several levels in one pass says what each one cost."""
        return measured

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The config's prunable weights, and the parameters a method also masks (:meth:`also_mask`)."""
        p = self.config.pruning
        base = select_prunable(model, p.include, p.exclude, base=self.domain.prunable(model))
        params = dict(model.named_parameters())
        return {**base, **{n: params[n] for n in self.also_masked if n not in base}}

    def also_mask(self, template: nn.Module, names) -> None:
        """Mask these parameters of the model too (a structured ticket's biases and norms), from
        :meth:`check`, before any work."""
        params = dict(template.named_parameters())
        self.also_masked = sorted(set(self.also_masked) | {n for n in names if n in params and n not in self.shapes})
        self.shapes = {**self.shapes, **{n: params[n].shape for n in self.also_masked if n not in self.shapes}}

    # ---- the stage graph (see tickets.stage_graph) --------------------------------------------
    def graph(self) -> dict[Node, tuple[Node, ...]]:
        """Every node of the run with the nodes it reads, in the serial schedule's order."""
        graph: dict[Node, tuple[Node, ...]] = {DENSE: ()}
        for level in self.levels():
            graph[stage_graph.mask(level)] = tuple(self.mask_needs(level))
            for condition in ("ticket", *self.config.controls):
                graph[stage_graph.train(level, condition)] = (stage_graph.mask(level),)
        everything = tuple(graph)
        for name, options in self.analyses:
            graph[stage_graph.analysis(name, options)] = everything
        return graph

    def mask_needs(self, level: int) -> list[Node]:
        """What ``level``'s mask reads: IMP prunes the previous level's trained ticket."""
        levels = self.levels()
        i = levels.index(level)
        return [DENSE] if i == 0 else [stage_graph.train(levels[i - 1], "ticket")]

    def node_done(self, node: Node) -> bool:
        if node.kind == "mask":  # the level's ticket directory appears complete or not at all
            return os.path.lexists(self.run.ticket_dir(node.level))
        if node.kind == "analysis":
            return analyses.is_done(node.condition, self.run.path, json.loads(node.options))
        return self.run.done(node.level, node.condition)

    def run_node(self, node: Node) -> None:
        """Run one node whose inputs are done (every process, with data-parallel training)."""
        if node.kind == "dense":
            self._dense()
        elif node.kind == "mask":
            self._mask(node.level)
        elif node.kind == "analysis":
            if distributed.is_main():
                analyses.run_analysis(node.condition, self.run.path, json.loads(node.options))
            distributed.barrier()
        else:
            self._stage(node.level, node.condition, self._mask_of(node.level))

    def stages(self) -> list[tuple[int, str]]:
        """The (level, condition) stages that leave a result row."""
        return [(n.level, n.condition) for n in self.graph() if n.is_stage]

    def prepare(self) -> int:
        """Claim the run directory (or check it holds this config), check every finished stage
        and clean up after a killed run; the number of stages still to train."""
        stages = self.stages()
        self.run.stages = stages  # only this run's stages are read back (not a stray copied file)
        try:
            self.run.check_claim(self.experiment.resolved())
        except ArtifactError as exc:
            raise resume.with_hint(self.run, exc) from None
        if distributed.is_main():
            self.run.claim(self.experiment.resolved())
            resume.prepare(self, stages)  # every finished stage checked, leftovers removed, θk recovered
        distributed.barrier()
        todo = sum(not self.run.done(lvl, c) for lvl, c in stages)
        if todo < len(stages) and distributed.is_main():
            progress.message(f"resuming {self.run.path}: {len(stages) - todo} of {len(stages)} stages done")
        return todo

    def write_table(self) -> None:
        if distributed.is_main():
            try:
                self.run.write_table()  # also after a crash between a stage's row and the table
            except OSError as exc:
                progress.message(f"tickets: warning: could not write {self.run.path / 'results.csv'}: "
                                 f"{exc.strerror or exc}")

    def execute(self) -> RunDir:
        """Run every node that is not done, in the serial schedule."""
        from .executors import run_claimed

        todo = self.prepare()
        total = len(self.run.stages)
        try:
            with progress.bar(total, "stages", leave=True, force=self.show_progress) as bar:
                bar.update(total - todo)
                for node in stage_graph.serial_order(self.graph()):
                    if not self.node_done(node):
                        run_claimed(self, node)  # another process on this directory: wait for it
                        bar.update(node.is_stage)
        except ArtifactError as exc:  # a file of this run: say which stage and how to redo it
            raise resume.with_hint(self.run, exc) from None
        self.write_table()
        return self.run

    def _mask(self, level: int) -> None:
        """Find the level's mask and save its ticket (the mask with the ticket's start weights)."""
        needs = self.graph()[stage_graph.mask(level)]
        reads = [n.level for n in needs if n.kind == "train" and n.condition == "ticket"]
        previous = self._mask_of(reads[0]) if reads else Mask(
            {n: torch.ones(s, dtype=torch.bool) for n, s in self.shapes.items()})
        t0 = time.perf_counter()
        mask = distributed.broadcast_mask(self.level_mask(level, previous))
        self.mask_seconds[level] = self.found_seconds(level, time.perf_counter() - t0)
        if distributed.is_main():
            if mask.empty_layers():
                progress.message(f"warning: level {level} leaves no weight in {', '.join(mask.empty_layers())} "
                                 "(layer collapse)")
            model = self.domain.build_model(seed=self.config.seed)
            self.load_start_weights(model, level)
            rewind_file = self.ticket_rewind_file(level, model)
            found = {**self.ticket_meta(level), "mask_seconds": self.mask_seconds[level]}
            meta = {"domain": self.domain.name, "model": self.domain.model_identity(model),
                    "found": found, "where": self.domain.describe(), "config_hash": self.experiment.hash()}
            Ticket(mask, None if rewind_file else capture(model), meta).save(self.run.ticket_dir(level),
                                                                           rewind_file=rewind_file)
        self._masks[level] = mask
        distributed.barrier()

    def _mask_of(self, level: int) -> Mask:
        """The level's mask: found in this process, or read (checked) from its saved ticket."""
        if level not in self._masks:
            ticket = resume.load_ticket(self.run, level, self.shapes)  # checked, and fit to the model
            self._masks[level] = ticket.mask
            self.mask_seconds[level] = ticket.meta.get("found", {}).get("mask_seconds")
        return self._masks[level]

    def _dense(self) -> None:
        cfg = self.config
        k = cfg.rewind.step
        seed_everything(stage_seed(cfg.seed, 0, "dense"))
        model = self.domain.build_model(seed=cfg.seed)
        main = distributed.is_main()
        if main:
            init_path = self.run.save_state("init", capture(model))
            if k == 0:
                link_or_copy(init_path, self.run.state_path("rewind"))
        captured: dict[str, int] = {}

        def on_step(step: int) -> None:
            if k > 0 and "step" not in captured and step >= k:
                if main:
                    self.run.save_state("rewind", capture(model))
                    if cfg.rewind.optimizer:
                        self.run.save_state("rewind_optimizer", self._live_optimizer_state(model))
                captured["step"] = step

        mask = Mask.ones_like({n: p.detach() for n, p in self.prunable(model).items()})
        self._train_and_finish(0, "dense", model, mask, start_step=0, extra_on_step=on_step)
        if k > 0 and captured.get("step") != k:
            raise RuntimeError(f"rewind.step {k}: the domain reported step {captured.get('step')} first, not {k}; "
                               f"choose a step the training loop reports (a multiple of {self.domain.step_multiple()})")

    def _live_optimizer_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        state = self.domain.optimizer_state(model)
        if not state:
            raise RuntimeError(f"rewind.optimizer: domain {self.domain.name!r} gave no optimizer state at the "
                               "rewind step, though it declares supports_optimizer_state")
        return state

    def _stage(self, level: int, condition: str, mask: Mask) -> None:
        cfg = self.config
        seed = stage_seed(cfg.seed, level, condition)
        seed_everything(seed)
        control = None if condition == "ticket" else registry.control(condition)
        if control is not None and control.start == "fresh":
            model = self._reinit_model(level, seed)
        else:
            model = self.domain.build_model(seed=cfg.seed)
            self.load_start_weights(model, level)
        if control is not None:
            generator = torch.Generator().manual_seed(seed)
            mask = (control.unit_mask(mask, generator, self.units, self.shapes) if control.needs_units
                    else control.mask(mask, generator, self.domain.output_axes(model)))
            check_control_mask(condition, mask, self.shapes)
        opt_state = None if control is not None and control.fresh_optimizer else self.start_optimizer_state(level)
        self._train_and_finish(level, condition, model, mask, start_step=self.start_step(level),
                               optimizer_state=opt_state)

    def _reinit_model(self, level: int, seed: int) -> nn.Module:
        """The ticket's architecture with fresh weights drawn from the stage seed: all of them, or
        (``Domain.reinit_scope`` "prunable") only the prunable ones, the rest at the start weights."""
        fresh = self.domain.build_fresh_model(seed=seed)
        if self.domain.reinit_scope() == "all":
            return fresh
        model = self.domain.build_model(seed=self.config.seed)
        self.load_start_weights(model, level)
        drawn = dict(fresh.named_parameters())
        with torch.no_grad():
            for name, p in self.prunable(model).items():
                p.copy_(drawn[name])
        return model

    def _train_and_finish(self, level: int, condition: str, model: nn.Module, mask: Mask, *,
                          start_step: int, extra_on_step: Callable[[int], None] | None = None,
                          optimizer_state: dict[str, torch.Tensor] | None = None) -> None:
        cfg = self.config
        prunable = self.prunable(model)
        steps_bar = progress.bar(cfg.train.steps, f"level {level} {condition}", force=self.show_progress,
                                 position=1)
        steps_bar.update(start_step)

        def on_step(step: int) -> None:
            steps_bar.update(step - steps_bar.n)
            if extra_on_step is not None:
                extra_on_step(step)

        ties = self.domain.tied_parameters(model)
        params = dict(model.named_parameters())
        enforced = Mask({**mask, **{f: mask[leader] for f, leader in ties.items()}})
        t0 = time.perf_counter()
        stage = f"level {level} {condition}"
        by_design = nonfinite_buffers(model)
        start_max, _ = max_abs_weight(model)
        try:
            with MaskEnforcer({**prunable, **{f: params[f] for f in ties}}, enforced,  # zeroes them now, too
                              mask_grads=cfg.pruning.mask_grads):
                # passed only when set, so domains without optimizer-state support keep their signature
                seeded = {} if optimizer_state is None else {"optimizer_state": optimizer_state}
                result: TrainResult = self.domain.train(model, steps=cfg.train.steps, start_step=start_step,
                                                        seed=cfg.seed, on_step=on_step,
                                                        eval_every=cfg.train.eval_every, **seeded)
        except DivergedError as exc:
            raise DivergedError(f"{stage}: {exc}; nothing of this stage is recorded") from None
        except Exception as exc:  # a library choking on NaN (SB3: "Expected parameter logits ...")
            bad = nonfinite_tensors(model, by_design)
            if not bad:
                raise
            first = str(exc).strip().splitlines()[0].rstrip(":") if str(exc).strip() else ""
            raise DivergedError(f"{stage}: training diverged: {names(bad)} holds NaN or infinite values, and "
                                f"training stopped ({type(exc).__name__}: {first[:200]}); lower the learning "
                                "rate; nothing of this stage is recorded") from exc
        finally:
            steps_bar.close()
        # A diverged network is no result: refuse it before its row (and the next level's mask) exist.
        bad = nonfinite_tensors(model, by_design)
        if bad:
            raise DivergedError(f"{stage}: training diverged: {names(bad)} holds NaN or infinite values after "
                                f"{result.steps} steps; lower the learning rate; nothing of this stage is recorded")
        check_weight_growth(stage, model, start_max, result.steps, lr_of(self.domain))
        metrics = self.domain.evaluate(model, split="test")
        bad = nonfinite_metrics(metrics, result.history)
        if bad:
            raise DivergedError(f"{stage}: training diverged: {bad[0]}; lower the learning rate; nothing of this "
                                "stage is recorded")
        wall = time.perf_counter() - t0
        for name, m in mask.items():
            if bool((prunable[name].detach().cpu()[~m] != 0).any()):
                raise RuntimeError(f"pruned weights of {name} are non-zero after training; "
                                   "the domain's training loop bypassed the mask")
        if distributed.is_main():
            if condition in ("dense", "ticket"):
                write_tensors(self.run.trained_path(level, condition), {n: p.detach() for n, p in prunable.items()})
            row = result_row(self.domain, level, condition, mask, metrics, result, wall)
            row["collapse"] = diagnose(model, mask, self.forward_ones, zero=self.domain.path_bias_patterns)
            row["path_survives"] = row["collapse"]["path_survives"]
            row["mask_seconds"] = self.mask_seconds.get(level)
            self.run.finish(level, condition, row)
        distributed.barrier()
