"""SNIP: connection sensitivity (Lee, Ajanthan & Torr, ICLR 2019).

With every weight gated by a connection variable, ``w = c * θ``, SNIP scores a weight by
``|∂L/∂c|`` at ``c = 1``, which is ``|g ⊙ θ|`` with ``g = ∂L/∂θ``. The lowest scores are pruned.

Conventions here:

* ``g`` is the gradient of the loss averaged over all of ``ctx.batches`` (how many, and how large,
  is the caller's choice; the paper uses one mini-batch);
* the current mask is honoured: the scores are those of the masked network (pruned weights are
  zero, so they score 0);
* the model is scored in eval mode on a deep copy (no dropout noise, BatchNorm on its running
  statistics, as in Tanaka et al.'s reference framework); the caller's model is left untouched;
* scores are CPU float64 tensors, one per prunable parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .at_init import require_model, scoring_copy, to_scores
from .scorers import Scores, ScoringContext

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def batch_gradient(model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Any],
                   loss: LossFn) -> dict[str, torch.Tensor]:
    """The gradient of ``loss`` w.r.t. ``params``, averaged over ``batches`` (detached)."""
    names = list(params)
    tensors = [params[n] for n in names]
    total = [torch.zeros_like(p) for p in tensors]
    for batch in batches:
        value = loss(model, batch)
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc.add_(g.detach())
    return {n: t / len(batches) for n, t in zip(names, total)}


def snip_scores(model: nn.Module, prunable: Mapping[str, nn.Parameter], batches: Sequence[Any], loss: LossFn,
                mask: Mapping[str, torch.Tensor] | None = None, *, train_mode: bool = False) -> Scores:
    """``|g ⊙ θ|`` of the masked network, ``g`` averaged over ``batches``."""
    batches = _check_inputs("SNIP", batches, loss)
    work, params = scoring_copy(model, prunable, mask, train_mode=train_mode)
    g = batch_gradient(work, params, batches, loss)
    return to_scores({n: (g[n] * params[n].detach()).abs() for n in params})


def snip(ctx: ScoringContext) -> Scores:
    """The registered ``snip`` scorer: :func:`snip_scores` on ``ctx``."""
    _check_inputs("SNIP", ctx.batches, ctx.loss)
    model, prunable = require_model(ctx, "SNIP")
    return snip_scores(model, prunable, ctx.batches, ctx.loss, ctx.mask)  # type: ignore[arg-type]


def _check_inputs(method: str, batches: Sequence[Any] | None, loss: LossFn | None) -> list[Any]:
    batches = None if batches is None else list(batches)
    if not batches or loss is None:
        what = [w for w, missing in (("batches", not batches), ("loss", loss is None)) if missing]
        raise ValueError(f"{method} needs scoring batches and a loss from the domain "
                         f"(ScoringContext has no {' and no '.join(what)})")
    return batches
