"""Selecting weights under an N:M pattern (:mod:`tickets.nm_pattern`): the groups of M
consecutive weights along a layer's input axis, the entries each group may keep, the check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .nm_pattern import Pattern, check_fits, input_axis
from .topk import keep_top


def grouped(t: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """``t`` with its groups of ``m`` consecutive entries along ``axis`` as the last dimension."""
    moved = t.movedim(axis, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)


def ungrouped(g: torch.Tensor, shape: tuple[int, ...], axis: int) -> torch.Tensor:
    moved_shape = list(shape)
    size = moved_shape.pop(axis)
    return g.reshape(*moved_shape, size).movedim(-1, axis)


def eligible(scores: torch.Tensor, alive: torch.Tensor, axis: int, m: int, cap: int) -> torch.Tensor:
    """Bool, ``scores``' shape: in every group, the ``cap`` highest-scored alive entries (ties to the
    earliest position); the rest of the group may not be kept."""
    s = grouped(scores.detach().float().cpu(), axis, m)
    a = grouped(alive.detach().to(torch.bool).cpu(), axis, m)
    if cap >= m:
        return alive.detach().to(torch.bool).cpu().clone()
    ranked = torch.where(a, s, torch.tensor(float("-inf")))
    order = torch.sort(ranked, dim=-1, descending=True, stable=True).indices[..., :cap]
    keep = torch.zeros_like(a)
    keep.scatter_(-1, order, True)
    return ungrouped(keep & a, tuple(scores.shape), axis)


def satisfies(mask: torch.Tensor, axis: int, pattern: Pattern) -> bool:
    """Every group of M along ``axis`` keeps at most N."""
    return bool((grouped(mask.to(torch.bool), axis, pattern.m).sum(-1) <= pattern.n).all())


def axes_of(shapes: Mapping[str, tuple[int, ...]], output_axes: Mapping[str, int]) -> dict[str, int]:
    """Each weight's input axis, the one its groups run along."""
    return {n: input_axis(tuple(s), output_axes.get(n, 0)) for n, s in shapes.items()}


def keep_top_within(scores: Mapping[str, torch.Tensor], keep: int, alive: Mapping[str, torch.Tensor],
                    names: Sequence[str], total: int, pattern: Pattern | None, axes: Mapping[str, int] | None
                    ) -> dict[str, torch.Tensor]:
    """:func:`tickets.topk.keep_top` of ``keep`` weights among ``names`` under the pattern (none:
    keep_top itself): every group keeps at most ``pattern.cap(keep / total)`` and, while the density
    is at or above N/M, at least its N highest-scored alive weights (so the level that reaches N/M
    leaves exactly N in every group); fewer than ``keep`` only where the cap leaves fewer eligible."""
    if pattern is None:
        return keep_top(scores, keep, alive, names=list(names))
    if axes is None:
        raise ValueError("an N:M pattern needs each weight's input axis (input_axes)")
    density = keep / total if total else 0.0
    cap = pattern.cap(density)
    floor = pattern.n if density >= pattern.density else 0
    allowed = {n: eligible(scores[n].reshape(alive[n].shape), alive[n], axes[n], pattern.m, cap) for n in names}
    keep = min(keep, sum(int(torch.count_nonzero(a)) for a in allowed.values()))
    if not floor:
        return keep_top(scores, keep, allowed, names=list(names))
    forced = {n: eligible(scores[n].reshape(alive[n].shape), alive[n], axes[n], pattern.m, floor) for n in names}
    n_forced = sum(int(torch.count_nonzero(f)) for f in forced.values())
    rest = keep_top(scores, max(0, keep - n_forced), {n: allowed[n] & ~forced[n] for n in names}, names=list(names))
    return {n: rest[n].reshape(alive[n].shape) | forced[n] for n in names}


def pattern_of(pruning, shapes: Mapping[str, tuple[int, ...]], domain, template) -> tuple[Pattern | None, dict | None]:
    """A run's N:M pattern and its weights' input axes, checked against the model before any work
    (``(None, None)`` without ``pruning.pattern``)."""
    if pruning.pattern is None:
        return None, None
    pattern = Pattern.parse(pruning.pattern)
    output_axes = domain.output_axes(template)
    check_fits(shapes, output_axes, pattern)
    return pattern, axes_of(shapes, output_axes)
