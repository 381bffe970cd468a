"""The options of the built-in analyses (torch-free, so a study file's ``analyses:`` entries are
checked before any heavy import). A plugin analysis declares its own as an ``Options`` dataclass."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .errors import ConfigError
from .typed import from_dict, to_dict


def _check_levels(levels: list[int] | None) -> None:
    if levels is not None and (any(lvl < 0 for lvl in levels) or len(set(levels)) != len(levels)):
        raise ConfigError(f"levels: distinct levels >= 0, got {levels}")


@dataclass
class MaskOptions:
    compare: list[str] = field(default_factory=list)  # run or ticket directories to compare with
    levels: list[int] | None = None  # levels compared (None: every level); the density map has all

    def __post_init__(self):
        _check_levels(self.levels)


@dataclass
class LMCOptions:
    ks: list[int] = field(default_factory=lambda: [0])  # rewind iterations
    levels: list[int] | None = None  # None: the dense network (0) and the sparsest ticket
    points: int = 30  # points along each path, the two ends included (the paper: 30)
    recompute_bn: bool = False  # re-estimate BatchNorm statistics at every point instead of interpolating

    def __post_init__(self):
        if not self.ks or len(set(self.ks)) != len(self.ks) or min(self.ks) < 0:
            raise ConfigError(f"ks: distinct iterations >= 0, got {self.ks}")
        if self.points < 2:
            raise ConfigError(f"points: at least 2 (the two ends), got {self.points}")
        _check_levels(self.levels)


@dataclass
class WeightChangeOptions:
    levels: list[int] | None = None  # None: every level with a ticket

    def __post_init__(self):
        _check_levels(self.levels)


# ---- any registered analysis's options -----------------------------------------------------------
def options_class(name: str) -> type:
    """The options dataclass of the registered analysis ``name`` (registered with it, torch-free;
    else the class's ``Options``)."""
    cls = registry.resolve(registry.analyses.meta(name, "Options", None))
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"analyses: {name!r} declares no Options dataclass")
    return cls


def check_options(name: str, options: dict[str, Any] | None, where: str = "analysis") -> Any:
    """``options`` checked against the analysis's dataclass (an unknown name or key: ConfigError)."""
    if name not in registry.analyses:
        from .config import registry_message

        raise ConfigError(f"{where}: {registry_message(registry.analyses, name)}")
    return from_dict(options_class(name), dict(options or {}), where)


def canonical(options: Any) -> str:
    return json.dumps(to_dict(options), sort_keys=True)
