"""Optimizer state (as named tensors) and the learning rate, shared by every domain; the settings
are in :mod:`tickets.optim_config` (re-exported here)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .optim_config import OptimizerConfig, ScheduleConfig

__all__ = ["OptimizerConfig", "ScheduleConfig", "load_optimizer_tensors", "optimizer_tensors", "set_lr"]


def set_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float) -> None:
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * factor


# ---- optimizer state as flat named tensors (stored beside the rewind weights) --------------------
OptimizerState = dict[str, torch.Tensor]


def optimizer_tensors(optimizers: Mapping[str, torch.optim.Optimizer],
                      names: Mapping[int, str]) -> OptimizerState:
    """The per-parameter state of ``optimizers`` (Adam's moments and step, SGD's momentum
    buffer) as detached CPU copies named ``<optimizer>/<parameter>/<key>``, storable with
    safetensors. ``names`` maps ``id(parameter)`` to its name. Hyperparameters are left out:
    they come from the config (and the learning rate from the schedule at the step)."""
    out: OptimizerState = {}
    for opt_name, opt in optimizers.items():
        for group in opt.param_groups:
            for p in group["params"]:
                for key, value in opt.state.get(p, {}).items():
                    if not isinstance(value, torch.Tensor):
                        raise TypeError(f"{opt_name}: state {key!r} of {names[id(p)]} is a "
                                        f"{type(value).__name__}, not a tensor; it cannot be stored")
                    out[f"{opt_name}/{names[id(p)]}/{key}"] = value.detach().to("cpu", copy=True).contiguous()
    return out


def load_optimizer_tensors(optimizers: Mapping[str, torch.optim.Optimizer], names: Mapping[int, str],
                           state: Mapping[str, torch.Tensor]) -> None:
    """Replace the state of ``optimizers`` by ``state`` (from :func:`optimizer_tensors`), each
    tensor copied (so later steps never write into ``state``) and moved to its parameter's
    device by ``Optimizer.load_state_dict``. Raises ``KeyError`` naming entries that fit no
    parameter, and ``ValueError`` for a moment whose shape differs from its parameter's."""
    used: set[str] = set()
    for opt_name, opt in optimizers.items():
        per_index: dict[int, dict[str, torch.Tensor]] = {}
        params = [p for group in opt.param_groups for p in group["params"]]
        for index, p in enumerate(params):  # load_state_dict's numbering: params in group order
            prefix = f"{opt_name}/{names[id(p)]}/"
            entries = {k[len(prefix):]: v.clone() for k, v in state.items() if k.startswith(prefix)}
            for key, value in entries.items():
                if value.dim() > 0 and value.shape != p.shape:
                    raise ValueError(f"optimizer state {prefix}{key} has shape {tuple(value.shape)}, "
                                     f"the parameter {tuple(p.shape)}")
            if entries:
                per_index[index] = entries
                used.update(prefix + k for k in entries)
        opt.load_state_dict({"state": per_index, "param_groups": opt.state_dict()["param_groups"]})
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise KeyError(f"optimizer state entries fit no optimized parameter: {unexpected[:5]}")
