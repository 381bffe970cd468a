"""Linear mode connectivity and instability (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

From the weights θk of the dense run at iteration k (the ticket: θk with its mask held), two
copies are trained to the end of the budget under different SGD noise (the domain's
``train(seed=...)``: data order, augmentation, dropout), and evaluated at evenly spaced points
θ(α) = (1 − α) θA + α θB of the straight line between them. The *instability* is the error
barrier: the highest error along the path minus the mean of the two ends' errors, where "error" is
the primary metric oriented so that higher is worse (1 − accuracy; perplexity; −return), so the
barrier is in the metric's own units. A network is stable at k when the barrier is ~0.

Along the path every parameter and every floating-point buffer is interpolated, BatchNorm's
running statistics included, as in the paper; integer buffers (``num_batches_tracked``) come from
the nearer end. ``recompute_bn=True`` instead re-estimates each BatchNorm layer's statistics at
every point from training batches (an average over them, the layer in training mode), which removes
the barrier that interpolated statistics alone can cause in deep networks.

θk is replayed, not stored: the dense run is retrained from its saved θ0 with its own seed and
stopped at step k, which reproduces its trajectory bit for bit (the runner seeds every step from
(seed, step)); where k is the run's ``rewind.step``, the replay is checked against the saved θk.
Torch-only, through the :class:`tickets.domain.Domain` interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .divergence import finite
from .enforce import MaskEnforcer
from .errors import DivergedError
from .masks import Mask
from .rewind import capture, load_state

POINTS = 30


class _Reached(Exception):
    """Raised from ``on_step`` to stop a replay at step k."""


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """θ(α) between two full states; exact at both ends (``torch.lerp`` computes from the nearer one)."""
    if set(a) != set(b):
        raise ValueError(f"the two states differ in entries: {sorted(set(a) ^ set(b))[:5]}")
    out = {}
    for name, x in a.items():
        y = b[name]
        if x.is_floating_point():
            out[name] = torch.lerp(x, y.to(x.dtype), float(alpha))
        else:
            out[name] = (x if alpha < 0.5 else y).clone()
    return out


def badness(value: float, higher_is_better: bool) -> float:
    """The metric oriented so that higher is worse: 1 − value for a higher-is-better metric."""
    return 1.0 - value if higher_is_better else value


def barrier(errors: Sequence[float]) -> float:
    """The highest error along the path minus the mean of the two ends' errors (never below 0: the
    ends are on the path)."""
    if len(errors) < 2:
        raise ValueError("a path needs at least its two ends")
    if not all(finite(e) for e in errors):
        raise ValueError(f"a non-finite error on the path: {list(errors)}")
    return max(errors) - (errors[0] + errors[-1]) / 2


def over_worse_end(errors: Sequence[float]) -> float:
    """The highest error along the path minus the worse end's: what the path adds beyond the worse of
    the two networks. The barrier is at least half the gap between the ends (|e_A − e_B| / 2) even on a
    path without any bump; where the copies end far apart (RL returns under different seeds), this
    one separates a bump from unequal ends."""
    barrier(errors)  # the same checks
    return max(errors) - max(errors[0], errors[-1])


@dataclass
class PathResult:
    k: int
    level: int
    alphas: list[float]
    metrics: list[dict[str, float]]  # the domain's test metrics at each point
    errors: list[float]  # the primary metric oriented so that higher is worse
    instability: float  # barrier(errors)
    loss_instability: float | None = None  # the same for the test loss, where the domain reports it
    seeds: tuple[int, int] = (0, 0)
    over_worse_end: float = 0.0  # over_worse_end(errors)
    extra: dict[str, Any] = field(default_factory=dict)


def replay_to(domain, model: nn.Module, *, steps: int, k: int, seed: int) -> dict[str, torch.Tensor]:
    """Train ``model`` (at θ0) as the dense run does and return its state at step ``k`` (θk)."""
    return replay_states(domain, model, steps=steps, ks=[k], seed=seed)[k]


def replay_states(domain, model: nn.Module, *, steps: int, ks: Sequence[int], seed: int
                  ) -> dict[int, dict[str, torch.Tensor]]:
    """θk for every k in ``ks``, from one replay of the dense run stopped at the largest."""
    states = {0: capture(model)} if 0 in ks else {}
    wanted, last = set(ks) - {0}, max(ks)
    if not wanted:
        return states
    reached: list[int] = []

    def on_step(step: int) -> None:
        reached.append(step)
        if step in wanted:
            states[step] = capture(model)
        if step >= last:
            raise _Reached

    try:
        domain.train(model, steps=steps, start_step=0, seed=seed, on_step=on_step, eval_every=0)
    except _Reached:
        pass
    missed = sorted(wanted - set(states))
    if missed:
        near = next((s for s in reached if s >= missed[0]), None)
        raise ValueError(f"k={missed[0]}: the {domain.name} loop reports step {near} first, not {missed[0]}; "
                         f"choose multiples of {domain.step_multiple()} below train.steps ({steps})")
    return states


def train_copy(domain, model: nn.Module, prunable: Mapping[str, nn.Parameter], mask: Mask, *, steps: int, k: int,
               seed: int) -> dict[str, torch.Tensor]:
    """One copy: ``model`` (at θk) trained from step k to ``steps`` with the mask held; its state."""
    with MaskEnforcer(prunable, mask):
        domain.train(model, steps=steps, start_step=k, seed=seed, eval_every=0)
    return capture(model)


@torch.no_grad()
def recompute_batchnorm(domain, model: nn.Module, batches: list[Any]) -> None:
    """Each BatchNorm layer's running statistics re-estimated as the average over ``batches``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    was_training = model.training
    model.train()
    try:
        for batch in batches:
            domain.scoring_loss(model, batch)
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.train(was_training)


def evaluate_path(domain, model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], *,
                  points: int = POINTS, bn_batches: list[Any] | None = None) -> tuple[list[float], list[dict]]:
    """The domain's test metrics at ``points`` evenly spaced α in [0, 1], the ends included."""
    if points < 2:
        raise ValueError(f"points: at least the two ends, got {points}")
    alphas = [i / (points - 1) for i in range(points)]
    metrics = []
    for alpha in alphas:
        load_state(model, interpolate(a, b, alpha))
        if bn_batches is not None:
            recompute_batchnorm(domain, model, bn_batches)
        metrics.append(dict(domain.evaluate(model, split="test")))
    return alphas, metrics


def path_result(domain, k: int, level: int, alphas: list[float], metrics: list[dict], seeds: tuple[int, int]
                ) -> PathResult:
    primary = domain.primary_metric
    bad = [a for a, m in zip(alphas, metrics) if not finite(m.get(primary))]
    if bad:  # diverged copies: no barrier to record
        raise DivergedError(f"lmc level {level}, k={k}: the test {primary} is not finite at α = {bad[0]:g} on the path "
                            "between the two trained copies (a copy diverged); nothing is recorded")
    errors = [badness(m[primary], domain.higher_is_better) for m in metrics]
    losses = [m.get("loss") for m in metrics]
    loss_barrier = barrier(losses) if all(finite(x) for x in losses) else None
    return PathResult(k, level, alphas, metrics, errors, barrier(errors), loss_barrier, seeds, over_worse_end(errors))
