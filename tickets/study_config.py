"""The study file's sections as typed dataclasses (see :mod:`tickets.study` for the format), and
the reading of the file: every key checked, every list item converted on its own so that an error
names the item (``experiments[1] (rl): ...``). Torch-free."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import Control, check_controls, read_config_text
from .config_yaml import parse_yaml
from .errors import ConfigError
from .typed import from_dict

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # no '@', '[', '>' or '/': compiled labels and run names use them


def _check_label(what: str, label: str) -> None:
    if not LABEL.fullmatch(label):
        raise ConfigError(f"{what}: {label!r} must start with a letter or digit and hold only letters, digits, "
                          "'_', '.' and '-'")


def _check_key(key: str) -> None:
    if not key or any(not part for part in key.split(".")) or "=" in key:
        raise ConfigError(f"{key!r}: expected a dotted key such as train.steps")


@dataclass
class StudyItem:
    """One experiment of a study: a config file plus overrides, or a grid of them."""

    label: str
    config: str | None = None  # relative to the study file; a target may leave it out to reuse the source's
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value, as on the command line
    grid: dict[str, list[Any]] = field(default_factory=dict)  # dotted key -> values: one experiment per combination

    def __post_init__(self):
        _check_label("label", self.label)
        for key in self.overrides:
            _check_key(key)
        for key, values in self.grid.items():
            _check_key(key)
            if not values:
                raise ConfigError(f"grid.{key}: give at least one value")
            if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
                raise ConfigError(f"grid.{key}: a value is listed twice in {values}")
            if key in self.overrides:
                raise ConfigError(f"grid.{key}: also set in overrides; set it in one place")


@dataclass
class MatrixConfig:
    """``transfer:``, every source's tickets trained on every target (the options as TransferConfig's)."""

    sources: list[Any]  # StudyItem mappings, converted one by one
    targets: list[Any]
    name: str | None = None  # required in ``transfers:``: the report's section and figure names
    levels: list[int] = field(default_factory=list)
    adapt: list[str] = field(default_factory=list)
    head_policy: Literal["dense", "source_rate"] = "dense"
    weights: Literal["source", "target_init"] = "source"
    controls: list[Control] | None = None  # None: each target keeps its config's controls
    diagonal: bool = False

    def __post_init__(self):
        if self.name is not None:
            _check_label("name", self.name)
        if not self.sources or not self.targets:
            raise ConfigError("sources/targets: a transfer matrix needs at least one source and one target")
        if any(level < 1 for level in self.levels) or len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"levels: must be distinct levels >= 1, got {self.levels}")
        if self.controls is not None and len(set(self.controls)) != len(self.controls):
            raise ConfigError(f"controls: listed twice in {self.controls}")
        if self.controls is not None:
            check_controls(self.controls)


@dataclass
class StudyAnalysis:
    """An analysis every selected run of the study gets as a stage of its graph (``masks`` also
    puts the tickets' overlap across seeds and transfers into the report)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)  # checked against the analysis's options class
    groups: list[str] | None = None  # entry groups (labels without @seed; fnmatch patterns); None: every run

    def __post_init__(self):
        from . import registry
        from .analysis_options import check_options
        from .config import registry_message

        if self.name not in registry.analyses:
            raise ConfigError(f"name: {registry_message(registry.analyses, self.name)}")
        self.checked = check_options(self.name, self.options, "options")
        if self.groups is not None and not self.groups:
            raise ConfigError("groups: leave it out for every run, or name at least one group")


    def applies_to(self, group: str) -> bool:
        """Whether the runs of the entry group ``group`` get this analysis."""
        return self.groups is None or any(fnmatch.fnmatchcase(group, g) for g in self.groups)


def analysis_item(raw: Any, where: str) -> StudyAnalysis:
    """``masks`` or ``{name: lmc, options: {...}, groups: [...]}``."""
    return from_dict(StudyAnalysis, {"name": raw} if isinstance(raw, str) else raw, where)


@dataclass
class StudyFile:
    name: str
    seeds: list[int] | None = None  # replaces every experiment's seed and seeds
    experiments: list[Any] = field(default_factory=list)
    transfer: MatrixConfig | None = None
    transfers: list[MatrixConfig] = field(default_factory=list)  # several matrices, each named
    analyses: list[Any] = field(default_factory=list)  # names or StudyAnalysis items: stages of the runs

    def __post_init__(self):
        _check_label("name", self.name)
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"seeds: must be a non-empty list of distinct seeds, got {self.seeds}")
        self.analyses = [analysis_item(a, f"analyses[{i}]") for i, a in enumerate(self.analyses)]
        names = [a.name for a in self.analyses]
        if len(set(names)) != len(names):
            raise ConfigError(f"analyses: listed twice in {names}")
        if self.transfer is not None and self.transfers:
            raise ConfigError("transfers: give one matrix as transfer: or several as transfers:, not both")
        names: dict[str, int] = {}
        for i, matrix in enumerate(self.transfers):
            if matrix.name is None:
                raise ConfigError(f"transfers[{i}].name: required (it names the matrix in the report)")
            if names.setdefault(matrix.name, i) != i:
                raise ConfigError(f"transfers[{i}].name: {matrix.name!r} is also the name of "
                                  f"transfers[{names[matrix.name]}]")

    def matrices(self) -> list[tuple[str, MatrixConfig]]:
        """Each transfer matrix with the place it has in the file (``transfer``, ``transfers[1]``)."""
        if self.transfer is not None:
            return [("transfer", self.transfer)]
        return [(f"transfers[{i}]", m) for i, m in enumerate(self.transfers)]


@dataclass
class Item:
    """One experiment after grid expansion, not loaded yet."""

    where: str  # e.g. "transfer.targets[1]"
    label: str
    config: Path
    overrides: dict[str, Any]


def entry_error(where: str, label: str | None, exc: ConfigError) -> ConfigError:
    """``exc`` (whose message may start with ``where``) as ``<where> (<label>): ...``."""
    message = str(exc)
    if message.startswith(where):
        message = message[len(where):].lstrip(".: ")
    return ConfigError(f"{where}{f' ({label})' if label else ''}: {message}")


def read_study(path: Path) -> StudyFile:
    data = parse_yaml(read_config_text(path), str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return from_dict(StudyFile, data, "study")
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(f"{path}: {message[len('study.'):] if message.startswith('study.') else message}") from None


def expand(raw: Any, where: str, base: Path,
           sources: dict[str, StudyItem] | None = None) -> tuple[StudyItem, list[Item]]:
    """The item at ``where``, checked, and its experiments (one per grid combination). ``sources``:
    for a target, the source items by label (a target without ``config`` is the source of its label)."""
    label = raw.get("label") if isinstance(raw, dict) and isinstance(raw.get("label"), str) else None
    try:
        item = from_dict(StudyItem, raw, where)
        if item.config is None:
            if sources is None or item.label not in sources:
                raise ConfigError("config: required" + (" (or the label of a source, to use that source's "
                                                        "experiment as a target)" if sources is not None else ""))
            if item.overrides or item.grid:
                raise ConfigError("overrides/grid: a target named after a source is that source's experiment; "
                                  "give a config to change it")
            item = sources[item.label]
    except ConfigError as exc:
        raise entry_error(where, label, exc) from None
    keys = list(item.grid)
    short = [k.rsplit(".", 1)[-1] for k in keys]
    if len(set(short)) != len(short):
        short = keys
    items = []
    for combo in itertools.product(*(item.grid[k] for k in keys)):
        suffix = ",".join(f"{s}={_show(v)}" for s, v in zip(short, combo))
        items.append(Item(where, f"{item.label}[{suffix}]" if keys else item.label, base / item.config,
                          {**item.overrides, **dict(zip(keys, combo))}))
    return item, items


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return re.sub(r"[\s/]", "_", text)


def override_strings(overrides: dict[str, Any]) -> list[str]:
    """The mapping as ``key=value`` overrides; JSON values read back as the same YAML values."""
    return [f"{key}={json.dumps(value, default=str)}" for key, value in overrides.items()]
