import json
import math

import pytest
import torch
from torch import nn

from tickets.collapse import (
    diagnose,
    layer_report,
    max_compression_before_collapse,
    path_survives,
    surviving_paths,
)
from tickets.masks import Mask
from tickets.selection import default_prunable


def mlp_ones(model):
    return model(torch.ones(1, 12))  # float32: the copy casts it to float64


def full_mask(model, names=None):
    params = default_prunable(model) if names is None else {n: dict(model.named_parameters())[n] for n in names}
    return Mask.ones_like({n: p.detach() for n, p in params.items()})


def with_layers(mask, **tensors):
    return Mask({n: tensors.get(n.replace(".", "_"), t) for n, t in mask.items()})


def snapshot(model):
    return {n: t.clone() for n, t in model.state_dict().items()}, model.training, \
        [p.requires_grad for p in model.parameters()]


def assert_unchanged(model, snap):
    state, training, grads = snap
    now = model.state_dict()
    assert set(now) == set(state) and all(torch.equal(now[n], state[n]) for n in state)
    assert now[next(iter(state))].dtype == state[next(iter(state))].dtype
    assert model.training == training and [p.requires_grad for p in model.parameters()] == grads


# ----------------------------------------------------------------------------- MLP

def test_full_mask_survives_and_counts_every_path(tiny_mlp):
    mask = full_mask(tiny_mlp)
    assert path_survives(tiny_mlp, mask, mlp_ones)
    assert surviving_paths(tiny_mlp, mask, mlp_ones) == 12 * 16 * 8 * 3
    report = diagnose(tiny_mlp, mask, mlp_ones)
    assert report["empty_layers"] == [] and report["path_survives"] is True and report["collapsed"] is False
    assert report["density"] == 1.0 and report["compression"] == 1.0


def test_surviving_paths_is_the_path_count_of_a_sparse_relu_mlp(tiny_mlp):
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.4 for n, p in default_prunable(tiny_mlp).items()})
    m = [mask[f"layers.{i}.weight"].double() for i in range(3)]
    expected = float(torch.ones(3, dtype=torch.float64) @ m[2] @ m[1] @ m[0] @ torch.ones(12, dtype=torch.float64))
    assert expected > 0
    assert surviving_paths(tiny_mlp, mask, mlp_ones) == expected


def test_empty_middle_layer_collapses(tiny_mlp):
    snap = snapshot(tiny_mlp)
    mask = with_layers(full_mask(tiny_mlp), layers_1_weight=torch.zeros(8, 16, dtype=torch.bool))
    assert not path_survives(tiny_mlp, mask, mlp_ones)
    assert surviving_paths(tiny_mlp, mask, mlp_ones) == 0.0
    report = layer_report(mask)
    assert report["empty_layers"] == ["layers.1.weight"]
    assert report["layers"]["layers.1.weight"] == {"density": 0.0, "kept": 0, "total": 128}
    assert report["layers"]["layers.0.weight"]["density"] == 1.0
    assert report["density"] == pytest.approx((192 + 24) / (192 + 128 + 24))
    d = diagnose(tiny_mlp, mask, mlp_ones)
    assert d["path_survives"] is False and d["collapsed"] is True and d["surviving_paths"] == 0.0
    assert_unchanged(tiny_mlp, snap)


def test_disconnected_layers_collapse_without_an_empty_layer(tiny_mlp):
    # layer 0 feeds only hidden unit 0; layer 1 reads every hidden unit but unit 0
    l0 = torch.zeros(16, 12, dtype=torch.bool)
    l0[0] = True
    l1 = torch.ones(8, 16, dtype=torch.bool)
    l1[:, 0] = False
    mask = with_layers(full_mask(tiny_mlp), layers_0_weight=l0, layers_1_weight=l1)
    assert layer_report(mask)["empty_layers"] == []
    assert not path_survives(tiny_mlp, mask, mlp_ones)
    l1[3, 0] = True  # one weight reconnects it: 12 inputs x 1 x 1 x 3 outputs
    mask = with_layers(mask, layers_1_weight=l1)
    assert path_survives(tiny_mlp, mask, mlp_ones)
    assert surviving_paths(tiny_mlp, mask, mlp_ones) == 12 * 3


def test_biases_do_not_count_as_paths(tiny_mlp):
    with torch.no_grad():
        for layer in tiny_mlp.layers:
            layer.bias.fill_(5.0)  # a real forward pass would give a non-zero output
    mask = with_layers(full_mask(tiny_mlp), layers_2_weight=torch.zeros(3, 8, dtype=torch.bool))
    assert not path_survives(tiny_mlp, mask, mlp_ones)


def test_additive_parameters_can_be_declared_like_biases():
    class WithOffset(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.offset, self.fc2 = nn.Linear(4, 4), nn.Parameter(torch.zeros(4)), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x) + self.offset))

    net = WithOffset()
    mask = Mask({"fc1.weight": torch.zeros(4, 4, dtype=torch.bool), "fc2.weight": torch.ones(2, 4, dtype=torch.bool)})
    ones = lambda m: m(torch.ones(1, 4))
    assert path_survives(net, mask, ones)  # the offset (set to 1) looks like an input
    assert not path_survives(net, mask, ones, zero=["offset"])


def test_dropout_in_training_mode_is_switched_off_on_the_copy():
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(p=0.999), nn.Linear(6, 2)).train()
    mask = full_mask(net)
    assert surviving_paths(net, mask, lambda m: m(torch.ones(1, 5))) == 5 * 6 * 2
    assert net.training


def test_layernorm_is_treated_as_its_affine_scale():
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2))
    ones = lambda m: m(torch.ones(2, 3))
    mask = full_mask(net)
    assert surviving_paths(net, mask, ones) == 2 * 3 * 4 * 2  # a real LayerNorm would zero a constant input
    ln_mask = Mask({**mask.to_dict(), "1.weight": torch.zeros(4, dtype=torch.bool)})
    assert not path_survives(net, ln_mask, ones)


def test_a_model_that_goes_negative_is_refused():
    class Negate(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return -self.fc(x)

    with pytest.raises(ValueError, match="negative"):
        path_survives(Negate(), full_mask(Negate()), lambda m: m(torch.ones(1, 3)))


def test_path_counts_beyond_float64_fall_back_to_fan_in_scaling():
    net = nn.Sequential(*[m for _ in range(180) for m in (nn.Linear(64, 64, bias=False), nn.ReLU())])
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.9 for n, p in net.named_parameters()})
    ones = lambda m: m(torch.ones(1, 64))
    assert not math.isfinite(surviving_paths(net, mask, ones))  # ~57^180 paths
    assert path_survives(net, mask, ones)
    report = diagnose(net, mask, ones)
    assert report["path_survives"] is True and report["surviving_paths"] is None
    cut = Mask({**mask.to_dict(), "200.weight": torch.zeros(64, 64, dtype=torch.bool)})
    assert not path_survives(net, cut, ones)


def test_mask_must_fit_the_model(tiny_mlp):
    with pytest.raises(KeyError):
        diagnose(tiny_mlp, Mask({"nope.weight": torch.ones(2, dtype=torch.bool)}))
    with pytest.raises(ValueError):
        path_survives(tiny_mlp, Mask({"layers.0.weight": torch.ones(2, 2, dtype=torch.bool)}), mlp_ones)


# ----------------------------------------------------------------------------- residual net

class Block(nn.Module):
    def __init__(self, c_in, c_out, conv_shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
                         if conv_shortcut else nn.Identity())

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, conv_shortcut):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(4)
        self.block = Block(4, 6 if conv_shortcut else 4, conv_shortcut)
        self.output = nn.Linear(6 if conv_shortcut else 4, 2)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.block(x)
        x = nn.functional.max_pool2d(x, 2)
        return self.output(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def res_ones(model):
    return model(torch.ones(2, 3, 6, 6))


def pruned(mask, *names):
    return Mask({n: (torch.zeros_like(t) if n in names else t) for n, t in mask.items()})


@pytest.fixture
def trained_mode_resnets():
    torch.manual_seed(0)
    nets = {k: TinyResNet(conv_shortcut=k) for k in (False, True)}
    for net in nets.values():  # non-trivial BN statistics, and left in training mode
        net.train()
        net(torch.randn(4, 3, 6, 6))
    return nets


@pytest.mark.parametrize("conv_shortcut", [False, True])
def test_shortcut_bridges_an_empty_main_path(trained_mode_resnets, conv_shortcut):
    net = trained_mode_resnets[conv_shortcut]
    snap = snapshot(net)
    mask = full_mask(net)
    assert path_survives(net, mask, res_ones)
    for layer in ("block.conv1.weight", "block.conv2.weight"):
        main_cut = pruned(mask, layer)
        report = diagnose(net, main_cut, res_ones)
        assert report["empty_layers"] == [layer]
        assert report["path_survives"] is True and report["collapsed"] is False
        assert json.loads(json.dumps(report)) == report
    assert_unchanged(net, snap)


def test_pruning_the_shortcut_too_collapses(trained_mode_resnets):
    net = trained_mode_resnets[True]
    snap = snapshot(net)
    mask = full_mask(net)
    assert "block.shortcut.0.weight" in mask
    assert path_survives(net, pruned(mask, "block.shortcut.0.weight"), res_ones)  # main path alone
    both = pruned(mask, "block.conv1.weight", "block.shortcut.0.weight")
    assert not path_survives(net, both, res_ones)
    assert diagnose(net, both, res_ones)["empty_layers"] == ["block.conv1.weight", "block.shortcut.0.weight"]
    assert_unchanged(net, snap)


def test_a_masked_batchnorm_gamma_cuts_its_channels(trained_mode_resnets):
    net = trained_mode_resnets[False]
    names = [*default_prunable(net), "stem_bn.weight"]
    mask = full_mask(net, names)
    assert path_survives(net, mask, res_ones)
    assert not path_survives(net, pruned(mask, "stem_bn.weight"), res_ones)


def test_model_hooks_and_gradients_are_left_alone(trained_mode_resnets):
    from tickets.early_bird import slimming_penalty

    net = trained_mode_resnets[True]
    handles = slimming_penalty(net, 0.1)
    res_ones(net).sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    assert path_survives(net, full_mask(net), res_ones)
    assert all(torch.equal(p.grad, grads[n]) for n, p in net.named_parameters())
    handles.remove()


# ----------------------------------------------------------------------------- summaries

def test_max_compression_before_collapse():
    results = [(2.0, True), (8.0, False), (4.0, True), (16.0, True), (1.0, True)]
    assert max_compression_before_collapse(results) == 4.0  # 16x survives again, but after a collapse
    assert max_compression_before_collapse([(3.0, True), (1.5, True)]) == 3.0
    assert max_compression_before_collapse([(1.0, False), (2.0, True)]) is None
    assert max_compression_before_collapse([]) is None
    assert max_compression_before_collapse([(2.0, True), (4.0, True), (4.0, False)]) == 2.0


def test_diagnose_without_forward_ones_is_json_and_reports_empty_layers(tiny_mlp):
    mask = with_layers(full_mask(tiny_mlp), layers_2_weight=torch.zeros(3, 8, dtype=torch.bool))
    report = diagnose(tiny_mlp, mask)
    assert report["path_survives"] is None and report["surviving_paths"] is None
    assert report["collapsed"] is True and report["empty_layers"] == ["layers.2.weight"]
    assert report["compression"] == pytest.approx(1 / report["density"])
    assert json.loads(json.dumps(report)) == report
    empty = Mask({n: torch.zeros_like(t) for n, t in mask.items()})
    assert diagnose(tiny_mlp, empty)["compression"] is None
