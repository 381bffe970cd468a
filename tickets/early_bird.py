"""Early-Bird tickets (You et al., ICLR 2020, "Drawing Early-Bird Tickets").

A winning ticket's mask settles early in training: pruning the network at a fixed density every
few steps gives masks that soon stop changing. Early-Bird watches that and "draws" the ticket as
soon as the mask has been stable over a window, long before training ends.

* :func:`mask_distance`: normalised Hamming distance between two masks.
* :class:`EarlyBird`: the detector, fed one mask per observation.
* :func:`magnitude_mask` (global unstructured magnitude) and :func:`bn_channel_mask` (network
  slimming: BatchNorm scaling factors |γ| ranked globally) produce the masks, both pure functions
  of the current weights; :func:`channel_to_weight_mask` turns a channel ticket into an
  unstructured mask on the conv weights, so the rest of the framework can train it.
* :func:`slimming_penalty`: the L1 penalty λ·Σ|γ| of network slimming (Liu et al., ICCV 2017) that
  Early-Bird trains with, as gradient hooks.
* :class:`EarlyBirdMonitor`: glue for loops that only offer an ``on_step(step)`` callback; it
  raises :class:`TicketDrawn` so the caller can stop training wherever the loop lives.
* :class:`EarlyBirdSearch`: several monitors (one per density) on one training run; it raises
  :class:`AllTicketsDrawn` once every one of them has drawn.

The draw condition
------------------
The paper (You et al. 2020, arXiv:1909.11957, Algorithm 1) measures the mask distance between
masks drawn at successive epochs, keeps the recent distances in a FIFO queue of length ``l`` and
draws the ticket once they are all below ``ε``. Its released code (github.com/RICE-EIC/
Early-Bird-Tickets, ``main.py``, class ``EarlyBird``, commit 4a16ae0) keeps instead the last
``epoch_keep = 5`` *masks* (``put``), measures the distance of the newest to each of the others
(``cal_dist``: ``1 - mean(mask_i == mask_j)``, the normalised Hamming distance) and draws unless
one of them exceeds 0.1 (``early_bird_emerge``). We implement the code's definition, with a strict
inequality:

    with ``M_{t-l+1}, ..., M_t`` the last ``l = window`` masks observed (oldest first), the ticket
    is drawn at the first observation ``t`` where the FIFO is full (``l`` masks observed) and
    ``d(M_t, M_i) < ε`` for every ``i`` in ``t-l+1 .. t-1`` (the ``l - 1`` older masks).

The two definitions differ: consecutive distances all below ε allow a slow drift of up to
``(l-1)·ε`` across the window, which ours rejects; ours implies consecutive distances below ``2ε``
(triangle inequality). Defaults are the code's: ``l = 5``, ``ε = 0.1``. The reference code masks
by a threshold (``|γ| > thre``, ``thre`` the sorted value at the pruned fraction); our producers
are exact-k (:mod:`tickets.topk`, ties to the earlier position), so every mask has the same density.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from .masks import Mask
from .topk import keep_top

BATCHNORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_CHANNEL_PRODUCERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def mask_distance(a: Mask, b: Mask) -> float:
    """Normalised Hamming distance: the fraction of positions (over all tensors) where the masks
    differ, in [0, 1]. Masks must have the same names and shapes."""
    return a.hamming(b)


class EarlyBird:
    """The Early-Bird detector: ``observe`` one mask at a time.

    ``observe(mask, step)`` appends ``mask`` to a FIFO of the last ``window`` masks and returns
    ``True`` the first time the FIFO is full and the distance between the newest mask and each of
    the ``window - 1`` others is strictly below ``epsilon`` (see the module docstring for how this
    relates to the paper). It then records ``drawn_step`` and ``drawn_mask``; every later call
    returns ``True`` at once and changes nothing (the drawn ticket stays the first one).

    ``distances`` keeps one JSON-serialisable record per observation before the draw:
    ``{"step", "steps" (of the older masks in the FIFO, oldest first), "distances" (newest vs each
    of them, same order), "max_distance" (None for the first observation), "full"}``.
    """

    def __init__(self, window: int = 5, epsilon: float = 0.1):
        if int(window) != window or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.window = int(window)
        self.epsilon = float(epsilon)
        self._fifo: deque[tuple[int, Mask]] = deque(maxlen=self.window)
        self.distances: list[dict[str, Any]] = []
        self.drawn_step: int | None = None
        self.drawn_mask: Mask | None = None

    @property
    def drawn(self) -> bool:
        return self.drawn_step is not None

    def observe(self, mask: Mask, step: int) -> bool:
        if self.drawn:
            return True
        if self._fifo and self._fifo[-1][1].shapes() != mask.shapes():
            raise ValueError("mask differs from the previous ones in parameter names or shapes")
        self._fifo.append((int(step), mask))
        older = list(self._fifo)[:-1]
        dists = [mask_distance(mask, m) for _, m in older]
        full = len(self._fifo) == self.window
        self.distances.append({
            "step": int(step),
            "steps": [s for s, _ in older],
            "distances": dists,
            "max_distance": max(dists) if dists else None,
            "full": full,
        })
        if full and all(d < self.epsilon for d in dists):
            self.drawn_step = int(step)
            self.drawn_mask = mask
            return True
        return False


# ----------------------------------------------------------------------------- mask producers

def _keep_count(density: float, total: int) -> int:
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density!r}")
    return min(total, int(density * total + 0.5))  # round half up, as tickets.scorers.prune


def _top_k(scores: Mapping[str, torch.Tensor], density: float, *, absolute: bool = False) -> Mask:
    """Keep exactly ``round(density * total)`` entries (round half up) with the highest scores
    (``|score|`` with ``absolute``), ranked across all tensors; ties go to the earlier entry
    (tensor order, then flat index): the rule of :mod:`tickets.topk`."""
    total = sum(t.numel() for t in scores.values())
    return Mask(keep_top(scores, _keep_count(density, total), absolute=absolute))


def magnitude_mask(prunable: Mapping[str, torch.Tensor], density: float) -> Mask:
    """Global unstructured magnitude mask: exactly ``round(density * total)`` (round half up) of
    all the given weights survive, those of largest ``|w|`` across every tensor together."""
    if not prunable:
        raise ValueError("magnitude_mask: no prunable parameters given")
    return _top_k({n: w.detach() for n, w in prunable.items()}, density, absolute=True)


def batchnorm_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> weight (γ) of every affine BatchNorm of ``model``, in ``named_modules()`` order."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, BATCHNORMS) and getattr(module, "weight", None) is not None:
            out[f"{name}.weight" if name else "weight"] = module.weight
    return out


def bn_channel_mask(model: nn.Module, density: float) -> Mask:
    """Network-slimming channel mask: the ``|γ|`` of every BatchNorm (1d/2d/3d/sync) weight ranked
    globally; exactly ``round(density * channels)`` (round half up) channels survive. One bool
    vector per BatchNorm weight name (e.g. ``'layers.0.bn.weight'``)."""
    weights = batchnorm_weights(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no affine BatchNorm layer to rank")
    return _top_k({n: w.detach() for n, w in weights.items()}, density, absolute=True)


def _producer_of(modules: list[tuple[str, nn.Module]], index: int) -> tuple[str, nn.Module]:
    """The nearest module before ``modules[index]`` (in ``named_modules()`` order) that owns
    parameters; containers and parameter-free modules (activations, pooling, dropout) are skipped."""
    for name, module in reversed(modules[:index]):
        if next(module.parameters(recurse=False), None) is not None:
            return name, module
    raise ValueError(f"no module with parameters precedes {modules[index][0]!r}")


def channel_to_weight_mask(model: nn.Module, channel_mask: Mask, *,
                           prunable: Mapping[str, Any] | None = None) -> Mask:
    """Expand a BatchNorm channel mask to the output channels of the layer each BatchNorm
    normalises: the conv (or linear, for BatchNorm1d) that directly precedes it in
    ``model.named_modules()`` order (skipping parameter-free modules) and whose output channel
    count equals the BatchNorm's ``num_features``; anything else there is an error. A pruned channel
    zeroes that layer's whole output-channel slice ``weight[c]``.

    Registration order stands in for the data flow: a model that registers its modules in an order
    other than the forward's (all convs first, then all norms) is not supported.

    Without ``prunable`` the result covers only those conv weights; with it, the result covers
    exactly the names of ``prunable`` (all ``True`` except the expanded conv weights, which must
    be among them). Masking the conv alone leaves the channel at its BatchNorm's β (a constant);
    for exact removal also mask γ and β, e.g. ``Mask({**weight_mask, **channel_mask})`` with the
    BatchNorm weights in the prunable set.
    """
    modules = list(model.named_modules())
    index = {name: i for i, (name, _) in enumerate(modules)}
    out: dict[str, torch.Tensor] = {}
    for key, keep in channel_mask.items():
        bn_name = key[:-len(".weight")] if key.endswith(".weight") else None
        if bn_name is None or bn_name not in index or not isinstance(modules[index[bn_name]][1], BATCHNORMS):
            raise KeyError(f"{key!r} is not the weight of a BatchNorm of {type(model).__name__}")
        bn = modules[index[bn_name]][1]
        if tuple(keep.shape) != (bn.num_features,):
            raise ValueError(f"channel mask {key!r} has shape {tuple(keep.shape)}, "
                             f"the BatchNorm has {bn.num_features} channels")
        conv_name, conv = _producer_of(modules, index[bn_name])
        n_out = getattr(conv, "out_channels", getattr(conv, "out_features", None))
        if not isinstance(conv, _CHANNEL_PRODUCERS) or n_out != bn.num_features:
            raise ValueError(f"{bn_name!r} ({bn.num_features} channels) is preceded by {conv_name!r} "
                             f"({type(conv).__name__}), not by a conv/linear with {bn.num_features} "
                             "output channels")
        wname = f"{conv_name}.weight" if conv_name else "weight"
        rows = keep.reshape(-1, *([1] * (conv.weight.dim() - 1))).expand(conv.weight.shape)
        out[wname] = rows.clone() if wname not in out else out[wname] & rows
    if prunable is None:
        return Mask(out)
    missing = [n for n in out if n not in prunable]
    if missing:
        raise KeyError(f"channel ticket prunes {missing}, which are not in the prunable set")
    return Mask({n: out[n] if n in out else torch.ones(tuple(p.shape), dtype=torch.bool)
                 for n, p in prunable.items()})


# ----------------------------------------------------------------------------- slimming penalty

class PenaltyHandles(list):
    """The hook handles of :func:`slimming_penalty`; ``remove()`` removes them all."""

    def remove(self) -> None:
        for handle in self:
            handle.remove()
        self.clear()


def slimming_penalty(model: nn.Module, lam: float) -> PenaltyHandles:
    """Add ``lam * sign(γ)`` to the gradient of every BatchNorm weight γ as it is computed: the
    (sub)gradient of the network-slimming L1 penalty ``lam * Σ|γ|`` (Liu et al. 2017), with
    ``sign(0) = 0``. It is added once per backward pass through γ, so with gradient accumulation
    over ``n`` micro-batches the penalty counts ``n`` times (scale ``lam`` accordingly).
    Returns the hook handles (a list with a ``remove()`` method)."""
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    weights = batchnorm_weights(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no affine BatchNorm layer to penalise")
    handles = PenaltyHandles()
    for p in weights.values():
        handles.append(p.register_hook(_l1_hook(p, float(lam))))
    return handles


def _l1_hook(p: torch.Tensor, lam: float):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad + lam * torch.sign(p.detach()).to(grad.dtype)
    return hook


# ----------------------------------------------------------------------------- training-loop glue

class TicketDrawn(Exception):
    """Raised by :class:`EarlyBirdMonitor` when the Early-Bird ticket is drawn."""

    def __init__(self, step: int, mask: Mask):
        super().__init__(step, mask)
        self.step = step
        self.mask = mask

    def __str__(self) -> str:
        return f"Early-Bird ticket drawn at step {self.step} (density {self.mask.density():.4f})"


class EarlyBirdMonitor:
    """An ``on_step(step)`` callback that draws an Early-Bird ticket during training.

    Every ``every`` steps it computes the current mask at ``density`` (``mode='magnitude'``: global
    magnitude over ``prunable``; ``mode='bn_channels'``: BatchNorm channels of ``model``, where
    ``prunable`` is unused), feeds it to an :class:`EarlyBird` detector, and when the ticket is drawn
    raises :class:`TicketDrawn` (``stop=True``) or just records it (``stop=False``). It raises at
    most once; later calls do nothing.

    Observations happen whenever the step reaches or passes a multiple of ``every`` (so loops that
    advance by several steps at once, like RL rollouts, are sampled once per interval), and at
    step 0 if called with it. Masks depend only on the weights, so with data-parallel training all
    processes draw at the same step.
    """

    def __init__(self, model: nn.Module, prunable: Mapping[str, torch.Tensor] | None, density: float,
                 every: int, mode: Literal["magnitude", "bn_channels"] = "magnitude",
                 window: int = 5, epsilon: float = 0.1, stop: bool = True):
        if mode not in ("magnitude", "bn_channels"):
            raise ValueError(f"mode must be 'magnitude' or 'bn_channels', got {mode!r}")
        if int(every) != every or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if mode == "magnitude" and not prunable:
            raise ValueError("mode='magnitude' needs the prunable parameters")
        _keep_count(density, 1)  # validates the range
        if mode == "bn_channels" and not batchnorm_weights(model):
            raise ValueError(f"mode='bn_channels': {type(model).__name__} has no affine BatchNorm layer")
        self.model = model
        self.prunable = prunable
        self.density = float(density)
        self.every = int(every)
        self.mode = mode
        self.stop = stop
        self.early_bird = EarlyBird(window, epsilon)
        self._last_bucket: int | None = None

    @property
    def drawn_step(self) -> int | None:
        return self.early_bird.drawn_step

    @property
    def drawn_mask(self) -> Mask | None:
        return self.early_bird.drawn_mask

    @torch.no_grad()
    def current_mask(self) -> Mask:
        if self.mode == "magnitude":
            return magnitude_mask(self.prunable, self.density)
        return bn_channel_mask(self.model, self.density)

    def _due(self, step: int) -> bool:
        bucket = step // self.every
        if self._last_bucket is None:
            due = step == 0 or bucket >= 1
        else:
            due = bucket > self._last_bucket
        self._last_bucket = bucket if self._last_bucket is None else max(bucket, self._last_bucket)
        return due

    def __call__(self, step: int) -> None:
        if self.early_bird.drawn or not self._due(step):
            return
        if self.early_bird.observe(self.current_mask(), step) and self.stop:
            raise TicketDrawn(step, self.early_bird.drawn_mask)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable record of the search, for the results table."""
        eb = self.early_bird
        return {"mode": self.mode, "density": self.density, "every": self.every, "window": eb.window,
                "epsilon": eb.epsilon, "drawn_step": eb.drawn_step, "observations": eb.distances}


class AllTicketsDrawn(Exception):
    """Raised by :class:`EarlyBirdSearch` once every one of its monitors has drawn its ticket."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step

    def __str__(self) -> str:
        return f"every Early-Bird ticket drawn by step {self.step}"


class EarlyBirdSearch:
    """One ``on_step(step)`` callback for several :class:`EarlyBirdMonitor` on the same training
    run, e.g. one per target density: training the dense network once serves them all.

    Each monitor (built with ``stop=False``) sees every step, exactly as it would alone, so it
    draws at the same step and from the same weights as in a run of its own that stopped at its
    draw. ``on_draw(key, monitor)`` is called at each draw, during that step (the model holds the
    weights the ticket was drawn from); once every monitor has drawn, :class:`AllTicketsDrawn` is
    raised so the caller can stop training. Monitors are visited in the mapping's order.
    """

    def __init__(self, monitors: Mapping[Hashable, EarlyBirdMonitor],
                 on_draw: Callable[[Hashable, EarlyBirdMonitor], None] | None = None):
        if not monitors:
            raise ValueError("EarlyBirdSearch needs at least one monitor")
        if any(m.stop for m in monitors.values()):
            raise ValueError("EarlyBirdSearch: build its monitors with stop=False (it stops training itself)")
        self.monitors = dict(monitors)
        self.on_draw = on_draw

    @property
    def done(self) -> bool:
        return all(m.drawn_step is not None for m in self.monitors.values())

    def __call__(self, step: int) -> None:
        for key, monitor in self.monitors.items():
            if monitor.drawn_step is None:
                monitor(step)
                if monitor.drawn_step is not None and self.on_draw is not None:
                    self.on_draw(key, monitor)
        if self.done:
            raise AllTicketsDrawn(step)
