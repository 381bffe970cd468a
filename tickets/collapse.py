"""Layer-collapse diagnostics for any mask.

Pruning hard enough can cut every path from the input to the output (Tanaka et al. 2020 call it
layer collapse): the network then computes a constant and cannot train, whatever its accuracy
table says. An empty layer is the usual cause, but not a necessary one (a residual shortcut can
bridge an empty conv) nor the only one (every layer non-empty, yet no kept weight of one layer
feeds a kept weight of the next).

:func:`path_survives` answers the question exactly with one forward pass: on a float64 copy of the
model, every kept weight is 1, every pruned weight 0, every unmasked weight 1, every bias 0,
normalisation layers are identities, and the input is all ones. All values then stay
non-negative, so ReLU, max/average pooling and residual additions never cancel anything, and the
output is positive iff some input-to-output path of kept weights exists.

Requirements on the model: activations must map 0 to 0 and non-negative inputs to non-negative
outputs (ReLU, GELU, tanh, max/avg pooling, residual sums, softmax attention are fine; sigmoid
turns 0 into 0.5 and would invent paths), and parameters added to activations that are not named
``*bias`` (position embeddings, class tokens) must be passed in ``zero`` to be treated as biases.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .masks import Mask

ForwardOnes = Callable[[nn.Module], torch.Tensor]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_CHANNEL_NORMS = (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def layer_report(mask: Mask) -> dict[str, Any]:
    """Per-layer and overall density of ``mask`` (JSON-serialisable):
    ``{"density", "kept", "total", "layers": {name: {"density", "kept", "total"}}, "empty_layers"}``,
    where an empty layer is a non-empty tensor with no weight left."""
    kept, sizes = mask.kept(), mask.sizes()
    return {
        "density": mask.density(),
        "kept": sum(kept.values()),
        "total": sum(sizes.values()),
        "layers": {n: {"density": (kept[n] / sizes[n] if sizes[n] else 1.0), "kept": kept[n], "total": sizes[n]}
                   for n in mask},
        "empty_layers": mask.empty_layers(),
    }


class _Scale(nn.Module):
    """Stands in for a LayerNorm/GroupNorm/InstanceNorm: multiplies by the (masked) affine weight,
    or is the identity."""

    def __init__(self, weight: torch.Tensor | None, channel_dim: int | None):
        super().__init__()
        self.register_buffer("scale", weight)
        self.channel_dim = channel_dim  # None: the weight broadcasts over the trailing dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            return x
        if self.channel_dim is None:
            return x * self.scale
        return x * self.scale.reshape(-1, *([1] * (x.dim() - 2)))


def _is_bias(name: str, zero: Sequence[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return "bias" in leaf or any(fnmatch.fnmatchcase(name, p) for p in zero)


def _fan_in(shape: torch.Size) -> int:
    return max(1, math.prod(shape[1:])) if len(shape) >= 2 else 1


def _check_mask(model: nn.Module, mask: Mask) -> None:
    params = dict(model.named_parameters())
    for name, m in mask.items():
        if name not in params:
            raise KeyError(f"mask names {name!r}, which {type(model).__name__} does not have")
        if tuple(params[name].shape) != tuple(m.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(m.shape)}, parameter has "
                             f"{tuple(params[name].shape)}")


@torch.no_grad()
def _indicator_copy(model: nn.Module, mask: Mask, zero: Sequence[str], scaled: bool) -> nn.Module:
    """A float64, eval-mode deepcopy with 0/1 parameters and identity normalisation."""
    _check_mask(model, mask)
    net = copy.deepcopy(model).to(torch.float64).eval()
    for name, p in net.named_parameters():
        p.requires_grad_(False)
        if _is_bias(name, zero):
            p.zero_()
            continue
        value = mask[name].to(p.device, torch.float64) if name in mask else torch.ones_like(p)
        if scaled:  # keeps activations O(1) in deep, wide nets where path counts overflow float64
            value = value / _fan_in(p.shape)
        p.copy_(value)
    replace = []
    for name, module in net.named_modules():
        if isinstance(module, _BATCHNORMS):
            # eval mode with mean 0, variance 1 and eps 0: y = γ·x + β = mask(γ)·x exactly
            c, dev = module.num_features, next(net.parameters()).device
            module.running_mean = torch.zeros(c, dtype=torch.float64, device=dev)
            module.running_var = torch.ones(c, dtype=torch.float64, device=dev)
            module.eps = 0.0
        elif isinstance(module, (nn.LayerNorm, *_CHANNEL_NORMS)):
            replace.append((name, module))
    for name, module in replace:
        weight = getattr(module, "weight", None)
        scale = None if weight is None else weight.detach().clone()
        sub = _Scale(scale, None if isinstance(module, nn.LayerNorm) else 1)
        if name:
            parent_name, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent_name), attr, sub)
        else:
            net = sub
    net.register_forward_pre_hook(_to_float64, with_kwargs=True)
    return net


def _cast(x: Any, device: torch.device) -> Any:
    if torch.is_tensor(x) and x.is_floating_point():
        return x.to(device=device, dtype=torch.float64)
    if isinstance(x, (tuple, list)):
        return type(x)(_cast(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _cast(v, device) for k, v in x.items()}
    return x


def _to_float64(module: nn.Module, args: tuple, kwargs: dict):
    p = next(module.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    return _cast(args, device), _cast(kwargs, device)


def _forward_sum(model: nn.Module, mask: Mask, forward_ones: ForwardOnes, zero: Sequence[str],
                 scaled: bool) -> float:
    net = _indicator_copy(model, mask, zero, scaled)
    with torch.no_grad():
        out = forward_ones(net)
    if not torch.is_tensor(out):
        raise TypeError(f"forward_ones must return a tensor, got {type(out).__name__}")
    out = out.detach().to(torch.float64)
    if out.numel() and bool((out < 0).any()):
        raise ValueError("the indicator forward pass produced negative values: the model applies an "
                         "operation that is not monotone on non-negative inputs (or a negative "
                         "constant), so paths cannot be read from its output")
    return float(out.sum())


def surviving_paths(model: nn.Module, mask: Mask, forward_ones: ForwardOnes, *,
                    zero: Sequence[str] = ()) -> float:
    """The output sum of the indicator forward pass (see :func:`path_survives`).

    For networks of linear/conv layers, ReLUs, identity BatchNorms and residual additions (no
    pooling), the network is linear on the non-negative values, so this is exactly the number of
    input-to-output paths through kept weights, summed over input positions and outputs (an MLP
    with all weights kept: the product of its layer widths). Average pooling weights paths by
    1/window and max pooling keeps one branch, so there it is only a positive score. May be
    ``inf`` or ``nan`` when the count overflows float64 (beyond ~1e308 paths)."""
    return _forward_sum(model, mask, forward_ones, zero, scaled=False)


def path_survives(model: nn.Module, mask: Mask, forward_ones: ForwardOnes, *,
                  zero: Sequence[str] = ()) -> bool:
    """Whether any path from the input to the output survives ``mask``.

    One forward pass, through ``forward_ones`` (model -> output on an all-ones input; a float32
    input is cast to float64 by a hook on the copy), of a float64, eval-mode (no dropout) deepcopy
    of ``model`` in which every parameter named in ``mask`` is its mask (kept 1.0, pruned 0.0),
    every other weight is 1.0, every bias (a parameter whose own name contains ``bias``, e.g.
    ``bias``, ``in_proj_bias``) and every parameter matching a ``zero`` pattern is 0.0, BatchNorm
    is the identity times its (masked) γ, and LayerNorm/GroupNorm/InstanceNorm are replaced by
    their (masked) affine scale. Shortcut and downsample convs are parameters like any
    other, so residual networks need no special case. ``model`` itself is not modified.

    Returns ``output.sum() > 0``; should the sum overflow (``nan`` from ``inf * 0``), the pass is
    repeated with every weight divided by its fan-in."""
    total = _forward_sum(model, mask, forward_ones, zero, scaled=False)
    if math.isnan(total):
        total = _forward_sum(model, mask, forward_ones, zero, scaled=True)
        if math.isnan(total):
            raise RuntimeError("the indicator forward pass overflowed even with fan-in scaling")
    return total > 0


def max_compression_before_collapse(results: Iterable[tuple[float, bool]]) -> float | None:
    """Given ``(compression, path_survives)`` pairs, the highest compression reached before the
    first collapse, going through them in increasing compression (a collapse and a survival at
    the same compression count as a collapse there). ``None`` when there are no pairs or the
    lowest compression already collapses."""
    best = None
    for compression, survives in sorted((float(c), bool(s)) for c, s in results):
        if not survives:
            break
        best = compression
    return best


def diagnose(model: nn.Module, mask: Mask, forward_ones: ForwardOnes | None = None, *,
             zero: Sequence[str] = ()) -> dict[str, Any]:
    """Layer report plus, when ``forward_ones`` is given, the path check; JSON-serialisable.

    Keys: those of :func:`layer_report`, ``"compression"`` (1 / density; ``None`` for an empty
    mask), ``"path_survives"`` and ``"surviving_paths"`` (``None`` without ``forward_ones``;
    ``surviving_paths`` also ``None`` if it is not finite) and ``"collapsed"`` (``not
    path_survives``; without ``forward_ones``, whether some layer is empty)."""
    _check_mask(model, mask)
    report = layer_report(mask)
    density = report["density"]
    report["compression"] = 1.0 / density if density > 0 else None
    report["path_survives"] = None
    report["surviving_paths"] = None
    if forward_ones is not None:
        paths = surviving_paths(model, mask, forward_ones, zero=zero)
        if math.isnan(paths):
            scaled = _forward_sum(model, mask, forward_ones, zero, scaled=True)
            if math.isnan(scaled):
                raise RuntimeError("the indicator forward pass overflowed even with fan-in scaling")
            survives = scaled > 0
        else:
            survives = paths > 0
        report["path_survives"] = bool(survives)
        report["surviving_paths"] = paths if math.isfinite(paths) else None
        report["collapsed"] = not survives
    else:
        report["collapsed"] = bool(report["empty_layers"])
    return report
