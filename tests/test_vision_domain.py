import pytest
import torch

from domains.supervised import StepBatchSampler
from domains.vision import VisionDomain
from tickets.domain import check_domain
from tickets.enforce import MaskEnforcer
from tickets.masks import Mask
from tickets.typed import from_dict


def domain(**kw):
    return VisionDomain(from_dict(VisionDomain.Config, {"dataset": {"name": "digits"}, "batch_size": 32, **kw}))


def test_contract():
    metrics = check_domain(domain(), steps=3)
    assert set(metrics) == {"accuracy", "loss"}


@pytest.mark.parametrize("optimizer", [
    {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    {"name": "adam", "lr": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
])
def test_pruned_weights_stay_zero_through_the_accelerate_loop(optimizer):
    d = domain(optimizer=optimizer)
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in prunable.items()})
    before = {n: p.detach().clone() for n, p in prunable.items()}
    with MaskEnforcer(prunable, mask):
        d.train(model, steps=10, seed=0)
    for n, p in prunable.items():
        assert torch.all(p.detach()[~mask[n]] == 0.0)
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]])


def test_training_from_step_k_sees_the_same_batches():
    full = list(StepBatchSampler(100, 16, seed=3, start_step=0, steps=20))
    late = list(StepBatchSampler(100, 16, seed=3, start_step=7, steps=20))
    assert late == full[7:]
    assert full[0] != list(StepBatchSampler(100, 16, seed=4, start_step=0, steps=1))[0]
    epoch = [i for b in full[:6] for i in b]
    assert len(set(epoch)) == 96  # an epoch never repeats an example


def test_same_seed_same_training():
    d = domain()
    a, b = d.build_model(seed=0), d.build_model(seed=0)
    d.train(a, steps=5, seed=1)
    d.train(b, steps=5, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert d.evaluate(a) == d.evaluate(b)


def test_splits_are_disjoint_and_standardised():
    data = domain().data
    assert (len(data.train), len(data.validation), len(data.test)) == (1259, 179, 359)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    x = data.to_inputs(data.train.columns["images"], train=False)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
