"""The study report's mask section (``analyses: [masks]`` in a study file): do tickets pick the same
weights, more often than random masks of the same layer densities would?

* Across seeds: for every experiment run over several seeds, at each level, every pair of seeds'
  tickets (mean over the pairs).
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

from .mask_analysis import tickets_of
from .mask_overlap import ALL, excess, expected_random_overlap, overlap
from .masks import Mask

HEADER = ["", "## Mask overlap", "",
          "Jaccard index of the tickets' masks over all prunable layers, beside the exact chance level "
          "for random masks of the same layer densities; excess = (J − chance) / (1 − chance): 0 at chance, "
          "1 for the same mask. Different seeds draw different θ0, whose hidden units need not line up, so "
          "across seeds chance-level agreement is expected.", "",
          "| compared | level | weights % | pairs | Jaccard | chance | excess |", "|---|---:|---:|---:|---:|---:|---:|"]


def _row(what: str, level: int, pairs: list[tuple[Mask, Mask]]) -> str:
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
