"""Scores -> masks. A scorer gives every prunable weight a score; the lowest are pruned.

Selection is exact-k: in each pruning unit (a layer, or a whole group for global scope), exactly
``round(fraction * alive)`` of the surviving weights are removed, however many scores tie. Ties
at the threshold follow :mod:`tickets.topk`'s rule: in the unit's order (its layers in group
order, then flat index) the earliest tied weights survive, the latest are pruned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .masks import Mask
from .nm_pattern import Pattern
from .nm_select import keep_top_within
from .selection import Group

Scores = dict[str, torch.Tensor]


@dataclass
class ScoringContext:
    """What a scorer may look at. Magnitude and random use ``weights`` alone; the pruning-at-init
    scorers (SNIP, GraSP, SynFlow) use the model and what the domain adapter supplies."""

    weights: Mapping[str, torch.Tensor]  # current values of the prunable parameters
    mask: Mask  # the mask before this pruning step
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    model: Any = None  # the nn.Module whose prunable parameters are ``prunable``
    domain: Any = None
    prunable: Mapping[str, Any] | None = None  # name -> nn.Parameter of ``model``
    batches: Sequence[Any] | None = None  # scoring batches (SNIP, GraSP), from the domain
    loss: Callable[[Any, Any], torch.Tensor] | None = None  # (model, batch) -> scalar loss
    forward_ones: Callable[[Any], torch.Tensor] | None = None  # model -> output on an all-ones input (SynFlow)
    forward_ones_unavailable: str | None = None  # why the domain cannot supply forward_ones


Scorer = Callable[[ScoringContext], Scores]


def magnitude(ctx: ScoringContext) -> Scores:
    """|w|: the IMP criterion of Frankle & Carbin (2019)."""
    return {n: w.detach().abs().float().cpu() for n, w in ctx.weights.items()}


def random(ctx: ScoringContext) -> Scores:
    """Uniform random scores: random pruning at the same rates."""
    return {n: torch.rand(w.shape, generator=ctx.generator) for n, w in ctx.weights.items()}


def prune(
    scores: Mapping[str, torch.Tensor],
    mask: Mask,
    groups: Sequence[Group],
    scope: Literal["layer", "global"] = "layer",
    of: Literal["remaining", "original"] = "remaining",
    pattern: Pattern | None = None,
    input_axes: Mapping[str, int] | None = None,
) -> Mask:
    """Remove the lowest-scored surviving weights: each group's ``fraction`` of what remains
    (``of='remaining'``) or of the unit's original size (``of='original'``: a constant count per
    level), per layer (``scope='layer'``) or ranked across the group's layers (``scope='global'``).
    With an N:M ``pattern`` (``input_axes``: each weight's input axis), each group of M may keep
    only as many as the unit's new density allows (:mod:`tickets.nm_pattern`)."""
    new = dict(mask.items())  # every pruned unit gets new tensors; the rest are cloned below
    for group in groups:
        units = [[n] for n in group.members] if scope == "layer" else [list(group.members)]
        for unit in units:
            _prune_unit(scores, new, unit, group.fraction, of, pattern, input_axes)
    return Mask({n: t.clone() if t is mask[n] else t for n, t in new.items()})


def _prune_unit(scores: Mapping[str, torch.Tensor], mask: dict[str, torch.Tensor],
                names: list[str], fraction: float, of: str = "remaining", pattern: Pattern | None = None,
                input_axes: Mapping[str, int] | None = None) -> None:
    alive = sum(int(torch.count_nonzero(mask[name])) for name in names)
    total = sum(mask[name].numel() for name in names)
    base = alive if of == "remaining" else total
    k = int(fraction * base + 0.5)
    if k <= 0:
        return
    kept = keep_top_within(scores, max(0, alive - k), {name: mask[name] for name in names}, names, total,
                           pattern, input_axes)
    for name in names:
        mask[name] = kept[name].reshape(mask[name].shape)
