"""Structured units a domain states itself, for architectures whose units are not single output
channels: a transformer's attention heads (a slice of rows of Q, K and V and the same columns of
the attention output) and feed-forward neurons (a row of the first matrix, a column of the
second). Torch-Pruning's trace (:class:`tickets.structured.UnitGraph`) would couple a transformer's
residual stream instead, which is not the unit these papers prune (Prasanna et al. 2020, "When
BERT plays the lottery, all tickets are winning"; Michel et al. 2019, "Are sixteen heads really
better than one?").

A :class:`SlicedGroup` lists, per parameter, the indices each unit owns along one axis; a unit is
scored by the norm of every weight it owns (rows and columns alike: a head is all of its weights),
and removed by zeroing all it owns, biases included, so a removed head's scores, values and output
are exactly zero and a removed neuron's activation is zero (GELU(0) = 0). :class:`SlicedUnits` has
the interface of ``UnitGraph`` (``groups``, ``coupled``, ``alive_units``, ``mask_without``,
``unit_scores``, ``cut``), so IMP, the mask and the export treat both alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import ArtifactError, ConfigError
from .masks import Mask


@dataclass
class SlicedGroup:
    root: str  # its units' probe: f"{root}.weight" (the key of pruning.groups rates); alive if any of it is
    size: int
    # (parameter name, axis, the indices each unit owns along the axis)
    slices: list[tuple[str, int, list[list[int]]]] = field(default_factory=list)
    kind: str = "units"  # what a unit is, for messages and records ("heads", "neurons")


class SlicedUnits:
    def __init__(self, model: nn.Module, groups: list[SlicedGroup],
                 on_cut: Callable[[nn.Module, str, int], None] | None = None):
        """``on_cut(model, root, kept)``: what the architecture must be told after a group is cut
        (e.g. an attention module's head count)."""
        params = dict(model.named_parameters())
        self.model, self.groups, self.on_cut = model, groups, on_cut
        self.coupled: dict[str, tuple[int, ...]] = {}
        for g in groups:
            probe = f"{g.root}.weight"
            if not g.slices or g.slices[0][0] != probe:
                raise ValueError(f"unit group {g.root}: its first slice must be of {probe}")
            for name, axis, per_unit in g.slices:
                if name not in params or len(per_unit) != g.size:
                    raise ValueError(f"unit group {g.root}: {name} is not a parameter with {g.size} unit slices")
                if max(i for idxs in per_unit for i in idxs) >= params[name].shape[axis]:
                    raise ValueError(f"unit group {g.root}: an index of {name} is past its axis {axis}")
                self.coupled[name] = tuple(params[name].shape)
        if not groups:
            raise ConfigError("pruning.structure: the model has no prunable units")

    @staticmethod
    def _view(t: torch.Tensor, axis: int) -> torch.Tensor:
        return t if axis == 0 else t.transpose(0, axis)

    def alive_units(self, mask: Mask, group: SlicedGroup) -> list[int]:
        name, axis, per_unit = group.slices[0]
        m = self._view(mask[name], axis)
        return [i for i, idxs in enumerate(per_unit) if bool(m[idxs].any())]

    def mask_without(self, dead: Mapping[str, list[int]], shapes: Mapping[str, tuple[int, ...]]) -> Mask:
        masks = {n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()}
        by_root = {g.root: g for g in self.groups}
        for root, units in dead.items():
            for name, axis, per_unit in by_root[root].slices:
                if name not in masks:
                    raise ConfigError(f"pruning.structure: {name} is coupled to {root}'s units but not masked")
                view = self._view(masks[name], axis)
                for i in units:
                    view[per_unit[i]] = False
        return Mask(masks)

    def unit_scores(self, weights: Mapping[str, torch.Tensor], group: SlicedGroup, norm: str) -> torch.Tensor:
        score = torch.zeros(group.size, dtype=torch.float64)
        for name, axis, per_unit in group.slices:
            if name not in weights or weights[name].dim() < 2:
                continue  # biases are removed with their unit but do not score it
            w = self._view(weights[name].detach().double(), axis)
            for i, idxs in enumerate(per_unit):
                score[i] += w[idxs].abs().sum() if norm == "l1" else w[idxs].pow(2).sum()
        return score if norm == "l1" else score.sqrt()

    def cut(self, removed: Mapping[str, list[int]]) -> None:
        """Remove the units from :attr:`model`, in place: every parameter they own loses their
        slices (nn.Linear's feature counts follow), then ``on_cut`` updates the architecture."""
        by_root = {g.root: g for g in self.groups}
        for root in sorted(removed):
            if root not in by_root:
                raise ArtifactError(f"export: the model has no unit group {root!r}", root)
            group, gone = by_root[root], set(removed[root])
            if not gone:
                continue
            if max(gone) >= group.size or len(gone) >= group.size:
                raise ArtifactError(f"export: {root} has {group.size} {group.kind}; cannot remove {len(gone)} up to "
                                    f"index {max(gone)}", root)
            for name, axis, per_unit in group.slices:
                keep = torch.tensor(sorted(j for i, idxs in enumerate(per_unit) if i not in gone for j in idxs))
                owner_name, _, attr = name.rpartition(".")
                owner = self.model.get_submodule(owner_name)
                old = getattr(owner, attr)
                setattr(owner, attr, nn.Parameter(old.detach().index_select(axis, keep).clone(),
                                                  requires_grad=old.requires_grad))
                if isinstance(owner, nn.Linear):
                    owner.out_features, owner.in_features = owner.weight.shape
            if self.on_cut is not None:
                self.on_cut(self.model, root, group.size - len(gone))
