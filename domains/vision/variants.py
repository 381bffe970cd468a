"""Dataset variants: a transformed copy of every split's uint8 images, made once at load time
(for transfer studies: a ticket found on MNIST trained on rotated, inverted or pixel-permuted
MNIST, or on digits at MNIST's size).

The operations, in this fixed order (each exact and deterministic, CPU torch ops):

``size``          resize to ``size x size``: bilinear (``align_corners=False``, antialiased when
                  shrinking) on the images as float, rounded half to even and clipped to 0..255
``channels``      1: the rounded mean of the channels; 3: a single channel replicated to RGB
``rotate``        ``torch.rot90`` by ``rotate / 90`` quarter turns, counter-clockwise as displayed
                  (row 0 at the top); non-square images swap height and width
``permute_seed``  output pixel ``i`` (row-major) is input pixel ``perm[i]``, ``perm`` =
                  ``torch.randperm(H * W)`` drawn from a generator seeded with ``permute_seed``:
                  the same for every split and channel, a function of the seed and the size only
``invert``        ``255 - x``
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import VariantConfig

_CHUNK = 1024  # images resized at a time (bounds the float copy)


def apply(images: torch.Tensor, variant: VariantConfig) -> torch.Tensor:
    """``images`` (uint8 ``N x C x H x W``) with ``variant`` applied; the same tensor when the
    variant is the identity."""
    if variant.is_identity():
        return images
    x = images
    if variant.size is not None and tuple(x.shape[2:]) != (variant.size, variant.size):
        x = resize(x, variant.size)
    if variant.channels is not None:
        x = to_channels(x, variant.channels)
    if variant.rotate:
        x = torch.rot90(x, variant.rotate // 90, dims=(2, 3))
    if variant.permute_seed is not None:
        x = permute(x, permutation(x.shape[2] * x.shape[3], variant.permute_seed))
    if variant.invert:
        x = 255 - x
    return x.contiguous()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), _CHUNK):
        x = images[start:start + _CHUNK].to(torch.float32)
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + _CHUNK] = y.round().clamp_(0, 255).to(torch.uint8)
    return out


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:  # the images have 1 channel or 3 (decode_images)
        return images.expand(-1, 3, -1, -1)
    # a mean of 3 integers is never exactly half-way, so (sum + 1) // 3 is its rounding
    total = images.to(torch.int32).sum(dim=1, keepdim=True)
    return torch.div(total + 1, 3, rounding_mode="floor").to(torch.uint8)


def permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def permute(images: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)
