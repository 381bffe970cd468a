"""How much two masks agree, and how much two random masks of the same layer densities would.

For masks A and B over the same layers, per layer and over all of them together:
  common    |A ∩ B|, the weights both keep
  jaccard   |A ∩ B| / |A ∪ B|
  shared    |A ∩ B| / min(|A|, |B|), the share of the sparser mask's kept weights the other
            keeps too (the overlap coefficient; at equal densities, the share of either's)

The chance level is exact, not sampled: a random mask that keeps k of a layer's n weights (the
``random_mask`` control: a uniformly random subset of exactly k) meets an independent one keeping
k' in X weights, X hypergeometric (n, k, k'). E[common] = k k' / n and E[shared] follows from it;
E[jaccard] = E[X / (k + k' - X)] is summed over X's distribution, and over all layers together
over the distribution of the sum of the layers' X (their distributions convolved), every
probability computed in float64 from log-gamma functions. Probabilities below 1e-300 are left out
(their share of any expectation is below what float64 resolves), which also keeps the convolved
distribution as narrow as it is concentrated, so BERT-sized masks take seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .masks import Mask

ALL = "(all layers)"
TINY = 1e-300


@dataclass(frozen=True)
class Overlap:
    kept_a: int
    kept_b: int
    size: int
    common: float  # an expectation (a float) for the random-mask chance level
    jaccard: float
    shared: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _ratios(kept_a: int, kept_b: int, common: float) -> tuple[float, float]:
    union = kept_a + kept_b - common
    jaccard = common / union if union else 1.0  # two empty masks agree everywhere
    smaller = min(kept_a, kept_b)
    return jaccard, (common / smaller if smaller else 0.0)


def _check_alike(a: Mask, b: Mask) -> None:
    if a.shapes() != b.shapes():
        names = sorted(set(a.shapes()) ^ set(b.shapes()))
        shapes = [n for n in a.shapes() if n in b.shapes() and a.shapes()[n] != b.shapes()[n]]
        raise ValueError("the masks cover different weights: "
                         + "; ".join([*(f"{n} is in one mask only" for n in names),
                                      *(f"{n}: {a.shapes()[n]} vs {b.shapes()[n]}" for n in shapes)]))


def overlap(a: Mask, b: Mask) -> dict[str, Overlap]:
    """Each layer's overlap of ``a`` and ``b`` and, under :data:`ALL`, the overlap over all layers."""
    _check_alike(a, b)
    out = {}
    totals = [0, 0, 0, 0]
    for name in a:
        ka, kb = int(a[name].sum()), int(b[name].sum())
        common = int((a[name] & b[name]).sum())
        out[name] = Overlap(ka, kb, a[name].numel(), common, *_ratios(ka, kb, common))
        totals = [t + x for t, x in zip(totals, (ka, kb, a[name].numel(), common))]
    ka, kb, size, common = totals
    out[ALL] = Overlap(ka, kb, size, common, *_ratios(ka, kb, common))
    return out


def hypergeometric(n: int, k: int, k2: int) -> tuple[int, torch.Tensor]:
    """X = |A ∩ B| for uniformly random subsets of sizes k and k2 of n items: the smallest value
    of X with a representable probability, and the probabilities from there on (float64)."""
    low, high = max(0, k + k2 - n), min(k, k2)
    x = torch.arange(low, high + 1, dtype=torch.float64)

    def log_choose(top: float, bottom: torch.Tensor | float) -> torch.Tensor:
        bottom = torch.as_tensor(bottom, dtype=torch.float64)
        return torch.lgamma(torch.tensor(top + 1.0, dtype=torch.float64)) - torch.lgamma(bottom + 1) \
            - torch.lgamma(top - bottom + 1)

    log_p = log_choose(k, x) + log_choose(n - k, k2 - x) - log_choose(n, k2)
    start, p = _trim(low, torch.exp(log_p))
    return start, p / p.sum()  # the sum is 1 up to rounding in the log-gammas


def _trim(start: int, p: torch.Tensor) -> tuple[int, torch.Tensor]:
    keep = torch.nonzero(p > TINY).flatten()
    first, last = int(keep[0]), int(keep[-1])
    return start + first, p[first:last + 1]


def _convolve(a: tuple[int, torch.Tensor], b: tuple[int, torch.Tensor]) -> tuple[int, torch.Tensor]:
    (start_a, pa), (start_b, pb) = a, b
    size = len(pa) + len(pb) - 1
    if min(len(pa), len(pb)) <= 64:
        out = torch.nn.functional.conv1d(pa.view(1, 1, -1), pb.flip(0).view(1, 1, -1), padding=len(pb) - 1).flatten()
    else:
        length = 1 << (size - 1).bit_length()
        out = torch.fft.irfft(torch.fft.rfft(pa, length) * torch.fft.rfft(pb, length), length)[:size]
    out = out.clamp_min(0.0)  # the FFT's rounding leaves tiny negatives where the probability is ~0
    start, out = _trim(start_a + start_b, out)
    return start, out / out.sum()


def _expected_jaccard(start: int, p: torch.Tensor, kept_a: int, kept_b: int) -> float:
    x = torch.arange(start, start + len(p), dtype=torch.float64)
    union = kept_a + kept_b - x
    ratio = torch.where(union > 0, x / union.clamp_min(1), torch.ones_like(x))
    return float((p * ratio).sum())


def expected_random_overlap(a: Mask, b: Mask) -> dict[str, Overlap]:
    """The expectation of :func:`overlap` for two independent random masks with the per-layer
    kept counts of ``a`` and ``b`` (the chance level the real overlap is read against)."""
    _check_alike(a, b)
    if not len(a):
        raise ValueError("the masks cover no weights")
    out = {}
    total: tuple[int, torch.Tensor] | None = None
    ka_all = kb_all = size_all = 0
    for name in a:
        n, ka, kb = a[name].numel(), int(a[name].sum()), int(b[name].sum())
        dist = hypergeometric(n, ka, kb)
        common = ka * kb / n if n else 0.0
        smaller = min(ka, kb)
        out[name] = Overlap(ka, kb, n, common, _expected_jaccard(*dist, ka, kb), common / smaller if smaller else 0.0)
        total = dist if total is None else _convolve(total, dist)
        ka_all, kb_all, size_all = ka_all + ka, kb_all + kb, size_all + n
    common = sum(o.common for o in out.values())
    smaller = min(ka_all, kb_all)
    out[ALL] = Overlap(ka_all, kb_all, size_all, common, _expected_jaccard(*total, ka_all, kb_all),
                       common / smaller if smaller else 0.0)
    return out


def excess(real: dict[str, Overlap], chance: dict[str, Overlap]) -> dict[str, float | None]:
    """How far the real Jaccard index stands above chance, as a share of the way to 1:
    (J - E[J]) / (1 - E[J]) (0: no more agreement than random masks; 1: the same mask). None where
    chance is already 1 (a layer both keep whole, or both prune away)."""
    return {name: (real[name].jaccard - c.jaccard) / (1 - c.jaccard) if c.jaccard < 1 else None
            for name, c in chance.items()}
