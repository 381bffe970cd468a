"""Controls: the conditions trained beside each level's ticket under the same budget, so that a
ticket's result means something. A control is one registered part (``registry.controls``): its
mask (from the ticket's), whether it starts from the level's start weights or from fresh ones,
and whether it gets a fresh optimizer.

  reinit               the ticket's mask on freshly initialised weights (Frankle & Carbin 2019)
  random_mask          a random mask with the ticket's per-layer sparsity, on the start weights
  shuffled_mask        the mask permuted within each output unit (same fan-in), on the start weights
  random_mask_uniform  a random mask of the ticket's overall sparsity, every layer equally dense
  random_mask_erk      ... with Erdős–Rényi-Kernel layer densities (Evci et al. 2020)
  random_units         structured tickets: as many whole units of every group as the ticket keeps,
                       drawn at random, on the start weights (Prasanna et al. 2020's random heads
                       and neurons; Liu et al. 2019's random channels)

To add one, subclass :class:`Control` in a module and register it: see the README ("Adding a
control").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import torch

from .density_allocation import allocate
from .masks import Mask
from .rewind import random_mask, shuffled_mask


class Control:
    """The ticket's own mask on the level's start weights, with its optimizer state; subclasses
    change what differs."""

    start: ClassVar[Literal["start", "fresh"]] = "start"  # "fresh": newly drawn weights (the stage seed)
    fresh_optimizer: ClassVar[bool] = False  # True: never the optimizer state captured at θk
    # True: the mask is drawn over the run's structured units (pruning.structure: units), by
    # unit_mask instead of mask; refused before any work in a run without them
    needs_units: ClassVar[bool] = False

    def mask(self, ticket: Mask, generator: torch.Generator, output_axes: Mapping[str, int]) -> Mask:
        """The control's mask, from the ticket's (draw randomness from ``generator`` only)."""
        return ticket

    def unit_mask(self, ticket: Mask, generator: torch.Generator, units, shapes: Mapping[str, tuple[int, ...]]
                  ) -> Mask:
        """For ``needs_units`` controls: the mask from the ticket's and the run's unit groups
        (``tickets.structured.UnitGraph`` or ``tickets.unit_slices.SlicedUnits``) over ``shapes``."""
        raise NotImplementedError(f"{type(self).__name__} sets needs_units but defines no unit_mask")


class Reinit(Control):
    # New random weights: moments accumulated along θ0 -> θk belong to another trajectory.
    start = "fresh"
    fresh_optimizer = True


class RandomMask(Control):
    def mask(self, ticket, generator, output_axes):
        return random_mask(ticket, generator)


class ShuffledMask(Control):
    def mask(self, ticket, generator, output_axes):
        return shuffled_mask(ticket, generator, output_axes)


class RandomUnits(Control):
    needs_units = True

    def mask(self, ticket, generator, output_axes):
        raise TypeError("random_units draws over the run's units: the runner calls unit_mask")

    def unit_mask(self, ticket, generator, units, shapes):
        dead = {}
        for group in units.groups:
            kept = len(units.alive_units(ticket, group))
            chosen = set(torch.randperm(group.size, generator=generator)[:kept].tolist())
            dead[group.root] = [i for i in range(group.size) if i not in chosen]
        return units.mask_without(dead, shapes)


class AllocatedRandomMask(Control):
    """A random mask keeping the ticket's total number of weights, spread over layers by an
    allocation rule instead of the ticket's own per-layer densities."""

    allocation: ClassVar[str]

    def mask(self, ticket, generator, output_axes):
        counts = allocate({n: tuple(m.shape) for n, m in ticket.items()}, sum(ticket.kept().values()), self.allocation)
        out = {}
        for name, m in ticket.items():
            flat = torch.zeros(m.numel(), dtype=torch.bool)
            flat[torch.randperm(m.numel(), generator=generator)[: counts[name]]] = True
            out[name] = flat.reshape(m.shape)
        return Mask(out)


class UniformRandomMask(AllocatedRandomMask):
    allocation = "uniform"


class ERKRandomMask(AllocatedRandomMask):
    allocation = "erk"


def check_control_mask(name: str, mask: Mask, shapes: dict[str, torch.Size]) -> None:
    """A control's mask covers exactly the prunable weights, shape for shape."""
    if set(mask) != set(shapes):
        raise RuntimeError(f"control {name!r} gave a mask for {sorted(set(mask) ^ set(shapes))[:5]} that does not "
                           "match the prunable weights")
    for n, m in mask.items():
        if tuple(m.shape) != tuple(shapes[n]) or m.dtype != torch.bool:
            raise RuntimeError(f"control {name!r} gave a {m.dtype} mask of shape {tuple(m.shape)} for {n}, "
                               f"not bool {tuple(shapes[n])}")
