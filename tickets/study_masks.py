"""The study report's mask section (``analyses: [masks]`` in a study file): do tickets pick the same
weights, more often than random masks of the same layer densities would?

* Across seeds: for every experiment run over several seeds, at each level, every pair of seeds'
  tickets (mean over the pairs).
* Across finders: every two experiments whose runs start from the same θ0 (the same seed, model and
  prunable weights, checked bit for bit) but find tickets another way (``pruning.method`` or
  ``scorer``: IMP against SNIP, GraSP, SynFlow), each ticket of the run with fewer levels against
  the other's ticket of the nearest density, where the two are within 10% of each other ("at equal
  sparsity"; IMP's levels seldom hit an at-init compression exactly); mean over seeds.
* Across datasets, optimizers, tasks: for every transfer pair whose target also found its own
  tickets (the target is a source, or the matrix has ``diagonal: true``), the source's ticket
  against the target's own, at each level both have, seed by seed (mean over seeds); once per
  unordered pair (a → b and b → a compare the same two masks).

Each beside its exact chance level (:mod:`tickets.mask_overlap`); every ticket is loaded checked.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import store
from .config import load_experiment
from .mask_analysis import tickets_of
from .mask_overlap import ALL, excess, expected_random_overlap, overlap
from .masks import Mask

HEADER = ["", "## Mask overlap", "",
          "Jaccard index of the tickets' masks over all prunable layers, beside the exact chance level "
          "for random masks of the same layer densities; excess = (J − chance) / (1 − chance): 0 at chance, "
          "1 for the same mask. Different seeds draw different θ0, whose hidden units need not line up, so "
          "across seeds chance-level agreement is expected. Finders are compared from one θ0, each ticket "
          "against the other finder's ticket of the nearest density (level / level; weights %: the first's).", "",
          "| compared | level | weights % | pairs | Jaccard | chance | excess |", "|---|---:|---:|---:|---:|---:|---:|"]


DENSITY_MATCH = 0.10  # finders' tickets are compared where their densities differ by at most 10%


def _row(what: str, level: int | str, pairs: list[tuple[Mask, Mask]]) -> str:
    stats = []
    for a, b in pairs:
        real, chance = overlap(a, b), expected_random_overlap(a, b)
        stats.append((real[ALL].jaccard, chance[ALL].jaccard, excess(real, chance)[ALL], 100 * a.density()))
    j, c, weights = (statistics.fmean(s[i] for s in stats) for i in (0, 1, 3))
    above = [s[2] for s in stats if s[2] is not None]
    shown = f"{statistics.fmean(above):.4f}" if above else ""
    return f"| {what} | {level} | {weights:.1f} | {len(pairs)} | {j:.4f} | {c:.4f} | {shown} |"


def mask_section(entries: list[dict[str, Any]]) -> list[str]:
    """The section's lines from ``study.json``'s entries (runs not run yet are left out)."""
    masks: dict[str, dict[int, Mask]] = {}
    for e in entries:
        if Path(e["run"], "config.yaml").exists() and any(Path(e["run"]).glob("level_*/ticket")):
            masks[e["label"]] = tickets_of(e["run"])
    rows = []
    by_group: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        if e["role"] != "target" and e["label"] in masks:
            by_group[e["group"]].append(e)
    for group, es in by_group.items():
        if len(es) < 2:
            continue
        for level in sorted(set.intersection(*(set(masks[e["label"]]) for e in es))):
            pairs = [(masks[a["label"]][level], masks[b["label"]][level]) for a, b in itertools.combinations(es, 2)]
            rows.append(_row(f"{group}: seed vs seed", level, pairs))
    rows += _finder_rows(entries, masks)
    own = {(e["group"], e["seed"]): e["label"] for e in entries if e["role"] != "target"}  # who found tickets
    transfers: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in entries:  # a → b and b → a compare the same two masks: once per unordered pair
        if e["role"] == "target" and (e["source"], e["seed"]) in own and (e["target"], e["seed"]) in own:
            pair = tuple(sorted((e["source"], e["target"])))
            if all(other["seed"] != e["seed"] for other in transfers[pair]):
                transfers[pair].append(e)
    for (source, target), es in sorted(transfers.items()):
        found = [(masks.get(own[(source, e["seed"])]), masks.get(own[(target, e["seed"])])) for e in es]
        found = [(s, t) for s, t in found if s is not None and t is not None]
        if not found:
            continue
        for level in sorted(set.intersection(*(set(s) & set(t) for s, t in found))):
            rows.append(_row(f"{source}'s tickets vs {target}'s", level, [(s[level], t[level]) for s, t in found]))
    return HEADER + rows if rows else []


def finder_of(run: str | Path) -> str:
    """How a run finds its tickets, from its config: ``imp``, or ``method/scorer`` for any other pair."""
    p = load_experiment(Path(run) / "config.yaml").config.pruning
    return p.method if (p.method, p.scorer) == ("imp", "magnitude") else f"{p.method}/{p.scorer}"


def nearest_levels(few: dict[int, Mask], many: dict[int, Mask]) -> list[tuple[int, int]]:
    """(level of ``few``, level of ``many``) for every ticket of ``few`` and the ticket of ``many``
    of the nearest density, where the two densities are within :data:`DENSITY_MATCH` of each other."""
    pairs = []
    for level, mask in sorted(few.items()):
        d = mask.density()
        best = min(many, key=lambda other: (abs(many[other].density() - d), other))
        if d > 0 and abs(many[best].density() - d) <= DENSITY_MATCH * d:
            pairs.append((level, best))
    return pairs


def _same_start(a: dict[str, Any], b: dict[str, Any], names: list[str]) -> bool:
    import torch

    return all(n in a and n in b and a[n].shape == b[n].shape and torch.equal(a[n], b[n]) for n in names)


def _finder_rows(entries: list[dict[str, Any]], masks: dict[str, dict[int, Mask]]) -> list[str]:
    found = [e for e in entries if e["role"] != "target" and e["label"] in masks]
    finder = {e["label"]: finder_of(e["run"]) for e in found}
    layout = {e["label"]: {n: tuple(m.shape) for n, m in next(iter(masks[e["label"]].values())).items()}
              for e in found}
    inits: dict[str, dict] = {}

    def init(e: dict[str, Any]) -> dict | None:
        if e["label"] not in inits:
            path = Path(e["run"], "init.safetensors")
            inits[e["label"]] = store.read_tensors(path) if path.exists() else None
        return inits[e["label"]]

    compared: dict[tuple[str, str, int, int], list[tuple[Mask, Mask]]] = defaultdict(list)
    for a, b in itertools.combinations(found, 2):
        if (a["seed"] != b["seed"] or finder[a["label"]] == finder[b["label"]]
                or layout[a["label"]] != layout[b["label"]]):
            continue
        if init(a) is None or init(b) is None or not _same_start(init(a), init(b), list(layout[a["label"]])):
            continue
        ma, mb = masks[a["label"]], masks[b["label"]]
        if len(ma) > len(mb):
            a, b, ma, mb = b, a, mb, ma
        for la, lb in nearest_levels(ma, mb):  # shown the run with more levels (IMP) first
            key = (f"{b['group']} ({finder[b['label']]})", f"{a['group']} ({finder[a['label']]})", lb, la)
            compared[key].append((mb[lb], ma[la]))
    return [_row(f"finders: {fb} vs {fa}", f"{lb} / {la}", pairs)
            for (fb, fa, lb, la), pairs in sorted(compared.items())]
