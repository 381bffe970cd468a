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


def random_mask(mask: Mask, generator: torch.Generator) -> Mask:
    """A fresh random mask with exactly the same number of survivors in every layer."""
    out = {}
    for name, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        keep = torch.randperm(m.numel(), generator=generator)[: int(m.sum())]
        flat[keep] = True
        out[name] = flat.reshape(m.shape)
    return Mask(out)


def shuffled_mask(mask: Mask, generator: torch.Generator) -> Mask:
    """The ticket's mask permuted within each output unit (each row of a weight matrix, each
    output channel of a convolution): same per-layer sparsity *and* the same fan-in per unit,
    new connections. One-dimensional tensors are permuted as a whole."""
    out = {}
    for name, m in mask.items():
        rows = m.reshape(m.shape[0], -1) if m.dim() > 1 else m.reshape(1, -1)
        perm = torch.argsort(torch.rand(rows.shape, generator=generator), dim=1)
        out[name] = torch.gather(rows, 1, perm).reshape(m.shape)
    return Mask(out)
