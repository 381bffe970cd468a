"""Per-layer survivor counts for a total budget, as the sparse-training literature allocates them
(Evci et al. 2020, RigL, Section 3 / Appendix):

* ``uniform``: every layer keeps the same fraction of its weights;
* ``erk`` (Erdős–Rényi-Kernel): a layer's density is proportional to the sum of its dimensions
  over their product, (n_out + n_in + k_h + k_w) / (n_out · n_in · k_h · k_w) for a convolution
  ((n_out + n_in) / (n_out · n_in) for a linear layer), scaled to the budget; a layer whose density
  would exceed 1 is kept dense and the rest rescaled, until every density is at most 1.

Counts are integers summing to the budget exactly (largest remainders get the leftover weights),
so a random mask drawn with them has exactly the ticket's overall sparsity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def erk_raw(shape: Sequence[int]) -> float:
    return sum(shape) / math.prod(shape)


def allocate(shapes: Mapping[str, Sequence[int]], total_kept: int, kind: str) -> dict[str, int]:
    """Survivors per layer: ``kind`` 'uniform' or 'erk', summing to ``total_kept``."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    total = sum(sizes.values())
    if not 0 <= total_kept <= total:
        raise ValueError(f"total_kept {total_kept} is outside [0, {total}]")
    if kind == "uniform":
        density = {n: total_kept / total for n in sizes}
    elif kind == "erk":
        density = _erk_densities(shapes, sizes, total_kept)
    else:
        raise ValueError(f"unknown allocation {kind!r} (uniform, erk)")
    return _integer_counts(sizes, density, total_kept)


def _erk_densities(shapes, sizes, total_kept) -> dict[str, float]:
    dense: set[str] = set()
    while True:
        budget = total_kept - sum(sizes[n] for n in dense)
        free = [n for n in sizes if n not in dense]
        weight = sum(erk_raw(shapes[n]) * sizes[n] for n in free)
        eps = budget / weight if weight else 0.0
        over = [n for n in free if eps * erk_raw(shapes[n]) > 1.0]
        if not over:
            return {n: 1.0 if n in dense else eps * erk_raw(shapes[n]) for n in sizes}
        dense.update(over)


def _integer_counts(sizes, density, total_kept) -> dict[str, int]:
    exact = {n: min(1.0, d) * sizes[n] for n, d in density.items()}
    counts = {n: min(sizes[n], math.floor(x)) for n, x in exact.items()}
    short = total_kept - sum(counts.values())
    order = sorted(sizes, key=lambda n: (-(exact[n] - counts[n]), list(sizes).index(n)))
    for n in order:
        if short <= 0:
            break
        if counts[n] < sizes[n]:
            counts[n] += 1
            short -= 1
    if short:  # rounding left some over: fill any layer with room
        for n in sizes:
            add = min(short, sizes[n] - counts[n])
            counts[n] += add
            short -= add
    return counts
