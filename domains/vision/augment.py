"""The standard CIFAR augmentation (random crop with zero padding, horizontal flip) in torch ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, *, padding: int, flip: bool) -> torch.Tensor:
    """For each image: pad with zeros, take a random H x W window (offsets uniform in
    0..2*padding, rows then columns), and mirror it horizontally with probability 1/2 (where
    ``flip``). Draws, in order: row offsets, column offsets, flips, from the global RNG of
    ``x``'s device."""
    n, c, h, w = x.shape
    device = x.device
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), device=device)
    dx = torch.randint(0, span, (n,), device=device)
    cols = torch.arange(w, device=device).expand(n, w)
    if flip:
        flipped = torch.rand(n, device=device) < 0.5
        cols = torch.where(flipped[:, None], w - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=device)  # n x h
    cols = dx[:, None] + cols  # n x w
    padded = F.pad(x, (padding, padding, padding, padding))
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))
