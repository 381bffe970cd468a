"""optimizer.implementation: torch's for-loop, foreach and fused optimizer steps.

for_loop and foreach compute the same numbers bit for bit on CPU (so either may be chosen for
speed without changing a result); fused rounds differently (so it is another run: another
directory). Every implementation keeps pruned weights at exactly zero and reaches SB3's policies.
"""

import pytest
import torch

from conftest import TinyMLP, vision_config
from tickets.config import load_experiment
from tickets.enforce import MaskEnforcer
from tickets.errors import ConfigError
from tickets.masks import Mask
from tickets.optim import OptimizerConfig, ScheduleConfig, set_lr
from tickets.selection import default_prunable

SETTINGS = {
    "sgd": dict(name="sgd", lr=0.05),
    "sgd_nesterov_wd": dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam_wd_betas": dict(name="adam", lr=3e-3, weight_decay=1e-3, betas=[0.8, 0.99]),
    "adamw_wd": dict(name="adamw", lr=3e-3, weight_decay=0.05),
}


def train(settings: dict, implementation: str, steps: int = 25):
    """A tiny MLP trained with half its weights pruned and a cosine schedule; its final weights
    and optimizer state."""
    torch.manual_seed(0)
    model = TinyMLP()
    prunable = default_prunable(model)
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in prunable.items()})
    opt = OptimizerConfig(**settings, implementation=implementation).build(model.parameters())
    base = [group["lr"] for group in opt.param_groups]
    schedule = ScheduleConfig(kind="cosine", warmup_steps=5)
    data = torch.Generator().manual_seed(2)
    with MaskEnforcer(prunable, mask):
        for step in range(steps):
            x, y = torch.randn(16, 12, generator=data), torch.randint(0, 3, (16,), generator=data)
            set_lr(opt, base, schedule.factor(step, steps))
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for name, p in prunable.items():
        assert torch.all(p.detach()[~mask[name]] == 0), f"{implementation}: pruned weights of {name} moved"
    state = {(i, k): v.clone() for i, p in enumerate(model.parameters()) for k, v in opt.state[p].items()}
    return {n: p.detach().clone() for n, p in model.named_parameters()}, state


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_for_loop_and_foreach_give_the_same_numbers_bit_for_bit(setting):
    ref_weights, ref_state = train(SETTINGS[setting], "for_loop")
    for implementation in ("default", "foreach"):
        weights, state = train(SETTINGS[setting], implementation)
        assert all(torch.equal(weights[n], ref_weights[n]) for n in ref_weights), implementation
        assert state.keys() == ref_state.keys()
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state), implementation


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_fused_trains_the_same_model_to_rounding_and_keeps_the_mask(setting):
    ref, _ = train(SETTINGS[setting], "for_loop")
    fused, _ = train(SETTINGS[setting], "fused")  # the mask is checked inside train()
    for name in ref:
        torch.testing.assert_close(fused[name], ref[name], rtol=1e-4, atol=1e-5)


def test_the_optimizer_is_built_with_the_implementation():
    model = TinyMLP()
    for implementation, foreach, fused in [("for_loop", False, False), ("foreach", True, False),
                                           ("fused", False, True)]:
        opt = OptimizerConfig(name="adam", implementation=implementation).build(model.parameters())
        assert (bool(opt.defaults["foreach"]), bool(opt.defaults["fused"])) == (foreach, fused)
    default = OptimizerConfig(name="adam").build(model.parameters())
    assert default.defaults["foreach"] is None and not default.defaults["fused"]  # torch's own choice


def test_fused_is_another_run_and_default_is_the_same_run():
    base = load_experiment(vision_config())
    assert load_experiment(vision_config(**{"domain.optimizer.implementation": "default"})).hash() == base.hash()
    fused = load_experiment(vision_config(**{"domain.optimizer.implementation": "fused"}))
    assert fused.hash() != base.hash()
    assert fused.canonical()["domain"]["optimizer"]["implementation"] == "fused"


def test_an_unknown_implementation_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"optimizer\.implementation: 'fast' is not one of"):
        load_experiment(vision_config(), ["domain.optimizer.implementation=fast"])
    with pytest.raises(ConfigError, match="implementation: 'fast' is not one of"):  # built in code, too
        OptimizerConfig(implementation="fast")


def test_sb3_policies_get_the_implementation():
    pytest.importorskip("stable_baselines3")
    from domains.rl import RLConfig, RLDomain

    domain = RLDomain(RLConfig(n_steps=32, batch_size=32, n_epochs=1, net_arch=[8], eval_episodes=1,
                               optimizer=OptimizerConfig(name="adam", lr=3e-4, implementation="fused")))
    policy = domain.build_model(seed=0)
    assert policy.optimizer.defaults["fused"] is True
    assert policy.optimizer.defaults["eps"] == 1e-5  # SB3's own Adam eps is kept beside it
