"""GraSP: gradient signal preservation (Wang, Zhang & Grosse, ICLR 2020).

The paper scores ``S(-θ) = -θ ⊙ Hg``, with ``g`` the gradient of the loss and ``H`` its Hessian
w.r.t. the prunable weights, and removes the weights with the **highest** ``S`` (removing them
reduces the gradient norm least, or increases it). :func:`tickets.scorers.prune` removes the
*lowest* scores, so the registered ``grasp`` scorer returns the importance ``-S = θ ⊙ Hg``;
:func:`grasp_scores` returns ``S`` itself, the paper's definition.

``Hg`` is computed by double back-propagation, as in the paper's code: a first pass gives ``g``
(detached), a second pass on a fresh loss with ``create_graph=True`` gives ``z = g · ∇L`` and
``∂z/∂θ = Hg``. Both ``g`` and ``H`` are averaged over ``ctx.batches``.

Conventions here:

* **Temperature.** The paper divides the logits by ``T = 200`` before the loss. The scorer takes
  ``ctx.loss`` as given: for GraSP the domain adapter must supply, in ``ctx.loss``, the loss *with
  its logits divided by* :data:`TEMPERATURE`, e.g. ``F.cross_entropy(model(x) / TEMPERATURE, y)``.
  (A plain ``ctx.loss`` gives GraSP at ``T = 1``.)
* **Class balance.** The paper scores on 10 examples of every class (``GraSP_fetch_data`` in the
  reference code, github.com/alecwangcq/GraSP, ``pruner/GraSP.py``; ``samples_per_class: 10`` in its
  CIFAR configs). The scorer uses ``ctx.batches`` as given; the experiment
  (:func:`tickets.prune_at_init.scoring_batches_for`) fills them with the domain's
  :meth:`~tickets.domain.Domain.balanced_scoring_batches`: ``pruning.scoring_batches`` batches of
  exactly ``pruning.samples_per_class`` (default :data:`SAMPLES_PER_CLASS`) examples of every
  class. A domain without classes (regression, language modelling, RL) gives none, and GraSP
  scores on its ordinary scoring batches (the ticket's ``found.batches`` says which).
  :func:`class_balanced` builds such a batch from ordinary dict batches.
* **Mask.** The scores are those of the masked network: pruned weights are zero and are not
  parameters of it, so ``g`` is restricted to the surviving weights (``Hg = H (g ⊙ m)``) and the
  pruned weights score 0.
* The model is scored in eval mode on a deep copy; the caller's model is left untouched; scores are
  CPU float64 tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .at_init import require_model, scoring_copy, to_scores
from .scorers import Scores, ScoringContext
from .snip import LossFn, _check_inputs, batch_gradient

TEMPERATURE = 200.0  # the paper's T: the scoring loss GraSP gets divides the logits by it
SAMPLES_PER_CLASS = 10  # the paper's sample: 10 examples of each class


def hessian_gradient_product(model: nn.Module, params: Mapping[str, nn.Parameter], batches: Sequence[Any],
                             loss: LossFn, g: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``H g`` (``H``: the Hessian of ``loss`` w.r.t. ``params``, averaged over ``batches``) by
    double back-propagation. Fused attention kernels have no second derivative, so scaled
    dot-product attention runs on its math kernel here (transformers)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        return _hessian_gradient_product(model, params, batches, loss, g)


def _hessian_gradient_product(model, params, batches, loss, g) -> dict[str, torch.Tensor]:
    names = list(params)
    tensors = [params[n] for n in names]
    total = [torch.zeros_like(p) for p in tensors]
    for batch in batches:
        value = loss(model, batch)
        grads = torch.autograd.grad(value, tensors, create_graph=True, allow_unused=True)
        z = sum((g[n] * gr).sum() for n, gr in zip(names, grads) if gr is not None)
        if not isinstance(z, torch.Tensor) or not z.requires_grad:
            continue  # the loss is linear in every prunable weight: Hg = 0
        hg = torch.autograd.grad(z, tensors, allow_unused=True)
        for acc, h in zip(total, hg):
            if h is not None:
                acc.add_(h.detach())
    return {n: t / len(batches) for n, t in zip(names, total)}


def grasp_scores(model: nn.Module, prunable: Mapping[str, nn.Parameter], batches: Sequence[Any], loss: LossFn,
                 mask: Mapping[str, torch.Tensor] | None = None, *, train_mode: bool = False) -> Scores:
    """The paper's ``S = -θ ⊙ Hg`` of the masked network (GraSP prunes the **highest** ``S``).
    ``loss`` should already divide the logits by :data:`TEMPERATURE`."""
    batches = _check_inputs("GraSP", batches, loss)
    work, params = scoring_copy(model, prunable, mask, train_mode=train_mode)
    g = batch_gradient(work, params, batches, loss)
    if mask is not None:
        g = {n: t * mask[n].to(device=t.device, dtype=t.dtype) if n in mask else t for n, t in g.items()}
    hg = hessian_gradient_product(work, params, batches, loss, g)
    return to_scores({n: -params[n].detach() * hg[n] for n in params})


def grasp(ctx: ScoringContext) -> Scores:
    """The registered ``grasp`` scorer: the importance ``-S = θ ⊙ Hg``, so that pruning the lowest
    importance removes the weights with the highest GraSP score ``S``."""
    _check_inputs("GraSP", ctx.batches, ctx.loss)
    model, prunable = require_model(ctx, "GraSP")
    s = grasp_scores(model, prunable, ctx.batches, ctx.loss, ctx.mask)  # type: ignore[arg-type]
    return {n: -t for n, t in s.items()}


def class_balanced(batches: Sequence[Mapping[str, torch.Tensor]], labels_key: str = "labels",
                   per_class: int = SAMPLES_PER_CLASS, num_classes: int | None = None) -> dict[str, torch.Tensor]:
    """One batch holding the first ``per_class`` examples of every class met in ``batches`` (dicts
    of tensors sharing their first dimension), in the order met. With ``num_classes``, every class
    ``0 .. num_classes - 1`` must reach ``per_class`` examples (else ``ValueError``) and reading
    stops once all have."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    counts: dict[int, int] = {}
    parts: list[dict[str, torch.Tensor]] = []
    for batch in batches:
        if labels_key not in batch:
            raise KeyError(f"class_balanced: batch has no {labels_key!r} (keys: {', '.join(batch)})")
        labels = batch[labels_key].reshape(-1).tolist()
        take = []
        for i, label in enumerate(labels):
            if counts.get(label, 0) < per_class:
                counts[label] = counts.get(label, 0) + 1
                take.append(i)
        if take:
            idx = torch.tensor(take)
            parts.append({k: v[idx.to(v.device)] for k, v in batch.items()})
        if num_classes is not None and all(counts.get(c, 0) >= per_class for c in range(num_classes)):
            break
    if num_classes is not None:
        short = {c: counts.get(c, 0) for c in range(num_classes) if counts.get(c, 0) < per_class}
        if short:
            raise ValueError(f"class_balanced: fewer than {per_class} examples of classes {short}")
    if not parts:
        raise ValueError("class_balanced: no examples in the batches")
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
