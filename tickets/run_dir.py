"""One directory per run, laid out so that every stage is either complete or redone.

```
<out>/<name>-<config hash>/
  config.yaml                    the resolved config (every default written out)
  init.safetensors               θ0, the full initial state
  rewind.safetensors             θk, the state at the rewind step (a link to init when k = 0)
  rewind_optimizer.safetensors   the optimizer state at step k (rewind.optimizer only)
  level_00/dense.result.json     a stage's result row; written last, so it marks the stage done
  level_00/dense.trained.safetensors   prunable weights after training (the next mask's scores)
  level_03/ticket/               the level's ticket (ticket.json, masks, rewind)
  level_03/ticket.result.json, level_03/reinit.result.json, ...
  results.csv                    one row per level and condition, rebuilt after every stage
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from . import run_files, store, validate
from .errors import ArtifactError, ConfigError

TABLE_COLUMNS = ["level", "condition", "weights_remaining_pct", "metric", "value", "loss",
                 "early_stop_step", "steps", "wall_seconds", "path_survives", "empty_layers", "mask_seconds"]


# what a run writes, by the name its temporaries carry (see store.leftovers)
RUN_FILES = re.compile(r"config\.yaml|results\.csv|summary\.csv|seeds\.json|plot\.png|[\w.-]+\.safetensors"
                       r"|\w+\.result\.json|ticket|early_bird\.json")


class RunDir:
    def __init__(self, path: str | Path, stages: list[tuple[int, str]] | None = None):
        """``stages``: the run's (level, condition) stages, as its runner knows them; by default
        they are read from its config.yaml. Only these stages' files are read back."""
        self.path = Path(path)
        self.stages = stages

    # ---- config --------------------------------------------------------------------------------
    def check_claim(self, resolved: dict[str, Any]) -> None:
        """Refuse a directory that holds a run of another config (read-only: every process can
        check, so none waits for a main process that failed)."""
        cfg_path = self.path / "config.yaml"
        if os.path.lexists(cfg_path) and not _same_config(self.config(), yaml.safe_load(yaml.safe_dump(resolved))):
            raise ConfigError(f"{self.path}: holds a run with a different config; "
                              "choose another --out or remove the directory")

    def claim(self, resolved: dict[str, Any]) -> None:
        """Write config.yaml, or check that an existing run has the same config."""
        self.check_claim(resolved)
        cfg_path = self.path / "config.yaml"
        if not os.path.lexists(cfg_path):
            store.write_text(cfg_path, yaml.safe_dump(resolved, sort_keys=False))

    def config(self) -> dict[str, Any]:
        """The run's config.yaml, checked (an ArtifactError if damaged)."""
        return run_files.read_config(self.path / "config.yaml")

    def leftovers(self) -> list[Path]:
        """Temporaries of this run's own writes that a killed process left (the run directory and
        its level directories, exact temporary names of the files a run writes)."""
        dirs = [self.path, *run_files.level_dirs(self.path).values()] if self.path.is_dir() else []
        return [p for d in dirs if d.is_dir() and not d.is_symlink()
                for p in store.leftovers(d, lambda name: bool(RUN_FILES.fullmatch(name)))]

    # ---- states --------------------------------------------------------------------------------
    def state_path(self, name: str) -> Path:
        return self.path / f"{name}.safetensors"

    def save_state(self, name: str, state: Mapping[str, torch.Tensor]) -> Path:
        path = self.state_path(name)
        store.write_tensors(path, state)
        return path

    def load_state(self, name: str) -> dict[str, torch.Tensor]:
        return store.read_tensors(self.state_path(name))

    # ---- stages --------------------------------------------------------------------------------
    def level_dir(self, level: int) -> Path:
        return self.path / f"level_{level:02d}"

    def result_path(self, level: int, condition: str) -> Path:
        return self.level_dir(level) / f"{condition}.result.json"

    def trained_path(self, level: int, condition: str) -> Path:
        return self.level_dir(level) / f"{condition}.trained.safetensors"

    def ticket_dir(self, level: int) -> Path:
        return self.level_dir(level) / "ticket"

    def done(self, level: int, condition: str) -> bool:
        """Whether the stage's result row exists (whatever its state: reading it checks it)."""
        return os.path.lexists(self.result_path(level, condition))

    def finish(self, level: int, condition: str, row: dict[str, Any]) -> None:
        store.write_json(self.result_path(level, condition), row)
        self.write_table()

    def expected(self):
        """(level, condition) -> whether it is a stage of this run."""
        if self.stages is not None:
            stages = set(self.stages)
            return lambda level, condition: (level, condition) in stages
        return run_files.stages_of(self.config(), self.path / "config.yaml")

    def rows(self) -> list[dict[str, Any]]:
        """The result rows of this run's finished stages, each checked; files of other stages
        (a level beyond the config's, a condition it does not have) are not this run's."""
        expected = self.expected()
        rows = []
        for level, level_dir in sorted(run_files.level_dirs(self.path).items()):
            if not level_dir.is_dir():
                continue
            names = [e.name for e in os.scandir(level_dir) if e.name.endswith(".result.json")]
            for name in sorted(names):
                condition = name[: -len(".result.json")]
                if expected(level, condition):
                    rows.append(run_files.read_row(level_dir / name, level, condition))
        order = {"dense": 0, "ticket": 1}
        return sorted(rows, key=lambda r: (r["level"], order.get(r["condition"], 2), r["condition"]))

    def write_table(self) -> None:
        """Write results.csv from the rows (not at all when it already holds that table)."""
        path = self.path / "results.csv"
        text = table_csv(self.rows())
        try:
            if validate.read_text(path) == text:
                return
        except (ArtifactError, OSError):  # absent or unreadable: write it
            pass
        store.write_text(path, text)


def _same_config(stored: Any, resolved: Any) -> bool:
    """Equal, except for keys the stored file lacks: settings added to the framework since the
    run began. They are at their defaults, or the run's hash, which leaves defaults out, would
    have named another directory."""
    if isinstance(stored, dict) and isinstance(resolved, dict):
        return stored.keys() <= resolved.keys() and all(_same_config(v, resolved[k]) for k, v in stored.items())
    if isinstance(stored, list) and isinstance(resolved, list):
        return len(stored) == len(resolved) and all(map(_same_config, stored, resolved))
    return stored == resolved


def table_csv(rows: list[dict[str, Any]]) -> str:
    extra = sorted({k for r in rows for k in r.get("metrics", {})})
    summary = sorted({k for r in rows for k in r.get("summary") or {}})
    return store.csv_text(TABLE_COLUMNS + [f"test_{k}" for k in extra] + summary,
                          [[_fmt(r.get(c)) for c in TABLE_COLUMNS] + [_fmt(r.get("metrics", {}).get(k)) for k in extra]
                           + [_fmt((r.get("summary") or {}).get(k)) for k in summary] for r in rows])


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
