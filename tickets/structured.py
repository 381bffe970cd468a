"""Structured tickets (``pruning.structure: units``): IMP over output units — linear neurons and
convolution channels — instead of single weights, so that a ticket is a smaller dense network.

The couplings come from Torch-Pruning's dependency graph (``pip install 'tickets[structured]'``),
traced once through the domain's loss on one scoring batch: a unit is a group of coupled channels
(a layer's output channel; the next layers' input channels that read it, flattened inputs
included; in a residual network, every convolution writing into and reading from the same
channel of the residual stream). Removing unit i masks it in every parameter it reaches: the rows,
biases and BatchNorm γ/β of the layers that produce it and the columns of the layers that read it
(the output layer too, prunable or not), so the masked network is exactly the smaller one at any
weights, trained or not. The mask therefore covers those coupled parameters beside the prunable
weights (weights-remaining figures count them). Units with no consumer are the model's outputs
(classes, actions, values) and are never pruned.

Each level prunes ``fraction`` of the alive units of every group (``scope: layer``; the fraction
of the group's root weight's rule in ``pruning.groups``) or of all groups ranked together
(``scope: global``), scored by the L1 (``unit_score: l1``) or L2 norm of the unit's rows in every
producing layer, on the previous ticket's trained weights; a group always keeps one unit (no layer
collapse). The mask stays a weight mask: rewinding, controls, transfer and the artifact are
unchanged; ``ticket.json`` records the structure (the kept units are the mask's alive rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import ArtifactError, ConfigError
from .masks import Mask


def _tp():
    try:
        import torch_pruning
    except ImportError:
        raise ConfigError("pruning.structure: structured tickets trace the model with Torch-Pruning; "
                          "pip install 'tickets[structured]'") from None
    return torch_pruning


@dataclass
class UnitGroup:
    root: str  # the module whose output units the group's units are
    size: int
    producers: list[tuple[str, list[int]]] = field(default_factory=list)  # (weight name, row per unit)


class UnitGraph:
    """The coupled unit groups of one model (names refer to the model's own parameter names)."""

    def __init__(self, model: nn.Module, example: Any, loss, prunable: Mapping[str, nn.Parameter]):
        tp = _tp()
        self.model = model
        self.prunable = set(prunable)
        self.names = {id(m): n for n, m in model.named_modules()}
        was = model.training
        model.eval()
        try:
            self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                               forward_fn=lambda m, batch: loss(m, batch),
                                                               verbose=False)
        finally:
            model.train(was)
        self.groups: list[UnitGroup] = []
        self.coupled: dict[str, tuple[int, ...]] = {}  # every parameter a unit reaches -> its shape
        params = dict(model.named_parameters())
        for group in self.graph.get_all_groups(root_module_types=(nn.Conv2d, nn.Linear)):
            root_module = group[0].dep.target.module
            root = self.names.get(id(root_module))
            if root is None or f"{root}.weight" not in self.prunable:
                continue
            size = root_module.weight.shape[0]
            entries = self._entries(root_module, list(range(size)))
            if not any(axis == 1 for _, axis, _ in entries):
                continue  # nothing reads these units: the model's outputs
            unit = UnitGroup(root, size)
            for name, axis, idxs in entries:
                self.coupled[name] = tuple(params[name].shape)
                if axis == 0 and name in self.prunable and len(idxs) == size:
                    unit.producers.append((name, idxs))
            self.groups.append(unit)
        if not self.groups:
            raise ConfigError("pruning.structure: the model has no prunable units (every prunable layer's outputs "
                              "are the model's outputs)")

    def _entries(self, module: nn.Module, idxs: list[int]) -> list[tuple[str, int, list[int]]]:
        """(parameter name, axis, indices) of every parameter coupled to ``module``'s units ``idxs``:
        the weights, biases and norm parameters of the layers producing them (axis 0) and the
        weights of the layers reading them (axis 1)."""
        pruner = self.graph.get_pruner_of_module(module)
        group = self.graph.get_pruning_group(module, pruner.prune_out_channels, idxs=idxs)
        out = []
        for item in group:
            dep, dep_idxs = item.dep, [int(i) for i in item.idxs]
            target = dep.target.module
            name = self.names.get(id(target))
            handler = getattr(dep.handler, "__name__", "")
            if name is None:
                continue
            prefix = f"{name}." if name else ""
            if "out_channels" in handler:
                out += [(prefix + n, 0, dep_idxs) for n, q in target.named_parameters(recurse=False)
                        if q.dim() >= 1 and q.shape[0] > max(dep_idxs, default=-1)]
            elif "in_channels" in handler and getattr(target, "weight", None) is not None:
                out.append((prefix + "weight", 1, dep_idxs))
        return out

    def alive_units(self, mask: Mask, group: UnitGroup) -> list[int]:
        name = f"{group.root}.weight"
        m = mask[name].reshape(mask[name].shape[0], -1)
        return [i for i in range(group.size) if bool(m[i].any())]

    def mask_without(self, dead: Mapping[str, list[int]], shapes: Mapping[str, tuple[int, ...]]) -> Mask:
        """The mask over ``shapes`` (the prunable weights and :attr:`coupled`) with the units
        ``dead[root]`` of each group removed from every parameter they reach (all else kept)."""
        masks = {n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()}
        modules = dict(self.model.named_modules())
        for root, units in dead.items():
            if not units:
                continue
            for name, axis, idxs in self._entries(modules[root], sorted(units)):
                if name not in masks:
                    raise ConfigError(f"pruning.structure: {name} is coupled to {root}'s units but not masked")
                if axis == 0:
                    masks[name][idxs] = False
                else:
                    masks[name][:, idxs] = False
        return Mask(masks)

    def unit_scores(self, weights: Mapping[str, torch.Tensor], group: UnitGroup, norm: str) -> torch.Tensor:
        score = torch.zeros(group.size, dtype=torch.float64)
        for name, rows in group.producers:
            w = weights[name].detach().double().reshape(weights[name].shape[0], -1)[rows]
            score += w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1)
        return score if norm == "l1" else score.sqrt()

    def cut(self, removed: Mapping[str, list[int]]) -> None:
        """Remove the units from :attr:`model`, in place (Torch-Pruning prunes each group)."""
        modules = dict(self.model.named_modules())
        for root in sorted(removed):
            idxs = sorted(removed[root])
            if not idxs:
                continue
            if root not in modules:
                raise ArtifactError(f"export: no module {root!r} to remove units from", root)
            module = modules[root]
            if max(idxs) >= module.weight.shape[0] or len(idxs) >= module.weight.shape[0]:
                raise ArtifactError(f"export: {root} has {module.weight.shape[0]} units; cannot remove {len(idxs)} "
                                    f"up to index {max(idxs)}", root)
            pruner = self.graph.get_pruner_of_module(module)
            self.graph.get_pruning_group(module, pruner.prune_out_channels, idxs=idxs).prune()


def units_of(domain, model: nn.Module, prunable: Mapping[str, nn.Parameter], seed: int):
    """The model's unit groups: the domain's own (:meth:`Domain.structured_units`: a transformer's
    heads and feed-forward neurons) or, where it states none, Torch-Pruning's trace of its
    couplings through the domain's loss on one scoring batch drawn from ``seed``."""
    own = domain.structured_units(model, prunable)
    if own is not None:
        return own
    batches = domain.scoring_batches(1, seed, model=model)
    if not batches:
        raise ConfigError(f"pruning.structure: the {domain.name} domain gives no batch to trace the model's "
                          "couplings on (scoring_batches)")
    return UnitGraph(model, batches[0], domain.scoring_loss, prunable)


def prune_units(graph: UnitGraph, weights: Mapping[str, torch.Tensor], previous: Mask,
                fractions: Mapping[str, float], scope: str, norm: str,
                shapes: Mapping[str, tuple[int, ...]]) -> Mask:
    """The next level's mask: ``fractions[root weight]`` of the alive units removed per group
    (``scope='layer'``) or the same share ranked across groups (``'global'``, one rate for all);
    the lowest scores first, ties to the later unit; one unit of every group always kept."""
    alive = {g.root: graph.alive_units(previous, g) for g in graph.groups}
    scores = {g.root: graph.unit_scores(weights, g, norm) for g in graph.groups}
    dead = {g.root: [i for i in range(g.size) if i not in set(alive[g.root])] for g in graph.groups}
    if scope == "layer":
        for g in graph.groups:
            units = alive[g.root]
            k = min(int(fractions[f"{g.root}.weight"] * len(units) + 0.5), len(units) - 1)
            dead[g.root] += sorted(units, key=lambda i: (float(scores[g.root][i]), -i))[:k]
    else:
        pool = sorted((float(scores[g.root][i]), -i, g.root, i) for g in graph.groups for i in alive[g.root])
        k = int(next(iter(fractions.values())) * len(pool) + 0.5)
        left = {g.root: len(alive[g.root]) for g in graph.groups}
        for _, _, root, i in pool:
            if k == 0:
                break
            if left[root] > 1:
                dead[root].append(i)
                left[root] -= 1
                k -= 1
    return graph.mask_without(dead, shapes)
