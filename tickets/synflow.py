"""SynFlow: iterative synaptic flow pruning (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020).

Data-free. On a copy of the model, in float64 and eval mode, every parameter and floating buffer
is replaced by its absolute value ("linearise": weights, biases and BatchNorm alike, as the
reference code does with the whole state dict), the current mask is applied, and the network is
run on an all-ones input: ``R = sum(output)``. A weight scores ``|θ ⊙ ∂R/∂θ|``; the lowest are
pruned. For a bias-free ReLU network the scores of each layer sum to ``R`` (conservation), and
pruned iteratively (100 rounds, exponential schedule: :func:`tickets.at_init.prune_at_init`) it
avoids layer collapse.

Float64 matters: ``R`` is a product over the layers and underflows float32 in deep or sparse
networks, which would tie most scores at 0.

The all-ones input comes from the domain adapter as ``ctx.forward_ones(model) -> output tensor``.
Adapters must build the ones in the dtype and on the device of the model they are handed (here a
float64 copy), e.g. ``p = next(model.parameters()); model(torch.ones(1, *shape, dtype=p.dtype,
device=p.device))``. Domains without a dense input (token ids, discrete observations) set
``ctx.forward_ones_unavailable`` to say why, and SynFlow refuses with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from .at_init import require_model, scoring_copy, to_scores
from .scorers import Scores, ScoringContext

ForwardOnes = Callable[[nn.Module], torch.Tensor]


def synflow_scores(model: nn.Module, prunable: Mapping[str, nn.Parameter], forward_ones: ForwardOnes,
                   mask: Mapping[str, torch.Tensor] | None = None, *, dtype: torch.dtype = torch.float64) -> Scores:
    """``|θ ⊙ ∂R/∂θ|`` of the linearised, masked network (``dtype`` float64 unless you want to see
    float32 underflow)."""
    work, params = scoring_copy(model, prunable, mask, train_mode=False, dtype=dtype)
    with torch.no_grad():  # linearise: |.| of every parameter and floating buffer (masked ones stay 0)
        for p in work.parameters():
            p.abs_()
        for b in work.buffers():
            if b.is_floating_point():
                b.abs_()
    out = forward_ones(work)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"forward_ones must return the model's output tensor, got {type(out).__name__}")
    r = out.sum()
    names = list(params)
    grads = torch.autograd.grad(r, [params[n] for n in names], allow_unused=True)
    return to_scores({n: (params[n].detach() * g).abs() if g is not None else torch.zeros_like(params[n])
                      for n, g in zip(names, grads)})


def synflow(ctx: ScoringContext) -> Scores:
    """The registered ``synflow`` scorer (one round; iterate with :func:`tickets.at_init.prune_at_init`)."""
    if ctx.forward_ones is None:
        reason = ctx.forward_ones_unavailable or "the domain supplies no forward_ones in the ScoringContext"
        raise ValueError(f"SynFlow needs a dense all-ones input: {reason}")
    model, prunable = require_model(ctx, "SynFlow")
    return synflow_scores(model, prunable, ctx.forward_ones, ctx.mask)
