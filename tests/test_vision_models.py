import fnmatch
import math

import pytest
import torch
from torch import nn

from domains.vision.models import MODELS, LeNet300100, build
from tickets import Mask, MaskEnforcer
from tickets.selection import default_prunable

CIFAR, MNIST = (3, 32, 32), (1, 28, 28)
GLOROT = ["lenet_300_100", "lenet_5", "conv_2", "conv_4", "conv_6"]
KAIMING = ["resnet_20", "resnet_32", "resnet_56", "resnet_18", "vgg_11", "vgg_16", "vgg_19"]
WIDTHLESS = ["lenet_300_100", "lenet_5"]

# Weights and biases at 3x32x32 -> 10 classes.
PARAMS = {
    "lenet_300_100": 953_010,
    "lenet_5": 62_006,
    "conv_2": 4_301_642,
    "conv_4": 2_425_930,
    "conv_6": 2_262_602,
    "resnet_20": 272_474,
    "resnet_32": 466_906,
    "resnet_56": 855_770,
    "resnet_18": 11_173_962,
    "vgg_11": 9_228_362,
    "vgg_16": 14_724_042,
    "vgg_19": 20_035_018,
}


def seeded(name, shape=CIFAR, classes=10, seed=0, **kw):
    torch.manual_seed(seed)
    return build(name, shape, classes, **kw)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def n_conv_weights(model):
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


def test_the_zoo():
    assert set(MODELS) == set(GLOROT) | set(KAIMING) == set(PARAMS)


CASES = [(n, s, 10) for n in MODELS for s in (MNIST, CIFAR)] + [
    ("resnet_18", (3, 64, 64), 200),
    ("lenet_300_100", (1, 8, 8), 10),
    ("conv_6", (1, 8, 8), 10),
]


@pytest.mark.parametrize("name,shape,classes", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s, _ in CASES])
def test_forward_and_backward(name, shape, classes):
    model = seeded(name, shape, classes)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, classes)
    out.logsumexp(1).sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert model.output.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, *shape)).shape == (1, classes)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count(name):
    assert n_params(build(name, CIFAR, 10)) == PARAMS[name]


def test_counts_match_the_papers():
    conv2, conv4, conv6 = (build(f"conv_{d}", CIFAR, 10) for d in (2, 4, 6))
    # Frankle & Carbin 2019, Figure 2: all weights / conv weights.
    assert round(n_params(conv2) / 1e6, 1) == 4.3 and n_conv_weights(conv2) == pytest.approx(38e3, rel=0.02)
    assert round(n_params(conv4) / 1e6, 1) == 2.4 and n_conv_weights(conv4) == pytest.approx(260e3, rel=0.02)
    assert round(n_conv_weights(conv6) / 1e6, 1) == 1.1
    # The figure's 1.7M for Conv-6 does not follow from its layers: the 4x4x256 map alone
    # feeds 4096 x 256 = 1.05M weights into the first fc layer (see the models docstring).
    assert 4096 * 256 + n_conv_weights(conv6) > 2.1e6
    assert round(n_params(build("lenet_300_100", MNIST, 10)) / 1e3) == 267  # 266,610 ("266K" weights)
    resnet20 = build("resnet_20", CIFAR, 10)
    assert round(n_params(resnet20) / 1e6, 2) == 0.27  # He et al. 2016, Table 6
    assert n_conv_weights(resnet20) == pytest.approx(270e3, rel=0.02)  # Frankle & Carbin 2019: 270K
    assert round(n_params(build("vgg_16", CIFAR, 10)) / 1e6, 1) == 14.7
    assert round(n_conv_weights(build("vgg_19", CIFAR, 10)) / 1e6, 1) == 20.0  # Frankle & Carbin: 20.0M
    assert round(n_params(build("resnet_18", CIFAR, 10)) / 1e6, 1) == 11.2


@pytest.mark.parametrize("name", MODELS)
def test_output_layer_is_named_output(name):
    model = build(name, CIFAR, 7)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert linears[-1] == "output" and model.output.out_features == 7
    names = list(dict(model.named_parameters()))
    assert fnmatch.filter(names, "output.weight") == ["output.weight"]
    assert list(default_prunable(model))[-1] == "output.weight"


def test_readable_names():
    names = set(dict(build("resnet_20", CIFAR, 10).named_parameters()))
    assert {"conv1.weight", "bn1.weight", "stages.0.0.conv1.weight", "stages.1.0.shortcut.conv.weight",
            "stages.2.2.bn2.bias", "output.weight", "output.bias"} <= names
    assert "stages.0.0.shortcut.conv.weight" not in names  # identity shortcut in the first stage
    assert {"layers.0.conv.weight", "layers.0.bn.weight"} <= set(dict(build("vgg_11", CIFAR, 10).named_parameters()))
    assert {"convs.5.weight", "hidden.1.weight"} <= set(dict(build("conv_6", CIFAR, 10).named_parameters()))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights(name):
    a, b, c = seeded(name, seed=0), seeded(name, seed=0), seeded(name, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["output.weight"], sc["output.weight"])


def assert_std(weight, expected):
    assert abs(weight.std().item() / expected - 1) < 0.1
    assert abs(weight.mean().item()) < 0.1 * expected


@pytest.mark.parametrize("name,layer", [
    ("resnet_18", "stages.3.1.conv2"), ("resnet_56", "stages.2.8.conv1"), ("vgg_16", "layers.12.conv"),
    ("resnet_18", "output"),
])
def test_kaiming_normal_fan_in(name, layer):
    weight = seeded(name).get_submodule(layer).weight.detach()
    fan_in = weight[0].numel()
    assert_std(weight, math.sqrt(2 / fan_in))


@pytest.mark.parametrize("name,layer", [("conv_6", "hidden.0"), ("conv_2", "convs.1"), ("lenet_300_100", "hidden.0")])
def test_glorot_normal(name, layer):
    weight = seeded(name).get_submodule(layer).weight.detach()
    receptive = weight[0, 0].numel()
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    assert_std(weight, math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("name", GLOROT)
def test_glorot_models_have_zero_biases(name):
    biases = [p for n, p in seeded(name).named_parameters() if n.endswith(".bias")]
    assert biases and all(torch.all(b == 0) for b in biases)


@pytest.mark.parametrize("name", KAIMING)
def test_batchnorm_and_bias_init(name):
    model = seeded(name)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert torch.all(model.output.bias == 0)


@pytest.mark.parametrize("name,width,first,last", [
    ("resnet_20", 8, "conv1", 32), ("resnet_56", 32, "conv1", 128), ("resnet_18", 16, "conv1", 128),
    ("vgg_11", 16, "layers.0.conv", 128), ("vgg_19", 8, "layers.0.conv", 64),
    ("conv_2", 32, "convs.0", None), ("conv_4", 16, "convs.0", None), ("conv_6", 8, "convs.0", None),
])
def test_width_scales_channels(name, width, first, last):
    model = build(name, CIFAR, 10, width=width)
    assert model.get_submodule(first).out_channels == width
    wider = width > MODELS[name].default_width
    assert (n_params(model) > PARAMS[name]) if wider else (n_params(model) < PARAMS[name])
    if last is not None:  # ResNets and VGG: the output layer reads the last stage's channels
        assert model.output.in_features == last
    else:  # Conv-N: channels w, 2w, 4w; fc layers stay 256 wide
        assert model.convs[-1].out_channels == width * 2 ** (len(model.convs) // 2 - 1)
        assert [h.out_features for h in model.hidden] == [256, 256]
    assert model(torch.randn(2, *CIFAR)).shape == (2, 10)


def test_default_width_is_the_papers():
    for name in ["resnet_20", "resnet_18", "vgg_16", "conv_4"]:
        torch.manual_seed(0)
        a = build(name, CIFAR, 10)
        torch.manual_seed(0)
        b = build(name, CIFAR, 10, width=MODELS[name].default_width)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert build("resnet_20", CIFAR, 10).conv1.out_channels == 16
    assert build("vgg_16", CIFAR, 10).output.in_features == 512


@pytest.mark.parametrize("name", WIDTHLESS)
def test_width_is_refused_where_there_is_none(name):
    with pytest.raises(ValueError, match=rf"width: {name} takes no width"):
        build(name, MNIST, 10, width=32)
    with pytest.raises(ValueError, match="width"):
        MODELS[name](MNIST, 10, 32)


@pytest.mark.parametrize("width", [0, -16, 2.5, True, "16"])
def test_bad_width(width):
    with pytest.raises(ValueError, match="width must be a positive integer"):
        build("resnet_20", CIFAR, 10, width=width)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown vision model 'resnet20' \(did you mean 'resnet_20'\?\); known: "):
        build("resnet20", CIFAR, 10)
    with pytest.raises(ValueError, match="unknown vision model 'transformer'; known: lenet_300_100, lenet_5, "):
        build("transformer", CIFAR, 10)


@pytest.mark.parametrize("name,shape", [("vgg_16", (1, 8, 8)), ("lenet_5", (1, 8, 8)), ("conv_6", (3, 4, 4))])
def test_too_small_inputs_are_refused(name, shape):
    with pytest.raises(ValueError, match="too small"):
        build(name, shape, 10)


@pytest.mark.parametrize("shape", [(784,), (28, 28), (1, 28, 28, 1), (0, 28, 28)])
def test_input_shape_must_be_chw(shape):
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, height, width\)"):
        build("lenet_300_100", shape, 10)


def test_resnet18_keeps_a_stride_one_stem_at_64x64():
    model = build("resnet_18", (3, 64, 64), 200)
    seen = []
    model.stages[-1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(torch.randn(2, 3, 64, 64))
    assert seen == [(2, 512, 8, 8)]
    assert n_params(model) == PARAMS["resnet_18"] + 190 * 513  # only the output layer grows


def test_lenet_300_100_class_keeps_its_interface():
    model = LeNet300100()
    assert list(dict(model.named_parameters())) == [
        "hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias", "output.weight", "output.bias"]
    assert model(torch.randn(3, 784)).shape == model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_mask_enforcer_keeps_a_pruned_resnet_sparse():
    model = seeded("resnet_20")
    prunable = default_prunable(model)
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.2 for n, p in prunable.items()})
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with MaskEnforcer(prunable, mask):
        for _ in range(2):
            loss = nn.functional.cross_entropy(model(torch.randn(4, *CIFAR)), torch.randint(0, 10, (4,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert all(torch.all(p.detach()[~mask[n]] == 0) for n, p in prunable.items())
