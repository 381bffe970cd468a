"""Pruning at initialisation: exact-k selection to a target density, the iterative driver, and
the scoring copy that the SNIP, GraSP and SynFlow scorers work on.

Densities here are fractions of *all* the weights in ``names`` (not of what survives): density
0.01 keeps exactly ``round(0.01 * total)`` weights, chosen among those the mask still keeps.

The iterative driver prunes in ``iterations`` rounds; round ``k`` (1-based) prunes to

* ``schedule="exponential"`` (SynFlow's, Tanaka et al. 2020): ``density ** (k / iterations)``;
* ``schedule="linear"``: ``1 - (1 - density) * k / iterations``;

recomputing the scores on the current mask before each round. ``iterations=1`` is one-shot (SNIP
and GraSP as published; their iterative variants are the same call with ``iterations > 1``);
SynFlow as published uses 100 rounds (its registered :class:`tickets.scorer_needs.ScorerNeeds`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from .masks import Mask
from .nm_pattern import Pattern
from .scorers import Scorer, ScoringContext
from .nm_select import keep_top_within

Schedule = Literal["exponential", "linear"]


def compressions(lo: float = 0.5, hi: float = 3.0, step: float = 0.5) -> list[float]:
    """Compression ratios ``10**lo, 10**(lo + step), ..., 10**hi`` (default 10^0.5 ... 10^3, the
    x-axis of Tanaka et al. 2020, Fig. 6)."""
    if step <= 0 or hi < lo:
        raise ValueError(f"compressions: need step > 0 and hi >= lo, got lo={lo}, hi={hi}, step={step}")
    n = round((hi - lo) / step)
    return [10.0 ** (lo + i * step) for i in range(n + 1)]


def density_of(compression: float) -> float:
    """The density (fraction of weights kept) at a compression ratio: ``1 / compression``."""
    if compression < 1:
        raise ValueError(f"compression must be >= 1, got {compression}")
    return 1.0 / compression


def schedule_densities(density: float, iterations: int = 1, schedule: Schedule = "exponential") -> list[float]:
    """The target density after each of the ``iterations`` rounds; the last is ``density``."""
    _check_density(density)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if schedule == "exponential":
        out = [density ** (k / iterations) for k in range(1, iterations + 1)]
    elif schedule == "linear":
        out = [1.0 - (1.0 - density) * k / iterations for k in range(1, iterations + 1)]
    else:
        raise ValueError(f"unknown schedule {schedule!r} (exponential or linear)")
    out[-1] = density  # exactly, whatever the float rounding of the power
    return out


def keep_count(density: float, total: int) -> int:
    """``round(density * total)``, halves rounded up."""
    return math.floor(density * total + 0.5)


def prune_to_density(scores: Mapping[str, torch.Tensor], mask: Mask, names: Sequence[str], density: float, *,
                     pattern: Pattern | None = None, input_axes: Mapping[str, int] | None = None) -> Mask:
    """Keep exactly ``round(density * total)`` of the weights in ``names`` (``total``: all their
    weights, pruned or not), the highest-scored among the surviving ones, ranked globally across
    ``names``. Ties never change the count: among scores tied at the threshold the earliest
    weights in the order of ``names`` (then flat index) are kept (:mod:`tickets.topk`); a weight
    the mask has already pruned is never kept, so when fewer than the target survive, all
    survivors are kept. Masks of parameters not in ``names`` are unchanged. With an N:M ``pattern``
    (``input_axes``: each weight's input axis) a group of M keeps at most what ``density`` allows
    (:mod:`tickets.nm_pattern`; N at or below N/M)."""
    _check_density(density)
    names = list(names)
    missing = [n for n in names if n not in mask or n not in scores]
    if missing:
        raise KeyError(f"prune_to_density: no mask or no scores for {missing}")
    total = sum(mask[n].numel() for n in names)
    alive = sum(int(torch.count_nonzero(mask[n])) for n in names)
    kept = keep_top_within(scores, min(keep_count(density, total), alive), {n: mask[n] for n in names}, names,
                           total, pattern, input_axes)
    new = {n: t.clone() for n, t in mask.items() if n not in kept}
    new.update({n: kept[n].reshape(mask[n].shape) for n in names})
    return Mask({n: new[n] for n in mask})


def prune_at_init(
    scorer: Scorer,
    make_ctx: Callable[[Mask], ScoringContext],
    mask: Mask,
    names: Sequence[str],
    density: float,
    iterations: int = 1,
    schedule: Schedule = "exponential",
    on_iteration: Callable[[int, float, Mask], None] | None = None,
    *,
    pattern: Pattern | None = None,
    input_axes: Mapping[str, int] | None = None,
) -> Mask:
    """Prune ``names`` to ``density`` in ``iterations`` rounds (see the module docstring for the
    schedules). Each round scores ``make_ctx(current_mask)`` and keeps, globally across
    ``names``, exactly ``round(target * total)`` weights. ``on_iteration(k, target, mask)`` is
    called after round ``k`` (1-based)."""
    targets = schedule_densities(density, iterations, schedule)
    names = list(names)
    for k, target in enumerate(targets, start=1):
        scores = scorer(make_ctx(mask))
        mask = prune_to_density(scores, mask, names, target, pattern=pattern, input_axes=input_axes)
        if on_iteration is not None:
            on_iteration(k, target, mask)
    return mask


def _check_density(density: float) -> None:
    if not (0.0 <= density <= 1.0) or math.isnan(density):
        raise ValueError(f"density must be in [0, 1], got {density}")


# --- the copy the data-driven scorers work on ---------------------------------------------------

def require_model(ctx: ScoringContext, method: str) -> tuple[nn.Module, Mapping[str, nn.Parameter]]:
    if ctx.model is None or ctx.prunable is None:
        raise ValueError(f"{method} needs the model and its prunable parameters in the ScoringContext "
                         f"(ctx.model and ctx.prunable)")
    return ctx.model, ctx.prunable


def scoring_copy(
    model: nn.Module,
    prunable: Mapping[str, nn.Parameter],
    mask: Mapping[str, torch.Tensor] | None,
    *,
    train_mode: bool = False,
    dtype: torch.dtype | None = None,
) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """A deep copy of ``model`` to score on, so that the caller's model (parameters, buffers,
    train/eval mode, ``requires_grad`` flags, ``.grad``) is never touched.

    The copy is in eval mode unless ``train_mode`` (eval: no dropout noise, BatchNorm on its
    running statistics, no buffer updates), converted to ``dtype`` when given, with the masked
    weights set to zero; only the prunable parameters require gradients. Returns the copy and
    ``name -> copied Parameter`` for the names of ``prunable``."""
    memo: dict[int, object] = {}
    work = copy.deepcopy(model, memo)
    copies: dict[str, nn.Parameter] = {}
    for name, p in prunable.items():
        c = memo.get(id(p))
        if c is None:
            raise ValueError(f"prunable parameter {name!r} is not a parameter of the model")
        copies[name] = c  # type: ignore[assignment]
    if dtype is not None:
        # re-find the copies by their qualified names: Module.to may replace Parameter objects
        # (torch.__future__.set_overwrite_module_params_on_conversion)
        qualified = {id(p): n for n, p in work.named_parameters(remove_duplicate=False)}
        unregistered = [name for name, c in copies.items() if id(c) not in qualified]
        if unregistered:
            raise ValueError(f"prunable parameters {unregistered} are not registered parameters of the model")
        where = {name: qualified[id(c)] for name, c in copies.items()}
        work.to(dtype)
        params = dict(work.named_parameters(remove_duplicate=False))
        copies = {name: params[where[name]] for name in copies}
    work.train(train_mode)
    chosen = {id(c) for c in copies.values()}
    for p in work.parameters():
        p.grad = None
        p.requires_grad_(id(p) in chosen)
    if mask is not None:
        extra = [n for n in mask if n not in copies]
        if extra:
            raise ValueError(f"the mask names parameters that are not prunable: {extra}")
        with torch.no_grad():
            for name, m in mask.items():
                p = copies[name]
                if tuple(m.shape) != tuple(p.shape):
                    raise ValueError(f"mask for {name!r} has shape {tuple(m.shape)}, parameter has {tuple(p.shape)}")
                p.mul_(m.to(device=p.device, dtype=p.dtype))
    return work, copies


def to_scores(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU float64 copies, detached."""
    return {n: t.detach().to("cpu", torch.float64).clone() for n, t in tensors.items()}
