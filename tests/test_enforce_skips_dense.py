"""All-ones masks cost nothing: no hook for a dense mask, and only the pruned layers multiplied."""

import torch

from tickets.enforce import MaskEnforcer
from tickets.masks import Mask


def test_an_all_ones_mask_attaches_no_hook_and_changes_nothing(tiny_mlp):
    params = {n: p for n, p in tiny_mlp.named_parameters() if n.endswith("weight")}
    before = {n: p.detach().clone() for n, p in params.items()}
    with MaskEnforcer(params, Mask.ones_like({n: p.detach() for n, p in params.items()})) as enforcer:
        assert enforcer._handles == []
        opt = torch.optim.SGD(tiny_mlp.parameters(), lr=0.1)
        tiny_mlp(torch.randn(4, 12)).sum().backward()
        opt.step()
    assert any(not torch.equal(before[n], p) for n, p in params.items())  # training moved the weights


def test_only_layers_with_pruned_weights_are_multiplied(tiny_mlp, monkeypatch):
    params = {n: p for n, p in tiny_mlp.named_parameters() if n.endswith("weight")}
    names = list(params)
    mask = Mask({n: (torch.rand(p.shape) < 0.5) if n == names[0] else torch.ones(p.shape, dtype=torch.bool)
                 for n, p in params.items()})
    calls = []
    real = torch._foreach_mul_
    monkeypatch.setattr(torch, "_foreach_mul_", lambda ps, ms: (calls.append(len(ps)), real(ps, ms)))
    with MaskEnforcer(params, mask):
        opt = torch.optim.Adam(tiny_mlp.parameters(), lr=0.1)
        tiny_mlp(torch.randn(4, 12)).sum().backward()
        opt.step()
    assert calls and set(calls) == {1}
    assert bool((params[names[0]].detach()[~mask[names[0]]] == 0).all())
