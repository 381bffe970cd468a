"""The one exact-k routine behind every mask (tickets.topk): exact counts, the tie rule, NaN refusal,
and agreement with a brute-force sort on random inputs (ties, negatives, chunk boundaries, masks)."""

import pytest
import torch

from tickets.at_init import prune_to_density
from tickets.early_bird import magnitude_mask
from tickets.masks import Mask
from tickets.scorers import prune
from tickets.selection import Group
from tickets.topk import keep_top


def brute(scores, k, alive=None, absolute=False):
    """The rule by brute force: a stable sort of (eligible first, score descending), position ascending."""
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).double() for n in names])
    if absolute:
        flat = flat.abs()
    ok = (torch.cat([alive[n].reshape(-1) for n in names]) if alive is not None
          else torch.ones(flat.numel(), dtype=torch.bool))
    order = torch.sort(flat, descending=True, stable=True).indices
    order = order[torch.sort((~ok[order]).to(torch.int8), stable=True).indices]
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    out, offset = {}, 0
    for n in names:
        out[n] = keep[offset:offset + scores[n].numel()].reshape(scores[n].shape)
        offset += scores[n].numel()
    return out


def test_equal_scores_keep_exactly_k_at_the_lowest_positions():
    scores = {"a": torch.ones(2, 3), "b": torch.ones(4)}
    out = keep_top(scores, 7)
    assert out["a"].all() and out["b"].tolist() == [True, False, False, False]
    out = keep_top(scores, 2)
    assert out["a"].reshape(-1).tolist() == [True, True, False, False, False, False] and not out["b"].any()


def test_ties_only_at_the_threshold_are_broken_by_position():
    s = {"w": torch.tensor([0.5, 2.0, 0.5, 1.0, 0.5, 3.0])}
    assert keep_top(s, 4)["w"].tolist() == [True, True, False, True, False, True]


def test_pruning_drops_the_latest_tied_positions():
    mask = Mask({"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)})
    scores = {"a": torch.zeros(4), "b": torch.zeros(4)}
    out = prune(scores, mask, [Group("g", 0.25, ("a", "b"))], scope="global")  # 2 of 8 pruned
    assert out["a"].all() and out["b"].tolist() == [True, True, False, False]
    out = prune_to_density(scores, mask, ["a", "b"], 0.5)
    assert out["a"].all() and not out["b"].any()
    out = magnitude_mask({"a": torch.zeros(4), "b": -torch.zeros(4)}, 0.25)
    assert out["a"].tolist() == [True, True, False, False] and not out["b"].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64])
def test_matches_a_brute_force_sort_on_random_inputs(dtype):
    g = torch.Generator().manual_seed(int(torch.finfo(dtype).bits if dtype.is_floating_point else 99))
    specials = torch.tensor([float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -1e-45, 3.0, -3.0, 1e-300])
    for trial in range(120):
        scores, alive = {}, ({} if trial % 2 else None)
        for i in range(int(torch.randint(1, 5, (1,), generator=g))):
            n = int(torch.randint(0, 60, (1,), generator=g))
            kind = trial % 4
            if kind == 0:
                x = torch.randn(n, generator=g) * 10
            elif kind == 1:
                x = torch.randint(-2, 3, (n,), generator=g).double()  # heavy ties, negatives
            elif kind == 2:
                x = specials[torch.randint(0, len(specials), (n,), generator=g)]
            else:
                x = torch.randn(n, generator=g).abs() + 1e6 * (torch.rand(n, generator=g) < 0.1)
            scores[f"l{i}"] = x.to(dtype) if dtype.is_floating_point else x.clamp(-1e9, 1e9).round().to(dtype)
            if alive is not None:
                alive[f"l{i}"] = torch.rand(n, generator=g) < 0.6
        eligible = sum(int(a.sum()) for a in alive.values()) if alive is not None else \
            sum(s.numel() for s in scores.values())
        k = int(torch.randint(0, eligible + 1, (1,), generator=g))
        chunk = int(torch.randint(1, 25, (1,), generator=g))  # many chunk boundaries
        absolute = trial % 3 == 0
        got = keep_top(scores, k, alive, chunk=chunk, absolute=absolute)
        want = brute({n: s.float() if s.dtype == torch.bfloat16 else s for n, s in scores.items()}, k, alive,
                     absolute)
        for n in scores:
            assert torch.equal(got[n], want[n]), (trial, n)


@pytest.mark.parametrize("path", ["band", "radix", "band_overflow", "band_miss"])
def test_large_input_on_every_selection_path(path, monkeypatch):
    import tickets.topk as topk

    if path == "band":  # one pass: the radix selection is never needed
        monkeypatch.setattr(topk, "_select", lambda *a: pytest.fail("radix selection used"))
    elif path == "radix":
        monkeypatch.setattr(topk, "BAND_MIN", 1 << 40)
    elif path == "band_overflow":  # the band pass gives up midway, having written part of the output
        monkeypatch.setattr(topk, "BAND_MAX", 50_000)
    elif path == "band_miss":  # a band that cannot hold the threshold
        monkeypatch.setattr(topk, "_sample_band", lambda *a: (1e30, 2e30))
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.randn(300_000, generator=g), "b": torch.randn(5, 7000, generator=g).round(decimals=2)}
    alive = {"a": torch.rand(300_000, generator=g) < 0.9, "b": torch.ones(5, 7000, dtype=torch.bool)}
    for k in (1, 1234, 150_000, 300_000):
        got = keep_top(scores, k, alive, chunk=4096)
        want = brute(scores, k, alive)
        assert all(torch.equal(got[n], want[n]) for n in scores)


def test_layer_and_global_scope_agree_with_the_brute_force():
    g = torch.Generator().manual_seed(2)
    scores = {"a": torch.randint(0, 4, (40,), generator=g).float(),
              "b": torch.randint(0, 4, (6, 5), generator=g).float()}
    mask = Mask({"a": torch.rand(40, generator=g) < 0.8, "b": torch.rand(6, 5, generator=g) < 0.8})
    group = Group("g", 0.3, ("a", "b"))
    out = prune(scores, mask, [group], scope="global")
    alive = sum(int(m.sum()) for m in mask.values())
    want = brute(scores, alive - int(0.3 * alive + 0.5), dict(mask))
    assert all(torch.equal(out[n], want[n]) for n in scores)
    out = prune(scores, mask, [group], scope="layer")
    for n in scores:
        a = int(mask[n].sum())
        assert torch.equal(out[n], brute({n: scores[n]}, a - int(0.3 * a + 0.5), {n: mask[n]})[n])


def test_nan_is_refused_naming_the_layer_but_not_where_pruned():
    with pytest.raises(ValueError, match="'b'.*NaN"):
        keep_top({"a": torch.ones(3), "b": torch.tensor([1.0, float("nan")])}, 2)
    alive = {"a": torch.tensor([True, False])}
    assert keep_top({"a": torch.tensor([1.0, float("nan")])}, 1, alive)["a"].tolist() == [True, False]


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError, match="k must be an integer in \\[0, 3\\]"):
        keep_top({"a": torch.ones(3)}, 4)
