"""The accelerate loop: schedules, rewinding mid-schedule, accumulation, mixed precision."""

import math

import pytest
import torch

from domains.vision import VisionDomain
from tickets.enforce import MaskEnforcer
from tickets.errors import ConfigError
from tickets.masks import Mask
from tickets.optim import ScheduleConfig
from tickets.rewind import capture, load_state
from tickets.typed import from_dict


def domain(**kw):
    cfg = {"dataset": {"name": "digits"}, "batch_size": 32, "model": "lenet_300_100", **kw}
    return VisionDomain(from_dict(VisionDomain.Config, cfg))


def test_schedule_factors():
    warm = ScheduleConfig(kind="step", warmup_steps=4, milestones=[10, 20], gamma=0.1)
    assert [warm.factor(s, 30) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warm.factor(9, 30) == 1.0 and warm.factor(10, 30) == pytest.approx(0.1)
    assert warm.factor(25, 30) == pytest.approx(0.01)
    cos = ScheduleConfig(kind="cosine", final_factor=0.1)
    assert cos.factor(0, 100) == 1.0 and cos.factor(100, 100) == pytest.approx(0.1)
    assert cos.factor(50, 100) == pytest.approx(0.1 + 0.9 * 0.5)
    # BERT fine-tuning: linear warmup over 10 steps, then linear decay to 0 at the end of the budget
    lin = ScheduleConfig(kind="linear", warmup_steps=10)
    assert lin.factor(4, 110) == pytest.approx(0.5) and lin.factor(9, 110) == 1.0
    assert lin.factor(60, 110) == pytest.approx(0.5) and lin.factor(110, 110) == 0.0
    with pytest.raises(ConfigError, match="milestones: only for kind 'step'"):
        ScheduleConfig(milestones=[5])


def test_training_from_the_rewind_step_replays_the_original_run_bit_for_bit():
    """Data order, learning rate and random draws depend on the step alone: 0 -> 20 equals
    0 -> 8 captured, then 8 -> 20 (a stateless optimizer, so nothing else must be restored)."""
    d = domain(optimizer={"name": "sgd", "lr": 0.05},
               schedule={"kind": "cosine", "warmup_steps": 5})
    full = d.build_model(seed=0)
    theta_k = {}
    d.train(full, steps=20, seed=3, on_step=lambda s: theta_k.update(capture(full)) if s == 8 else None)
    resumed = d.build_model(seed=1)
    load_state(resumed, theta_k)
    d.train(resumed, steps=20, start_step=8, seed=3)
    for (n, a), b in zip(capture(full).items(), capture(resumed).values()):
        assert torch.equal(a, b), n


def test_gradient_accumulation_matches_one_big_batch():
    one, acc = domain(optimizer={"name": "sgd", "lr": 0.1}), domain(optimizer={"name": "sgd", "lr": 0.1},
                                                                      grad_accumulation=4)
    a, b = one.build_model(seed=0), acc.build_model(seed=0)
    one.train(a, steps=5, seed=0)
    acc.train(b, steps=5, seed=0)
    for x, y in zip(capture(a).values(), capture(b).values()):
        assert torch.allclose(x, y, atol=1e-5)
    assert not torch.equal(capture(a)["hidden.0.weight"], capture(one.build_model(seed=0))["hidden.0.weight"])
    with pytest.raises(ConfigError, match="grad_accumulation: must divide batch_size"):
        domain(grad_accumulation=5)


def test_bf16_mixed_precision_trains_with_masks_held():
    d = domain(mixed_precision="bf16", optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.01})
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    mask = Mask({n: torch.rand(p.shape, generator=torch.Generator().manual_seed(0)) < 0.3
                 for n, p in prunable.items()})
    with MaskEnforcer(prunable, mask):
        d.train(model, steps=30, seed=0)
    for n, p in prunable.items():
        assert p.dtype == torch.float32 and torch.all(p.detach()[~mask[n]] == 0.0)
    metrics = d.evaluate(model)
    assert math.isfinite(metrics["loss"]) and metrics["accuracy"] > 0.3


def test_max_grad_norm_clips_the_global_gradient_norm():
    """With SGD at lr 1 the whole update is the clipped gradient: its norm is max_grad_norm."""
    changes = {}
    for clip in (None, 0.01):
        d = domain(optimizer={"name": "sgd", "lr": 1.0}, max_grad_norm=clip)
        model = d.build_model(seed=0)
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        d.train(model, steps=1, seed=0)
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        changes[clip] = float((after - before).norm())
    assert changes[0.01] == pytest.approx(0.01, rel=1e-3)
    assert changes[None] > 0.1
    with pytest.raises(ConfigError, match="max_grad_norm: must be positive"):
        domain(max_grad_norm=0.0)


def test_backward_goes_through_accelerate_only_where_accelerate_does_something():
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from domains.supervised import _backward_for, accelerator_for

    plain = accelerator_for(domain().config)  # one CPU process, fp32: accelerate would only call loss.backward()
    assert _backward_for(plain) is torch.Tensor.backward
    grads = []
    for backward in (plain.backward, torch.Tensor.backward):  # the same gradients, bit for bit
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        x, y = torch.randn(32, 12, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3
        backward(torch.nn.functional.cross_entropy(model(x), y))
        grads.append([p.grad for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))

    def stub(**kw):
        settings = dict(scaler=None, gradient_accumulation_steps=1, distributed_type=DistributedType.NO,
                        backward="accelerate's")
        return SimpleNamespace(**{**settings, **kw})

    assert _backward_for(stub(distributed_type=DistributedType.MULTI_GPU)) is torch.Tensor.backward  # DDP: hooks in the graph
    for kw in [dict(scaler=object()), dict(gradient_accumulation_steps=2),
               dict(distributed_type=DistributedType.DEEPSPEED), dict(distributed_type=DistributedType.MEGATRON_LM)]:
        assert _backward_for(stub(**kw)) == "accelerate's", kw
