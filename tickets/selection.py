"""Which parameters are prunable, and at which rate each is pruned."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from .errors import ConfigError

PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def default_prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights (not biases) of the model's Linear and Conv layers, in registration order."""
    out: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_MODULES) and getattr(module, "weight", None) is not None:
            out[f"{module_name}.weight" if module_name else "weight"] = module.weight
    return out


def matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def select_prunable(
    model: nn.Module,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    base: dict[str, nn.Parameter] | None = None,
) -> dict[str, nn.Parameter]:
    """Prunable parameters by name.

    ``base`` (default: :func:`default_prunable`) is the starting set; ``include`` patterns, when
    given, replace it with every parameter whose name matches; ``exclude`` patterns remove names.
    A pattern that matches nothing is an error, since it is almost always a typo.
    """
    all_params = dict(model.named_parameters())
    if include:
        for pattern in include:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in all_params):
                raise ConfigError(f"pruning.include: pattern {pattern!r} matches no parameter of "
                                  f"{type(model).__name__} (names look like {_examples(all_params)})")
        chosen = {n: p for n, p in all_params.items() if matches(n, include)}
    else:
        chosen = dict(default_prunable(model) if base is None else base)
    for pattern in exclude:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in chosen):
            raise ConfigError(f"pruning.exclude: pattern {pattern!r} matches no prunable parameter "
                              f"(prunable: {_examples(chosen)})")
    chosen = {n: p for n, p in chosen.items() if not matches(n, exclude)}
    if not chosen:
        raise ConfigError("pruning: no parameter is left to prune after include/exclude")
    return chosen


@dataclass(frozen=True)
class Group:
    """Parameters pruned together at one rate (per level, a fraction of what remains)."""

    name: str
    fraction: float
    members: tuple[str, ...]


def assign_groups(
    names: Sequence[str], rules: Sequence[tuple[str, float]], default_fraction: float
) -> list[Group]:
    """Split parameter names into groups: the first ``(pattern, fraction)`` rule that matches a
    name decides its group; unmatched names form the ``default`` group."""
    members: dict[str, list[str]] = {pattern: [] for pattern, _ in rules}
    rest: list[str] = []
    for name in names:
        for pattern, _ in rules:
            if fnmatch.fnmatchcase(name, pattern):
                members[pattern].append(name)
                break
        else:
            rest.append(name)
    groups = []
    for pattern, fraction in rules:
        if not members[pattern]:
            raise ConfigError(f"pruning.groups: pattern {pattern!r} matches no prunable parameter "
                              f"(prunable: {', '.join(names)})")
        groups.append(Group(pattern, fraction, tuple(members[pattern])))
    if rest:
        groups.append(Group("default", default_fraction, tuple(rest)))
    return groups


def _examples(params: dict, n: int = 4) -> str:
    names = list(params)
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
