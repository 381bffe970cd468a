import torch

from tickets.masks import Mask
from tickets.rewind import capture, random_mask, rewind, shuffled_mask
from tickets.selection import default_prunable


def test_rewind_restores_survivors_bit_for_bit(tiny_mlp):
    theta_k = capture(tiny_mlp)
    with torch.no_grad():
        for p in tiny_mlp.parameters():
            p.add_(torch.randn_like(p))
    params = default_prunable(tiny_mlp)
    mask = Mask({n: torch.rand(p.shape) < 0.3 for n, p in params.items()})
    rewind(tiny_mlp, theta_k, mask)
    state = tiny_mlp.state_dict()
    for name, value in theta_k.items():
        if name in mask:
            m = mask[name]
            assert torch.equal(state[name][m], value[m])
            assert torch.all(state[name][~m] == 0.0)
        else:
            assert torch.equal(state[name], value)


def test_random_mask_keeps_per_layer_counts_with_new_positions():
    mask = Mask({"a": torch.rand(40, 30) < 0.2, "b": torch.rand(10, 40) < 0.6})
    r = random_mask(mask, torch.Generator().manual_seed(0))
    assert r.kept() == mask.kept()
    assert r != mask
    assert r == random_mask(mask, torch.Generator().manual_seed(0))


def test_shuffled_mask_keeps_each_units_fan_in():
    mask = Mask({"a": torch.rand(40, 30) < 0.2, "conv": torch.rand(8, 3, 3, 3) < 0.5})
    s = shuffled_mask(mask, torch.Generator().manual_seed(0))
    assert s != mask
    for n in mask:
        rows = lambda t: t.reshape(t.shape[0], -1).sum(1)  # noqa: E731
        assert torch.equal(rows(s[n]), rows(mask[n]))
