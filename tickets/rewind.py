"""Capture weights at a training step, rewind to them, and build the standard controls."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .masks import Mask

State = dict[str, torch.Tensor]


def capture(model: nn.Module) -> State:
    """A detached CPU copy of every parameter and buffer (the model's full state)."""
    return {n: t.detach().to("cpu", copy=True).contiguous() for n, t in model.state_dict().items()}


@torch.no_grad()
def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into the model in place (same Parameter objects, so optimizers and
    mask enforcers stay valid). Every entry of the model's state must be present."""
    own = model.state_dict()
    missing = [n for n in own if n not in state]
    unexpected = [n for n in state if n not in own]
    if missing or unexpected:
        raise KeyError(f"state does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, target in own.items():
        src = state[name]
        if tuple(src.shape) != tuple(target.shape):
            raise ValueError(f"state for {name!r} has shape {tuple(src.shape)}, model has {tuple(target.shape)}")
        target.copy_(src)


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mask) -> None:
    """Zero the pruned weights of ``model`` in place."""
    params = dict(model.named_parameters())
    for name, m in mask.items():
        p = params[name]
        p.mul_(m.to(device=p.device, dtype=p.dtype))


def rewind(model: nn.Module, state: Mapping[str, torch.Tensor], mask: Mask) -> None:
    """Set the model to the rewind point ``state`` (θk) and zero the pruned weights.

    Surviving weights equal θk bit for bit."""
    load_state(model, state)
    apply_mask(model, mask)


def random_mask(mask: Mask, generator: torch.Generator, output_axes: Mapping[str, int] | None = None) -> Mask:
    """A fresh random mask with exactly the same number of survivors in every layer
    (``output_axes`` is accepted for the controls' common signature and unused)."""
    out = {}
    for name, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        keep = torch.randperm(m.numel(), generator=generator)[: int(m.sum())]
        flat[keep] = True
        out[name] = flat.reshape(m.shape)
    return Mask(out)


def shuffled_mask(mask: Mask, generator: torch.Generator, output_axes: Mapping[str, int] | None = None) -> Mask:
    """The ticket's mask permuted within each output unit: same per-layer sparsity *and* the same
    fan-in per unit, new connections. A unit is a slice along the layer's output axis,
    ``output_axes[name]`` (default 0: the rows of torch's ``Linear``, the output channels of a
    convolution; the domain says 1 for weights stored in x out, as GPT-2's ``Conv1D``, see
    :meth:`tickets.domain.Domain.output_axes`). One-dimensional tensors are permuted as a whole."""
    out = {}
    for name, m in mask.items():
        axis = (output_axes or {}).get(name, 0)
        if m.dim() > 1:
            if not -m.dim() <= axis < m.dim():
                raise ValueError(f"output axis {axis} of {name!r} is not an axis of its {m.dim()}-D mask")
            units = m.movedim(axis, 0)
            rows = units.reshape(units.shape[0], -1)
        else:
            units, rows = m, m.reshape(1, -1)
        perm = torch.argsort(torch.rand(rows.shape, generator=generator), dim=1)
        shuffled = torch.gather(rows, 1, perm).reshape(units.shape)
        out[name] = shuffled.movedim(0, axis).contiguous() if m.dim() > 1 else shuffled
    return Mask(out)
