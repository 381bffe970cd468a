"""Pruning-at-initialisation scorers (SNIP, GraSP, SynFlow) against their definitions, and the
exact-k / iterative driver in tickets.at_init."""

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from tickets.at_init import compressions, density_of, keep_count, prune_at_init, prune_to_density, schedule_densities
from tickets.grasp import TEMPERATURE, class_balanced, grasp, grasp_scores
from tickets.masks import Mask
from tickets.registry import scorers
from tickets.scorers import ScoringContext, magnitude
from tickets.selection import default_prunable
from tickets.snip import snip, snip_scores
from tickets.synflow import synflow, synflow_scores

# --- tiny models and contexts --------------------------------------------------------------------

def mlp(sizes, bias=True, act=nn.ReLU):
    layers = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def conv_net(channels=(2, 4, 4), classes=3, bias=False, pool=2, side=6):
    c0, c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(c0, c1, 3, padding=1, bias=bias), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AvgPool2d(pool), nn.Flatten(), nn.Linear(c2 * (side // pool) ** 2, classes, bias=bias))


def ones_forward(shape):
    def forward_ones(model):
        p = next(model.parameters())
        return model(torch.ones(1, *shape, dtype=p.dtype, device=p.device))
    return forward_ones


def ce_loss(model, batch):
    return F.cross_entropy(model(batch["x"]), batch["labels"])


def tempered_loss(model, batch):
    return F.cross_entropy(model(batch["x"]) / TEMPERATURE, batch["labels"])


def make_batches(n_batches, size, dim, classes, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(size, dim, generator=g, dtype=dtype),
             "labels": torch.randint(0, classes, (size,), generator=g)} for _ in range(n_batches)]


def random_mask(prunable, density=0.7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < density for n, p in prunable.items()})


def context(model, mask=None, batches=None, loss=None, forward_ones=None, unavailable=None):
    prunable = default_prunable(model)
    mask = Mask.ones_like({n: p.detach() for n, p in prunable.items()}) if mask is None else mask
    return ScoringContext(weights={n: p.detach() for n, p in prunable.items()}, mask=mask, model=model,
                          prunable=prunable, batches=batches, loss=loss, forward_ones=forward_ones,
                          forward_ones_unavailable=unavailable)


def masked_params(model, prunable, mask):
    """Every parameter of ``model`` by name, detached, prunable ones multiplied by the mask."""
    out = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n in prunable:
        out[n] = out[n] * mask[n].to(out[n].dtype)
    return out


# --- SNIP ----------------------------------------------------------------------------------------

def test_snip_is_abs_grad_times_weight_of_the_masked_net():
    torch.manual_seed(0)
    model = mlp((5, 4, 3), act=nn.Tanh).double()
    prunable = default_prunable(model)
    mask = random_mask(prunable)
    batches = make_batches(3, 8, 5, 3)

    # by hand: θ ⊙ m as leaves, g = mean over batches of ∂L/∂θ, score |g ⊙ θm|
    params = masked_params(model, prunable, mask)
    leaves = {n: params[n].requires_grad_(True) for n in prunable}
    total = {n: torch.zeros_like(v) for n, v in leaves.items()}
    for b in batches:
        loss = F.cross_entropy(functional_call(model, params, (b["x"],)), b["labels"])
        for n, gr in zip(leaves, torch.autograd.grad(loss, list(leaves.values()))):
            total[n] += gr
    expected = {n: (total[n] / len(batches) * leaves[n].detach()).abs() for n in prunable}

    got = snip(context(model, mask, batches, ce_loss))
    assert set(got) == set(prunable)
    for n in prunable:
        assert got[n].dtype == torch.float64 and got[n].device.type == "cpu" and got[n].shape == prunable[n].shape
        torch.testing.assert_close(got[n], expected[n], rtol=1e-12, atol=0)
        assert (got[n][~mask[n]] == 0).all()
    assert scorers.get("snip") is snip


# --- GraSP ---------------------------------------------------------------------------------------

def test_grasp_is_minus_theta_times_explicit_hessian_gradient_product():
    torch.manual_seed(0)
    model = mlp((4, 5, 3), act=nn.Tanh).double()  # 20 + 15 = 35 prunable weights
    prunable = default_prunable(model)
    names = list(prunable)
    shapes = [prunable[n].shape for n in names]
    sizes = [prunable[n].numel() for n in names]
    assert sum(sizes) < 100
    mask = random_mask(prunable, density=0.8)
    batches = make_batches(2, 12, 4, 3)
    fixed = masked_params(model, prunable, mask)
    m_flat = torch.cat([mask[n].reshape(-1).double() for n in names])
    theta = torch.cat([fixed[n].reshape(-1) for n in names])  # masked θ

    def loss_of(flat):
        params = dict(fixed)
        for n, part, shape in zip(names, flat.split(sizes), shapes):
            params[n] = part.reshape(shape)
        return sum(F.cross_entropy(functional_call(model, params, (b["x"],)) / TEMPERATURE, b["labels"])
                   for b in batches) / len(batches)

    H = torch.autograd.functional.hessian(loss_of, theta)
    g = torch.autograd.functional.jacobian(loss_of, theta) * m_flat  # gradient of the masked net
    S = -theta * (H @ g)
    expected = dict(zip(names, (s.reshape(shape) for s, shape in zip(S.split(sizes), shapes))))

    got = grasp_scores(model, prunable, batches, tempered_loss, mask)
    scale = S.abs().max()
    assert scale > 0
    for n in names:
        assert got[n].dtype == torch.float64 and got[n].shape == prunable[n].shape
        torch.testing.assert_close(got[n], expected[n], rtol=1e-7, atol=1e-9 * float(scale))

    registered = grasp(context(model, mask, batches, tempered_loss))
    for n in names:
        assert torch.equal(registered[n], -got[n])  # importance = -S: prune() drops the highest S
    assert scorers.get("grasp") is grasp


def test_class_balanced_takes_per_class_examples():
    batches = [{"x": torch.arange(6.0).reshape(6, 1), "labels": torch.tensor([0, 0, 0, 1, 2, 0])},
               {"x": torch.arange(6.0, 12.0).reshape(6, 1), "labels": torch.tensor([1, 2, 2, 1, 0, 2])}]
    out = class_balanced(batches, per_class=2, num_classes=3)
    assert out["labels"].tolist() == [0, 0, 1, 2, 1, 2]
    assert out["x"].reshape(-1).tolist() == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0]
    with pytest.raises(ValueError, match="fewer than 3"):
        class_balanced(batches, per_class=3, num_classes=4)


# --- SynFlow -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("masked", [False, True])
def test_synflow_conserves_flow_per_layer(kind, masked):
    torch.manual_seed(0)
    if kind == "mlp":
        model, shape = mlp((6, 8, 7, 3), bias=False), (6,)
    else:
        model, shape = conv_net(), (2, 6, 6)
    model.eval()
    prunable = default_prunable(model)
    mask = random_mask(prunable, density=0.6) if masked else None
    scores = synflow(context(model, mask, forward_ones=ones_forward(shape)))
    sums = [float(scores[n].sum()) for n in prunable]
    assert len(sums) >= 3 and all(s > 0 for s in sums)
    for s in sums[1:]:
        assert s == pytest.approx(sums[0], rel=1e-9)
    assert all(scores[n].dtype == torch.float64 for n in prunable)
    if masked:
        assert all((scores[n][~mask[n]] == 0).all() for n in prunable)
    assert scorers.get("synflow") is synflow


def test_float64_synflow_keeps_exact_count_where_float32_underflows():
    torch.manual_seed(0)
    depth, width = 20, 32
    model = mlp((width,) * (depth + 1), bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1e-4, 1e-4)  # R ~ (32 * 5e-5)^20 ~ 1e-55: below float32's smallest subnormal
    prunable = default_prunable(model)
    names = list(prunable)
    forward_ones = ones_forward((width,))

    s32 = synflow_scores(model, prunable, forward_ones, dtype=torch.float32)
    s64 = synflow_scores(model, prunable, forward_ones)
    assert all((s32[n] == 0).all() for n in names)  # float32: every score underflows to a tie at 0
    assert all((s64[n] > 0).all() for n in names)  # float64: none does
    assert sum(s64[n].unique().numel() for n in names) > 0.9 * sum(p.numel() for p in prunable.values())

    total = sum(p.numel() for p in prunable.values())
    density = density_of(1e3)
    k = keep_count(density, total)
    assert k == round(total / 1000) == 20
    threshold = torch.cat([s32[n].reshape(-1) for n in names]).topk(k).values[-1]
    assert sum(int((s32[n] >= threshold).sum()) for n in names) == total  # a threshold keeps everything

    dense = Mask.ones_like({n: p.detach() for n, p in prunable.items()})
    one_shot = prune_to_density(s64, dense, names, density)
    assert sum(one_shot.kept().values()) == k
    ctx = lambda m: context(model, m, forward_ones=forward_ones)
    iterative = prune_at_init(synflow, ctx, dense, names, density, iterations=10)
    assert sum(iterative.kept().values()) == k


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_iterative_synflow_avoids_the_layer_collapse_of_magnitude(kind):
    torch.manual_seed(0)
    if kind == "mlp":  # 2,000 + 10,000 + 10,000 + 1,000 weights; the first layer's are the largest
        model, shape = mlp((20, 100, 100, 100, 10)), (20,)
    else:  # 432 + 4,608 + 1,280 weights; the first conv's are the largest
        model, shape = conv_net(channels=(3, 16, 32), classes=10, bias=True, pool=4, side=8), (3, 8, 8)
    prunable = default_prunable(model)
    names = list(prunable)
    dense = Mask.ones_like({n: p.detach() for n, p in prunable.items()})
    density = density_of(10 ** 3)
    k = keep_count(density, sum(dense.sizes().values()))
    forward_ones = ones_forward(shape)
    make = lambda m: context(model, m, forward_ones=forward_ones)

    mag = prune_at_init(magnitude, make, dense, names, density)
    assert sum(mag.kept().values()) == k
    assert mag.empty_layers()  # one-shot magnitude at init collapses layers

    syn = prune_at_init(synflow, make, dense, names, density, iterations=100)
    assert sum(syn.kept().values()) == k
    assert syn.empty_layers() == [], syn.kept()


# --- models are left untouched -------------------------------------------------------------------

class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.tanh(self.bn(self.fc1(x)))))


def snapshot(model):
    return {
        "params": {n: (p.detach().clone(), p.dtype, p.requires_grad, None if p.grad is None else p.grad.clone())
                   for n, p in model.named_parameters()},
        "ids": {n: id(p) for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "modes": {n: m.training for n, m in model.named_modules()},
    }


def assert_same(a, b):
    assert a["ids"] == b["ids"] and a["modes"] == b["modes"]
    for n, (v, dtype, rg, grad) in a["params"].items():
        v2, dtype2, rg2, grad2 = b["params"][n]
        assert torch.equal(v, v2) and dtype == dtype2 and rg == rg2, n
        assert (grad is None and grad2 is None) or torch.equal(grad, grad2), n
    assert a["buffers"].keys() == b["buffers"].keys()
    assert all(torch.equal(a["buffers"][n], b["buffers"][n]) for n in a["buffers"])


@pytest.mark.parametrize("scorer", [snip, grasp, synflow])
def test_scorers_leave_the_model_untouched(scorer):
    torch.manual_seed(0)
    model = Probe()
    model.train()
    model.fc2.eval()  # a mixed mode must survive too
    model.fc1.bias.requires_grad_(False)
    model.fc1.weight.grad = torch.full_like(model.fc1.weight, 0.5)
    with torch.no_grad():
        model.bn.running_mean.fill_(0.1)
    prunable = default_prunable(model)
    before = snapshot(model)
    ctx = context(model, random_mask(prunable), make_batches(2, 8, 5, 3, dtype=torch.float32),
                  ce_loss, ones_forward((5,)))
    scores = scorer(ctx)
    assert set(scores) == set(prunable)
    assert all(torch.isfinite(s).all() and s.shape == prunable[n].shape for n, s in scores.items())
    assert_same(before, snapshot(model))


# --- exact-k selection and the iterative driver --------------------------------------------------

def test_prune_to_density_is_exact_with_all_scores_tied():
    mask = Mask({"a": torch.ones(10, 10, dtype=torch.bool), "b": torch.ones(7, 3, dtype=torch.bool)})
    scores = {"a": torch.ones(10, 10), "b": torch.ones(7, 3)}
    for density in (0.5, 0.3, 0.1, 0.01, 0.004, 0.0):
        out = prune_to_density(scores, mask, ["a", "b"], density)
        assert sum(out.kept().values()) == keep_count(density, 121) == math.floor(density * 121 + 0.5)


def test_prune_to_density_keeps_only_survivors():
    mask = Mask({"a": torch.tensor([True, False, True, True, False, True]), "z": torch.tensor([False, True])})
    scores = {"a": torch.tensor([1.0, 9.0, 3.0, 2.0, 8.0, 4.0]), "z": torch.tensor([0.0, 0.0])}
    out = prune_to_density(scores, mask, ["a"], 2 / 6)
    assert out["a"].tolist() == [False, False, True, False, False, True]  # the dead 9 and 8 stay dead
    assert out["z"].tolist() == [False, True]  # not in names: unchanged
    out = prune_to_density(scores, mask, ["a"], 5 / 6)  # more than survive: all survivors, no revival
    assert out["a"].tolist() == mask["a"].tolist()
    with pytest.raises(ValueError, match="NaN"):
        prune_to_density({"a": torch.full((6,), float("nan")), "z": scores["z"]}, mask, ["a"], 0.5)


@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_prune_at_init_follows_the_schedule(schedule):
    model = mlp((10, 20, 5))
    prunable = default_prunable(model)
    names = list(prunable)
    dense = Mask.ones_like({n: p.detach() for n, p in prunable.items()})
    total = sum(dense.sizes().values())
    seen_masks, rounds = [], []
    make = lambda m: seen_masks.append(m) or context(model, m)
    density, n = 0.01, 5
    out = prune_at_init(magnitude, make, dense, names, density, iterations=n, schedule=schedule,
                        on_iteration=lambda k, target, m: rounds.append((k, target, sum(m.kept().values()))))
    expected = ([density ** (k / n) for k in range(1, n + 1)] if schedule == "exponential"
                else [1 - (1 - density) * k / n for k in range(1, n + 1)])
    assert [k for k, _, _ in rounds] == list(range(1, n + 1))
    assert [t for _, t, _ in rounds] == pytest.approx(expected, rel=1e-12)
    assert [c for _, _, c in rounds] == [keep_count(t, total) for t in expected]
    assert seen_masks[0] == dense and len(seen_masks) == n  # scores recomputed on each round's mask
    assert [sum(m.kept().values()) for m in seen_masks[1:]] == [c for _, _, c in rounds[:-1]]
    assert sum(out.kept().values()) == keep_count(density, total)
    assert schedule_densities(density, 1) == [density]


def test_compressions_and_densities():
    assert compressions() == pytest.approx([10 ** (0.5 * i) for i in range(1, 7)])
    assert compressions()[-1] == pytest.approx(1000.0) and len(compressions()) == 6
    assert density_of(1000.0) == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        schedule_densities(0.1, 3, "cosine")


# --- errors --------------------------------------------------------------------------------------

def test_clear_errors_when_the_domain_supplies_nothing():
    model = mlp((4, 3))
    with pytest.raises(ValueError, match="SNIP needs scoring batches and a loss from the domain"):
        snip(context(model))
    with pytest.raises(ValueError, match="SNIP needs scoring batches and a loss from the domain"):
        snip(context(model, batches=make_batches(1, 2, 4, 3, torch.float32)))
    with pytest.raises(ValueError, match="GraSP needs scoring batches and a loss from the domain"):
        grasp(context(model, loss=ce_loss, batches=[]))
    with pytest.raises(ValueError, match="SynFlow needs a dense all-ones input: token ids have no all-ones input"):
        synflow(context(model, unavailable="token ids have no all-ones input"))
    with pytest.raises(ValueError, match="SynFlow needs a dense all-ones input"):
        synflow(context(model))
    with pytest.raises(ValueError, match="needs the model"):
        snip(ScoringContext(weights={}, mask=Mask({}), batches=[1], loss=ce_loss))
    with pytest.raises(ValueError, match="not a parameter of the model"):
        snip_scores(model, {"w": nn.Parameter(torch.ones(2))}, [1], ce_loss)
