"""Ticket transfer (Morcos et al. 2019, "One ticket to win them all"): tickets found by one run
(another dataset, task, environment or optimizer) are trained here, level by level, next to the
same controls. Layers named in ``transfer.adapt`` may differ (a new output head); they keep the
target model's own initialisation and follow ``head_policy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .artifact import Ticket
from .config import load_experiment
from .errors import ConfigError
from .masks import Mask
from .run_dir import RunDir
from .stage_graph import Node
from .runner import Runner, stage_seed
from .store import read_json


def resolve_source(source: str, out: str | Path, seed: int | None = None) -> dict[int, Path]:
    """Level -> ticket directory, from a run directory, a ticket directory or a config file.

    A source over several seeds (a YAML with ``seeds:``, or its summary directory holding
    ``seeds.json``) gives the tickets of the run with the target's own ``seed``: seed ``s`` of a
    transfer study trains the tickets seed ``s`` found (a target with ``seeds:`` pairs them seed by
    seed); a seed the source was not run with is an error listing the ones it has."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"transfer.source: no such config file {path}")
        exp = load_experiment(path)
        if exp.config.seeds:
            exp = exp.with_seed(_source_seed(source, exp.config.seeds, seed))
        path = exp.run_dir(out)
        if not path.is_dir():
            raise ConfigError(f"transfer.source: {source} has not been run under {out} (no {path}); "
                              f"run it first: tickets run {source} --out {out}{_other_runs(exp.config.name, path)}")
    if (path / "seeds.json").is_file():
        info = read_json(path / "seeds.json")
        chosen = _source_seed(source, info["seeds"], seed)
        path = Path(info["runs"][info["seeds"].index(chosen)])
    if (path / "ticket.json").is_file():
        level = Ticket.load(path, with_rewind=False).meta.get("found", {}).get("level", 1)
        return {int(level): path}
    if (path / "config.yaml").is_file():
        run = RunDir(path)
        levels = sorted({r["level"] for r in run.rows() if r["condition"] == "ticket"})
        if not levels:
            raise ConfigError(f"transfer.source: run {path} has no finished ticket yet")
        return {lvl: run.ticket_dir(lvl) for lvl in levels}
    raise ConfigError(f"transfer.source: {source} is neither a run directory, a ticket directory nor a config file")


def _source_seed(source: str, seeds: list[int], seed: int | None) -> int:
    if seed not in seeds:
        raise ConfigError(f"transfer.source: {source} was run with seeds {seeds}; a transfer takes the tickets of "
                          f"its own seed, and seed {seed} is not among them (set seed: or seeds: to some of {seeds})")
    return seed


def _other_runs(name: str, missing: Path) -> str:
    """The runs under ``missing``'s parent with the same name but other settings (CLI overrides)."""
    others = sorted(p for p in missing.parent.glob(f"{name}-*") if p.is_dir() and p != missing
                    and p.name[len(name) + 1:].isalnum())
    if not others:
        return ""
    listed = ", ".join(str(p) for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return (f". Runs named {name!r} with other settings are there ({listed}): a run made with command-line "
            "overrides has another hash than its YAML gives, so name its run directory as transfer.source")


class TransferRun(Runner):
    method = "transfer"

    def check(self, template: nn.Module) -> None:
        t = self.config.transfer
        available = resolve_source(t.source, self.run.path.parent, seed=self.config.seed)
        missing = [lvl for lvl in t.levels if lvl not in available]
        if missing:
            raise ConfigError(f"transfer.levels: {missing} not in the source (it has {sorted(available)})")
        self.sources = {lvl: available[lvl] for lvl in (t.levels or sorted(available))}
        self.tickets = {lvl: Ticket.load(p, with_rewind=t.weights == "source") for lvl, p in self.sources.items()}
        # a structured ticket also masks the biases and norms its units reach: mask them here too
        self.also_mask(template, {n for ticket in self.tickets.values() for n in ticket.mask})
        for lvl, ticket in self.tickets.items():  # every ticket must fit before any training
            if t.weights == "source" and ticket.rewind is None:
                raise ConfigError(f"transfer.weights: the level-{lvl} ticket has no rewind weights; use target_init")
            self._fit(ticket, template, lvl)

    def _fit(self, ticket: Ticket, model: nn.Module, level: int) -> Mask:
        t = self.config.transfer
        generator = torch.Generator().manual_seed(stage_seed(self.config.seed, level, "adapt"))
        return ticket.fit(model, self.prunable(model), adapt=t.adapt, head_policy=t.head_policy,
                          generator=generator, check_rewind=t.weights == "source")

    def levels(self) -> list[int]:
        return list(self.sources)

    def mask_needs(self, level: int) -> list[Node]:
        return []  # the source's tickets, loaded and fitted when the runner was built

    def level_mask(self, level: int, previous: Mask) -> Mask:
        return self._fit(self.tickets[level], self.domain.build_model(seed=self.config.seed), level)

    def load_start_weights(self, model: nn.Module, level: int) -> None:
        if self.config.transfer.weights == "source":
            self.tickets[level].load_weights(model, adapt=self.config.transfer.adapt)

    def ticket_meta(self, level: int) -> dict[str, Any]:
        t = self.config.transfer
        return {"method": "transfer", "level": level, "source": str(self.sources[level]),
                "source_found": self.tickets[level].meta.get("found"),
                "source_where": self.tickets[level].meta.get("where"),
                "adapt": list(t.adapt), "head_policy": t.head_policy, "weights": t.weights,
                "seed": self.config.seed}
