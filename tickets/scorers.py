"""Scores -> masks. A scorer gives every prunable weight a score; the lowest are pruned.

Selection is exact-k: in each pruning unit (a layer, or a whole group for global scope), exactly
``round(fraction * alive)`` of the surviving weights are removed, however many scores tie.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .masks import Mask
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
) -> Mask:
    """Remove the lowest-scored surviving weights: each group's ``fraction`` of what remains
    (``of='remaining'``) or of the unit's original size (``of='original'``: a constant count per
    level), per layer (``scope='layer'``) or ranked across the group's layers (``scope='global'``)."""
    new = {n: t.clone() for n, t in mask.items()}
    for group in groups:
        units = [[n] for n in group.members] if scope == "layer" else [list(group.members)]
        for unit in units:
            _prune_unit(scores, new, unit, group.fraction, of)
    return Mask(new)


def _prune_unit(scores: Mapping[str, torch.Tensor], mask: dict[str, torch.Tensor],
                names: list[str], fraction: float, of: str = "remaining") -> None:
    alive_scores = []
    for name in names:
        s = scores[name].detach().to("cpu", torch.float64).reshape(-1).numpy()
        if np.isnan(s).any():
            raise ValueError(f"scores for {name!r} contain NaN; cannot rank weights")
        alive_scores.append(s[mask[name].reshape(-1).numpy()])
    flat = np.concatenate(alive_scores) if alive_scores else np.empty(0)
    base = flat.size if of == "remaining" else sum(mask[name].numel() for name in names)
    k = int(fraction * base + 0.5)
    if k <= 0:
        return
    if k >= flat.size:
        drop = np.ones(flat.size, dtype=bool)
    else:
        drop = np.zeros(flat.size, dtype=bool)
        drop[np.argpartition(flat, k - 1)[:k]] = True
    offset = 0
    for name, s in zip(names, alive_scores):
        m = mask[name].reshape(-1)
        alive_idx = torch.nonzero(m).reshape(-1)
        part = torch.from_numpy(drop[offset:offset + s.size])
        m[alive_idx[part]] = False
        offset += s.size
