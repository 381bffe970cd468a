"""Mask overlap: the real figures as defined, and the random-mask chance level exactly (checked by
enumerating every pair of masks on tiny layers, and against the random_mask control's draws)."""

import itertools
import statistics

import pytest
import torch

from tickets.mask_overlap import ALL, excess, expected_random_overlap, hypergeometric, overlap
from tickets.masks import Mask
from tickets.rewind import random_mask


def subsets(n, k):
    for chosen in itertools.combinations(range(n), k):
        m = torch.zeros(n, dtype=torch.bool)
        m[list(chosen)] = True
        yield m


def test_the_chance_level_equals_the_mean_over_every_pair_of_masks():
    # layer a: 6 weights, A keeps 2, B keeps 3; layer b: 4 weights, A keeps 1, B keeps 2
    sums = {"a": [], "b": [], ALL: []}
    for a1, b1, a2, b2 in itertools.product(subsets(6, 2), subsets(6, 3), subsets(4, 1), subsets(4, 2)):
        real = overlap(Mask({"a": a1, "b": a2}), Mask({"a": b1, "b": b2}))
        for name in sums:
            sums[name].append((real[name].common, real[name].jaccard, real[name].shared))
    chance = expected_random_overlap(Mask({"a": next(subsets(6, 2)), "b": next(subsets(4, 1))}),
                                     Mask({"a": next(subsets(6, 3)), "b": next(subsets(4, 2))}))
    assert len(sums[ALL]) == 15 * 20 * 4 * 6
    for name, values in sums.items():
        for i, field in enumerate(("common", "jaccard", "shared")):
            assert getattr(chance[name], field) == pytest.approx(statistics.fmean(v[i] for v in values), abs=1e-12), \
                (name, field)
    assert chance["a"].common == 2 * 3 / 6 and chance[ALL].kept_a == 3 and chance[ALL].size == 10


def test_the_real_overlap_as_defined():
    a = Mask({"w": torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool), "v": torch.tensor([1, 0], dtype=torch.bool)})
    b = Mask({"w": torch.tensor([0, 1, 1, 1, 0, 0], dtype=torch.bool), "v": torch.tensor([1, 1], dtype=torch.bool)})
    got = overlap(a, b)
    assert (got["w"].common, got["w"].jaccard, got["w"].shared) == (2, 2 / 4, 2 / 3)
    assert (got["v"].common, got["v"].jaccard, got["v"].shared) == (1, 1 / 2, 1 / 1)
    assert (got[ALL].common, got[ALL].jaccard, got[ALL].shared) == (3, 3 / 6, 3 / 4)
    assert overlap(a, a)[ALL].jaccard == 1.0 and overlap(a, a)[ALL].shared == 1.0
    flipped = Mask({n: ~m for n, m in a.items()})
    assert overlap(a, flipped)[ALL].jaccard == 0.0
    assert excess(overlap(a, a), expected_random_overlap(a, a))[ALL] == pytest.approx(1.0)


def test_the_chance_level_matches_the_random_mask_controls_draws():
    g = torch.Generator().manual_seed(0)
    ticket = Mask({"fc1": torch.rand(300, 100, generator=g) < 0.2, "fc2": torch.rand(10, 300, generator=g) < 0.5})
    chance = expected_random_overlap(ticket, ticket)
    draws = [overlap(random_mask(ticket, g), random_mask(ticket, g))[ALL].jaccard for _ in range(300)]
    mean, se = statistics.fmean(draws), statistics.stdev(draws) / len(draws) ** 0.5
    assert abs(mean - chance[ALL].jaccard) < 4 * se
    real = overlap(ticket, random_mask(ticket, g))
    assert abs(excess(real, chance)[ALL]) < 0.05  # a random mask agrees with the ticket at chance level


def test_bert_sized_layers_and_degenerate_ones():
    n, k = 2_359_296, 471_859  # a BERT-base feed-forward matrix at 20% density
    start, p = hypergeometric(n, k, k)
    x = torch.arange(start, start + len(p), dtype=torch.float64)
    assert float((p * x).sum()) == pytest.approx(k * k / n, rel=1e-9)
    assert len(p) < 20_000  # trimmed to where the probability is
    full = torch.ones(4, dtype=torch.bool)
    empty = torch.zeros(4, dtype=torch.bool)
    chance = expected_random_overlap(Mask({"kept": full, "gone": empty}), Mask({"kept": full, "gone": empty}))
    assert (chance["kept"].jaccard, chance["gone"].jaccard, chance[ALL].jaccard) == (1.0, 1.0, 1.0)
    assert excess(overlap(Mask({"kept": full}), Mask({"kept": full})),
                  expected_random_overlap(Mask({"kept": full}), Mask({"kept": full})))["kept"] is None


def test_masks_over_other_weights_are_refused_naming_them():
    a = Mask({"w": torch.ones(3, dtype=torch.bool), "x": torch.ones(2, dtype=torch.bool)})
    b = Mask({"w": torch.ones(4, dtype=torch.bool), "y": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"x is in one mask only; y is in one mask only; w: \(3,\) vs \(4,\)"):
        overlap(a, b)
