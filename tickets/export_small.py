"""``--to dense-small``: a structured ticket (``pruning.structure: units``) as a physically smaller
dense model. The units the mask removes are cut out of every coupled layer (Torch-Pruning's
dependency graph: the producing rows, the consuming columns, BatchNorm's channels, a residual
stream's convolutions together); the export records them per group root, so the loader cuts the
same units out of a freshly built model and loads the saved state into it, every shape checked.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import ArtifactError, ConfigError
from .masks import Mask
from .structured import units_of


def trace(domain, model: nn.Module, prunable: Mapping[str, nn.Parameter], seed: int):
    return units_of(domain, model, prunable, seed)


def removed_units(graph, mask: Mask) -> dict[str, list[int]]:
    """Each group's removed units; refused unless the mask is exactly whole units removed."""
    dead = {g.root: [i for i in range(g.size) if i not in set(graph.alive_units(mask, g))] for g in graph.groups}
    expected = graph.mask_without(dead, {n: tuple(m.shape) for n, m in mask.items()})
    differ = [n for n in mask if not torch.equal(expected[n], mask[n])]
    if differ:
        raise ConfigError(f"--to dense-small: the ticket is not whole units removed ({differ[0]} prunes single "
                          "weights); dense-small takes structured tickets (pruning.structure: units); use --to sparse")
    return dead


def shrink(domain, model: nn.Module, mask: Mask, prunable: Mapping[str, nn.Parameter], seed: int
           ) -> tuple[nn.Module, dict[str, list[int]]]:
    """A smaller copy of ``model`` (at the ticket's masked weights) and the units removed."""
    small = copy.deepcopy(model)
    small_params = dict(small.named_parameters())
    graph = trace(domain, small, {n: small_params[n] for n in prunable}, seed)  # the copy has the model's names
    removed = removed_units(graph, mask)
    graph.cut(removed)
    return small, removed


def rebuild(domain, model: nn.Module, prunable: Mapping[str, nn.Parameter], removed: Any, seed: int) -> nn.Module:
    """``model`` (freshly built) cut as an export recorded it."""
    if not isinstance(removed, dict) or not all(isinstance(k, str) and isinstance(v, list)
                                                and all(isinstance(i, int) and i >= 0 for i in v)
                                                for k, v in removed.items()):
        raise ArtifactError("export.json: 'removed' is not a mapping of module names to unit indices", "removed")
    trace(domain, model, prunable, seed).cut(removed)
    return model
