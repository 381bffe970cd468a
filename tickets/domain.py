"""The domain adapter protocol and its contract check.

A domain (vision, NLP, RL, ...) tells the core how to build a model, which of its parameters are
prunable, how to train it (its own loop: an accelerate loop, stable-baselines3's ``learn``, a
``Trainer``) and how to evaluate it. The core handles masks, rewinding, controls and files.
"""

from __future__ import annotations

import abc
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from .selection import default_prunable

StepCallback = Callable[[int], None]


@dataclass
class TrainResult:
    steps: int  # the step count reached (in the domain's unit: iterations, environment steps)
    history: list[dict[str, float]] = field(default_factory=list)  # validation records, each with "step"


class Domain(abc.ABC):
    """Base class of domain adapters. Subclasses set ``name``, ``Config`` (a dataclass built
    strictly from the experiment config's ``domain`` mapping) and ``primary_metric``."""

    name: ClassVar[str]
    Config: ClassVar[type]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True

    def __init__(self, config: Any):
        self.config = config

    def check_config(self) -> None:
        """Check the settings that need the data or the environment (e.g. ``batch_size`` against
        the training split's size), before any work: the runner calls it once, when it is built.
        Raise ``ConfigError`` naming the dotted key (``config.domain.batch_size: ...``). The
        default checks nothing."""

    @abc.abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """A freshly initialised model; the same seed gives the same weights."""

    def build_fresh_model(self, seed: int) -> nn.Module:
        """The architecture of ``build_model`` with freshly drawn weights (the ``reinit`` control's
        draws). A domain whose θ0 is pre-trained overrides it: ``build_model`` loads the checkpoint."""
        return self.build_model(seed)

    def reinit_scope(self) -> Literal["all", "prunable"]:
        """What the ``reinit`` control draws afresh: ``all`` weights (θ0 is itself a random draw),
        or only the ``prunable`` ones, the rest kept at the ticket's start weights (θ0 is
        pre-trained, so re-drawing embeddings or norms would change more than the ticket's values)."""
        return "all"

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The parameters IMP may prune (before the config's include/exclude patterns)."""
        return default_prunable(model)

    @abc.abstractmethod
    def train(self, model: nn.Module, *, steps: int, start_step: int = 0, seed: int = 0,
              on_step: StepCallback | None = None, eval_every: int = 0,
              optimizer_state: dict[str, torch.Tensor] | None = None) -> TrainResult:
        """Train ``model`` in place from ``start_step`` up to ``steps``, calling ``on_step(step)``
        after every optimizer step with the step count reached, and evaluating on the
        validation split every ``eval_every`` steps (0: only at the end). Training starts with
        fresh optimizer(s); a domain that ``supports_optimizer_state`` seeds them with
        ``optimizer_state`` when given (the core passes it only to such domains)."""

    # ---- optimizer state at the rewind point (optional; rewind.optimizer) -----------------------
    supports_optimizer_state: ClassVar[bool] = False

    def optimizer_state(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The live state of the optimizer(s) training ``model``, as flat named tensors storable
        with safetensors (see ``tickets.optim.optimizer_tensors``); called from ``on_step``
        during ``train``. None where the domain does not expose it."""
        return None

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        """Metrics on ``split``; must include ``primary_metric``."""

    def summarize(self, history: list[dict[str, float]]) -> dict[str, Any]:
        """Extra per-stage figures from the validation history, for the results table (e.g. RL's
        steps to reach a return threshold)."""
        return {}

    def tied_parameters(self, model: nn.Module) -> dict[str, str]:
        """Parameters that are not pruned themselves but follow a prunable one's mask
        (follower name -> leader name), e.g. a target network that tracks its online network."""
        return {}

    def step_multiple(self) -> int:
        """The loop reports steps in multiples of this (RL: one rollout); rewind steps must be one."""
        return 1

    def check_budget(self, steps: int, rewind_step: int = 0) -> None:
        """Check ``train.steps`` and ``rewind.step`` against how the loop steps, before any work
        (RL: whole rollouts only); raise ``ConfigError`` naming the key. The default checks nothing."""

    # ---- what pruning-at-initialisation scorers may ask for (optional) -------------------------
    forward_ones_unavailable: ClassVar[str] = "the domain supplies no all-ones input"
    # parameters added to activations that the path check must treat as biases (name patterns)
    path_bias_patterns: ClassVar[tuple[str, ...]] = ()

    def scoring_batches(self, n: int, seed: int, *, model: nn.Module | None = None) -> list[Any] | None:
        """``n`` training batches for data-dependent scorers (SNIP, GraSP); None: none to give.
        ``model``: the network being scored, at θ0 (the core always passes it), for a domain
        whose data depend on the model (RL: the episodes its policy plays)."""
        return None

    def balanced_scoring_batches(self, samples_per_class: int, n: int, seed: int) -> list[Any] | None:
        """``n`` class-balanced training batches for GraSP (Wang et al. 2020 score on 10 examples
        of every class): each holds exactly ``samples_per_class`` examples of every class of the
        training split, drawn from ``seed``. None: the domain has no classes (regression, language
        modelling, RL), and GraSP scores on the ordinary :meth:`scoring_batches` instead."""
        return None

    def output_axes(self, model: nn.Module) -> dict[str, int]:
        """For each prunable weight, the axis that indexes its output units (neurons, channels):
        the ``shuffled_mask`` control permutes within each slice along it, keeping every unit's
        fan-in. 0 for torch's layers (``Linear``, ``Conv``: out x in); a domain whose layers store
        weights in x out (GPT-2's ``Conv1D``) says 1 for them."""
        return {name: 0 for name in self.prunable(model)}

    def structured_units(self, model: nn.Module, prunable: dict[str, nn.Parameter]) -> Any | None:
        """The model's units for ``pruning.structure: units`` where they are not output channels
        (a :class:`tickets.unit_slices.SlicedUnits`: a transformer's heads and feed-forward
        neurons). None, the default: Torch-Pruning traces the couplings of every Linear and Conv."""
        return None

    def save_native(self, model: nn.Module, directory: Path) -> dict[str, Any]:
        """Write ``model`` (a dense-small export) in the form the domain's own library loads, under
        ``directory`` (which does not exist yet), and return ``{"format", "path", "load"}``; or
        ``{"skipped": why}`` where that form cannot hold this model (nothing written). The default:
        none beyond the export's own safetensors state and config."""
        return {"skipped": f"the {self.name} domain's usual form is the export's own weights.safetensors and "
                           "config.yaml (tickets.export.load_exported)"}

    def load_native(self, directory: Path) -> nn.Module:
        """The model :meth:`save_native` wrote, loaded by the domain's library (the export checks
        it computes what the masked ticket computes)."""
        raise NotImplementedError(f"the {self.name} domain writes no native form")

    def scoring_loss(self, model: nn.Module, batch: Any, *, temperature: float = 1.0) -> torch.Tensor:
        """The training loss on a scoring batch, logits divided by ``temperature`` (GraSP: 200)."""
        raise ValueError(f"domain {self.name!r} supplies no scoring batches, so no scoring loss")

    def forward_ones(self, model: nn.Module) -> torch.Tensor | None:
        """The model's output on an all-ones input of its input shape (SynFlow, path checks);
        None where inputs are not dense tensors (``forward_ones_unavailable`` says why)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Where a ticket was found (data/task/environment, optimizer), for ticket.json."""
        return {"domain": self.name, **asdict(self.config)}

    def model_identity(self, model: nn.Module) -> dict[str, Any]:
        cls = type(model)
        return {"class": f"{cls.__module__}.{cls.__qualname__}"}


def forward_ones_of(domain: Domain, model: nn.Module) -> Callable[[nn.Module], torch.Tensor] | None:
    """``domain.forward_ones`` if the domain gives an all-ones forward for ``model``, else None
    (probed on an eval-mode copy, so the model's BatchNorm statistics are untouched)."""
    import copy

    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        return domain.forward_ones if domain.forward_ones(probe) is not None else None


def check_domain(domain: Domain, steps: int = 2) -> dict[str, Any]:
    """Run a domain through the whole contract: build, select, mask, train, check pruned weights
    stay zero, evaluate, save and reload a ticket. Raises ``AssertionError`` naming the broken
    rule; returns the evaluation metrics."""
    from .artifact import Ticket
    from .enforce import MaskEnforcer
    from .masks import Mask
    from .rewind import capture
    from .scorers import ScoringContext, prune, random
    from .selection import Group

    def require(ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(f"domain {domain.name!r}: {what}")

    model = domain.build_model(seed=0)
    require(isinstance(model, nn.Module), "build_model must return a torch.nn.Module")
    again = domain.build_model(seed=0)
    require(all(torch.equal(a, b) for a, b in zip(capture(model).values(), capture(again).values())),
            "build_model(seed) must be deterministic")
    prunable = domain.prunable(model)
    names = dict(model.named_parameters())
    require(bool(prunable), "prunable() returned no parameter")
    require(all(n in names and names[n] is p for n, p in prunable.items()),
            "prunable() must map the model's own parameter names to its Parameter objects")

    mask = Mask.ones_like({n: p.detach() for n, p in prunable.items()})
    ctx = ScoringContext(weights={n: p.detach() for n, p in prunable.items()}, mask=mask)
    mask = prune(random(ctx), mask, [Group("all", 0.5, tuple(prunable))], scope="layer")
    seen: list[int] = []
    opt_states: list[Any] = []

    def on_step(step: int) -> None:
        seen.append(step)
        if domain.supports_optimizer_state:
            opt_states[:] = [domain.optimizer_state(model)]

    with MaskEnforcer(prunable, mask):
        result = domain.train(model, steps=steps, seed=0, on_step=on_step)
    require(isinstance(result, TrainResult), "train() must return a TrainResult")
    require(len(seen) > 0 and seen == sorted(seen), f"on_step must be called with increasing steps, got {seen}")
    if domain.supports_optimizer_state:
        state = opt_states[0]
        require(isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values()),
                "optimizer_state() during training must give a non-empty dict of tensors")
        with MaskEnforcer(prunable, mask):  # seeding a fresh optimizer with it (no steps left to take)
            domain.train(model, steps=result.steps, start_step=result.steps, seed=0, optimizer_state=state)
    for n, p in prunable.items():
        require(bool((p.detach().cpu()[~mask[n]] == 0).all()), f"pruned weights of {n} are not zero after training")
    metrics = domain.evaluate(model, split="test")
    require(domain.primary_metric in metrics, f"evaluate() lacks the primary metric {domain.primary_metric!r}")
    require(all(isinstance(v, float) for v in metrics.values()), "evaluate() values must be floats")
    require(math.isfinite(metrics[domain.primary_metric]), "primary metric is not finite")

    with tempfile.TemporaryDirectory() as tmp:
        Ticket(mask, capture(model), {"domain": domain.name}).save(tmp)
        loaded = Ticket.load(tmp)
        fresh = domain.build_model(seed=1)
        applied = loaded.apply(fresh, domain.prunable(fresh))
        require(applied == mask, "a saved ticket must reload with the same mask")
        fresh_params = dict(fresh.named_parameters())
        require(all(torch.equal(fresh_params[n].detach().cpu(), p.detach().cpu()) for n, p in prunable.items()),
                "a reloaded ticket must restore its rewind weights")
    return metrics
