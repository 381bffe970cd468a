import math

import pytest
import torch

from tickets.masks import Mask
from tickets.scorers import ScoringContext, magnitude, prune, random
from tickets.selection import Group, assign_groups, default_prunable, select_prunable
from tickets.errors import ConfigError


def ones(shapes):
    return Mask({n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()})


def test_exact_k_with_all_scores_tied():
    mask = ones({"a": (10, 10)})
    scores = {"a": torch.zeros(10, 10)}
    out = prune(scores, mask, [Group("g", 0.2, ("a",))])
    assert out.kept()["a"] == 80
    out = prune(scores, out, [Group("g", 0.2, ("a",))])
    assert out.kept()["a"] == 64  # 20% of the remaining 80, though every score ties


def test_prunes_lowest_scores_among_survivors_only():
    mask = Mask({"a": torch.tensor([True, False, True, True, True])})
    scores = {"a": torch.tensor([5.0, 0.0, 1.0, 3.0, 4.0])}  # the dead weight has the lowest score
    out = prune(scores, mask, [Group("g", 0.5, ("a",))])
    assert out["a"].tolist() == [True, False, False, False, True]


def test_global_scope_ranks_across_layers():
    mask = ones({"a": (4,), "b": (4,)})
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([10.0, 20.0, 30.0, 40.0])}
    out = prune(scores, mask, [Group("g", 0.5, ("a", "b"))], scope="global")
    assert out.kept() == {"a": 0, "b": 4}
    out = prune(scores, mask, [Group("g", 0.5, ("a", "b"))], scope="layer")
    assert out.kept() == {"a": 2, "b": 2}


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_group_density_follows_geometric_schedule(scope):
    torch.manual_seed(0)
    shapes = {"l1": (300, 784), "l2": (100, 300), "out": (10, 100)}
    groups = assign_groups(list(shapes), [("out", 0.1)], 0.2)
    mask = ones(shapes)
    for level in range(1, 11):
        weights = {n: torch.randn(s) for n, s in shapes.items()}
        mask = prune(magnitude(ScoringContext(weights=weights, mask=mask)), mask, groups, scope)
        for g in groups:
            total = sum(math.prod(shapes[n]) for n in g.members)
            kept = sum(mask.kept()[n] for n in g.members)
            expected = total * (1 - g.fraction) ** level
            # rounding: at most one weight per layer per level
            assert abs(kept - expected) <= level * len(g.members), (g.name, level, kept, expected)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_fraction_of_original_removes_a_constant_count_per_level(scope):
    """Chen et al. 2020: each level prunes 10% of the original weights, so density falls
    linearly (0.9, 0.8, ..., 0.1), not geometrically."""
    torch.manual_seed(0)
    shapes = {"a": (40, 50), "b": (30, 20)}
    groups = assign_groups(list(shapes), [], 0.1)
    mask = ones(shapes)
    for level in range(1, 10):
        weights = {n: torch.randn(s) for n, s in shapes.items()}
        before = mask
        mask = prune(magnitude(ScoringContext(weights=weights, mask=mask)), mask, groups, scope, of="original")
        assert not bool((mask.to_dict()["a"] & ~before.to_dict()["a"]).any())  # survivors only shrink
        if scope == "layer":
            assert mask.kept() == {n: math.prod(s) - level * round(0.1 * math.prod(s)) for n, s in shapes.items()}
        else:
            assert sum(mask.kept().values()) == 2600 - level * 260
    assert mask.density() == pytest.approx(0.1)


def test_fraction_of_original_refuses_levels_that_prune_everything():
    from tickets.config import GroupRule, PruningConfig

    with pytest.raises(ConfigError, match="fraction: 10 levels x 0.1"):
        PruningConfig(levels=10, fraction=0.1, fraction_of="original")
    with pytest.raises(ConfigError, match=r"groups\[head\].fraction"):
        PruningConfig(levels=5, fraction=0.1, fraction_of="original", groups=[GroupRule("head", 0.2)])
    with pytest.raises(ConfigError, match="IMP schedule"):
        PruningConfig(method="at_init", compressions=[10], fraction_of="original")
    PruningConfig(levels=9, fraction=0.1, fraction_of="original")


def test_magnitude_keeps_largest_weights():
    w = torch.tensor([[0.1, -5.0], [3.0, -0.2]])
    mask = prune(magnitude(ScoringContext(weights={"w": w}, mask=ones({"w": (2, 2)}))),
                 ones({"w": (2, 2)}), [Group("g", 0.5, ("w",))])
    assert mask["w"].tolist() == [[False, True], [True, False]]


def test_random_scores_are_seeded():
    ctx = lambda s: ScoringContext(weights={"w": torch.zeros(50)}, mask=ones({"w": (50,)}),  # noqa: E731
                                   generator=torch.Generator().manual_seed(s))
    assert torch.equal(random(ctx(1))["w"], random(ctx(1))["w"])
    assert not torch.equal(random(ctx(1))["w"], random(ctx(2))["w"])


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="'w'.*NaN"):
        prune({"w": torch.tensor([1.0, float("nan")])}, ones({"w": (2,)}), [Group("g", 0.5, ("w",))])


def test_mask_statistics_and_algebra():
    a = Mask({"x": torch.tensor([1, 1, 0, 0]), "y": torch.tensor([0, 0])})
    b = Mask({"x": torch.tensor([1, 0, 1, 0]), "y": torch.tensor([0, 0])})
    assert a.density() == pytest.approx(2 / 6)
    assert a.layer_density() == {"x": 0.5, "y": 0.0}
    assert a.empty_layers() == ["y"]
    assert (a & b).kept() == {"x": 1, "y": 0}
    assert (a | b).kept() == {"x": 3, "y": 0}
    assert (a - b).kept() == {"x": 1, "y": 0}
    assert a.hamming(b) == pytest.approx(2 / 6)
    assert a != b and a == Mask(a.to_dict())


def test_selection_defaults_patterns_and_errors(tiny_mlp):
    assert list(default_prunable(tiny_mlp)) == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert list(select_prunable(tiny_mlp, exclude=["layers.2.*"])) == ["layers.0.weight", "layers.1.weight"]
    assert "layers.0.bias" in select_prunable(tiny_mlp, include=["layers.*"])
    with pytest.raises(ConfigError, match="'layer.9.\\*' matches no"):
        select_prunable(tiny_mlp, exclude=["layer.9.*"])
    with pytest.raises(ConfigError, match="pruning.groups: pattern 'nope'"):
        assign_groups(["a", "b"], [("nope", 0.1)], 0.2)
    groups = assign_groups(["a.weight", "b.weight", "out.weight"], [("out.*", 0.1)], 0.2)
    assert [(g.name, g.fraction, g.members) for g in groups] == [
        ("out.*", 0.1, ("out.weight",)), ("default", 0.2, ("a.weight", "b.weight"))]
