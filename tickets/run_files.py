"""Checked reads of a run directory's own files: its config.yaml, the stages that config
implies, and the result rows (the fields the table, the report and the summaries use)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import validate
from .errors import ArtifactError

CONDITION = re.compile(r"[A-Za-z0-9_]+")
LEVEL_DIR = re.compile(r"level_(\d{2,})")


def read_config(path: Path) -> dict[str, Any]:
    text = validate.read_text(path, "config.yaml")
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArtifactError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(cfg, dict):
        raise ArtifactError(f"{path}: not a mapping of settings; not a run's config.yaml", path)
    return cfg


def stages_of(cfg: dict[str, Any], path: Path) -> Callable[[int, str], bool]:
    """Whether (level, condition) is a stage of the run with config ``cfg`` (its config.yaml at
    ``path``): level 0 dense, and the strategy's levels with the ticket and the controls."""
    pruning = cfg.get("pruning") or {}
    controls = cfg.get("controls", ["reinit"])
    transfer = cfg.get("transfer")
    if not (isinstance(pruning, dict) and isinstance(controls, list) and all(isinstance(c, str) for c in controls)
            and (transfer is None or isinstance(transfer, dict))):
        raise ArtifactError(f"{path}: pruning, controls or transfer is not of the kind a run writes", path)
    levels: set[int] | None
    if transfer is not None:
        wanted = transfer.get("levels") or []
        levels = set(wanted) if isinstance(wanted, list) and wanted else None  # empty: the source's levels
    elif pruning.get("method", "imp") == "imp":
        n = pruning.get("levels", 10)
        if not validate.is_count(n):
            raise ArtifactError(f"{path}: pruning.levels is not a count: {n!r:.80}", path)
        levels = set(range(1, n + 1))
    else:
        compressions = pruning.get("compressions") or []
        levels = set(range(1, len(compressions) + 1)) if isinstance(compressions, list) else set()
    conditions = {"ticket", *controls}

    def expected(level: int, condition: str) -> bool:
        if level == 0:
            return condition == "dense"
        return condition in conditions and (levels is None or level in levels)

    expected.total = None if levels is None else 1 + len(levels) * len(conditions)  # None: the source decides
    return expected


def level_dirs(root: Path) -> dict[int, Path]:
    """level -> ``level_NN`` directory entry (of any kind) under ``root``."""
    import os

    try:
        names = [e.name for e in os.scandir(root)]
    except OSError as exc:
        raise ArtifactError(f"{root}: cannot list the run directory: {exc.strerror}", root) from None
    out = {}
    for name in names:
        m = LEVEL_DIR.fullmatch(name)
        if m and f"level_{int(m[1]):02d}" == name:
            out[int(m[1])] = root / name
    return out


def _opt(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or ok(v)


ROW_FIELDS = {
    "level": (validate.is_count, "a non-negative integer"),
    "condition": (lambda v: isinstance(v, str) and bool(CONDITION.fullmatch(v)), "a condition name"),
    "metric": (lambda v: isinstance(v, str) and bool(v), "a metric name"),
    "weights_remaining_pct": (lambda v: validate.is_number(v) and 0.0 <= v <= 100.0, "a number in [0, 100]"),
    "value": (validate.is_number, "a finite number"),
    "wall_seconds": (lambda v: validate.is_number(v) and v >= 0, "a non-negative number"),
}
OPTIONAL_ROW_FIELDS = {
    "loss": (_opt(validate.is_number), "a finite number or null"),
    "early_stop_step": (_opt(validate.is_count), "a step (non-negative integer) or null"),
    "steps": (_opt(validate.is_count), "a non-negative integer or null"),
    "path_survives": (_opt(lambda v: isinstance(v, bool)), "true, false or null"),
    "empty_layers": (_opt(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
                     "a list of names or null"),
    "mask_seconds": (_opt(validate.is_number), "a finite number or null"),
    "metrics": (lambda v: isinstance(v, dict) and all(_opt(validate.is_number)(x) or isinstance(x, str)
                                                        for x in v.values()),
                "a mapping of metric names to finite numbers"),
    "summary": (_opt(lambda v: isinstance(v, dict)), "a mapping or null"),
}


def read_row(path: Path, level: int, condition: str) -> dict[str, Any]:
    """A stage's result row, checked, and checked to be the row of the stage its path names."""
    row = validate.read_json(path, "result row")
    validate.check_fields(path, row, ROW_FIELDS, "result row")
    validate.check_fields(path, row, {k: c for k, c in OPTIONAL_ROW_FIELDS.items() if k in row}, "result row")
    if (row["level"], row["condition"]) != (level, condition):
        raise ArtifactError(f"{path}: holds the row of level {row['level']} {row['condition']}, not of level "
                            f"{level} {condition} (copied from elsewhere?)", path)
    return row
