"""``--to semi-structured``: a 2:4 ticket (``pruning.pattern: "2:4"``) with its pruned linear
weights as ``torch.sparse.to_sparse_semi_structured`` tensors, which ``F.linear`` multiplies on
NVIDIA's sparse tensor cores. That runs on CUDA GPUs of compute capability 8.0 or newer only, so
the export and its loader refuse elsewhere, after checking that the ticket fits: every pruned
weight an ``nn.Linear``'s, its shape a multiple of (32, 64) (the strictest of torch's float16
constraints), at most 2 kept in every group of 4 consecutive inputs.

The model runs in float16 (the dtype the sparse kernels take; floating inputs are cast to it) and
is checked against the masked dense model in float16 to ``TOLERANCE`` (the sparse kernel adds in
another order). A semi-structured tensor has no safetensors form: the export stores the masked
weights densely in float16 and the loader compresses them again on the GPU, the pattern checked.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .errors import ArtifactError, ConfigError
from .masks import Mask
from .nm_pattern import Pattern
from .nm_select import grouped

PATTERN = Pattern(2, 4)
DTYPE = torch.float16
TOLERANCE = 1e-2
MIN_ROWS, MIN_COLS = 32, 64


def check_fits(found: dict[str, Any], model: nn.Module, mask: Mask) -> None:
    """Refuse (ConfigError, saying why) a ticket that semi-structured tensors cannot hold. The mask
    itself is checked, group by group (a transferred 2:4 ticket records no pattern of its own);
    ``found`` (ticket.json's) only words the message."""
    for name, m in mask.items():
        owner_name, _, attr = name.rpartition(".")
        if attr != "weight" or not isinstance(model.get_submodule(owner_name), nn.Linear):
            raise ConfigError(f"--to semi-structured: {name} is not an nn.Linear weight, and semi-structured "
                              "sparsity is for F.linear only")
    for name, m in mask.items():
        check_pattern(name, m, found.get("pattern"))
    for name, m in mask.items():
        rows, cols = m.shape
        if rows % MIN_ROWS or cols % MIN_COLS:
            raise ConfigError(f"--to semi-structured: {name} is {rows} x {cols}; the kernels take multiples of "
                              f"{MIN_ROWS} x {MIN_COLS} (exclude the layer from pruning, or pad the model)")


def check_pattern(name: str, kept: torch.Tensor, pattern: str | None = None) -> None:
    cols = kept.shape[1]
    if cols % PATTERN.m:
        raise ConfigError(f"--to semi-structured: {name} has {cols} inputs, not groups of {PATTERN.m}")
    worst = int(grouped(kept != 0, 1, PATTERN.m).sum(-1).max())
    if worst > PATTERN.n:
        what = f"pattern {pattern}" if pattern else "unstructured"
        raise ConfigError(f"--to semi-structured: the sparse tensor cores take 2:4 tickets (pruning.pattern: "
                          f"'{PATTERN}': at most 2 of every 4 consecutive inputs); this ticket is {what}, and "
                          f"{name} keeps {worst} of some group of 4 (use --to sparse)")


def require_cuda(what: str = "--to semi-structured") -> torch.device:
    if not torch.cuda.is_available():
        raise ConfigError(f"{what}: semi-structured sparse tensors (torch.sparse.to_sparse_semi_structured) run on "
                          "CUDA GPUs only, and this machine has none (torch.cuda.is_available() is False); "
                          "--to sparse gives CSR layers that run on the CPU")
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        raise ConfigError(f"{what}: the GPU has compute capability {major}.{minor}; semi-structured sparsity "
                          "needs 8.0 or newer (Ampere, Hopper)")
    return torch.device("cuda")


def half_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A float16 copy on ``device`` whose floating inputs are cast to float16 on the way into every
    module that holds parameters (a domain may call a submodule directly: an SB3 policy's networks)."""
    copy_ = copy.deepcopy(model).to(device=device, dtype=DTYPE)

    def to_half(v):
        return v.to(DTYPE) if isinstance(v, torch.Tensor) and v.is_floating_point() else v

    def cast(_module, args, kwargs):
        return tuple(to_half(a) for a in args), {k: to_half(v) for k, v in kwargs.items()}

    for module in copy_.modules():
        if module is copy_ or any(True for _ in module.parameters(recurse=False)):
            module.register_forward_pre_hook(cast, with_kwargs=True)
    return copy_


def to_semi_structured(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Each named weight (of an nn.Linear on the GPU, float16) as a semi-structured tensor, in place."""
    from torch.sparse import to_sparse_semi_structured

    for name in names:
        owner = model.get_submodule(name.rpartition(".")[0])
        dense = owner.weight.detach()
        try:
            check_pattern(name, dense)
        except ConfigError as e:
            raise ArtifactError(str(e), name) from None
        owner.weight = nn.Parameter(to_sparse_semi_structured(dense), requires_grad=False)
    return model
