"""A2C, DQN, SAC and TD3 next to PPO: pruned weights (online and target) stay zero inside SB3."""

import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from domains.rl import RLConfig, RLDomain  # noqa: E402
from domains.rl.domain import algorithm_of  # noqa: E402
from tickets.domain import check_domain  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.errors import ConfigError  # noqa: E402
from tickets.masks import Mask  # noqa: E402

TINY = {
    "ppo": dict(env_id="CartPole-v1", n_steps=32, batch_size=32, n_epochs=2),
    "a2c": dict(env_id="CartPole-v1", n_steps=8),
    "dqn": dict(env_id="CartPole-v1", batch_size=16, buffer_size=500, learning_starts=20, train_freq=4,
                target_update_interval=40),
    "sac": dict(env_id="Pendulum-v1", batch_size=16, buffer_size=500, learning_starts=20),
    "td3": dict(env_id="Pendulum-v1", batch_size=16, buffer_size=500, learning_starts=20),
}
STEPS = {"ppo": 128, "a2c": 128, "dqn": 200, "sac": 120, "td3": 120}


def tiny(algorithm: str, **overrides) -> RLDomain:
    return RLDomain(RLConfig(algorithm=algorithm, net_arch=[16], eval_episodes=1,
                             **{**TINY[algorithm], **overrides}))


def half_mask(params, seed=0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in params.items()})


@pytest.mark.parametrize("algorithm", list(TINY))
def test_pruned_online_and_target_weights_stay_zero(algorithm):
    domain = tiny(algorithm)
    model = domain.build_model(seed=0)
    prunable = domain.prunable(model)
    ties = domain.tied_parameters(model)
    params = dict(model.named_parameters())
    assert not set(ties) & set(prunable)
    mask = half_mask(prunable)
    before = {n: p.detach().clone() for n, p in prunable.items()}
    enforced = Mask({**mask, **{f: mask[leader] for f, leader in ties.items()}})  # as tickets/runner.py
    with MaskEnforcer({**prunable, **{f: params[f] for f in ties}}, enforced):
        domain.train(model, steps=STEPS[algorithm], seed=0)
    for n, p in prunable.items():
        w, m = p.detach(), mask[n]
        assert torch.all(w[~m] == 0.0), n
        assert (w[m] != before[n][m]).any(), f"{n}: surviving weights did not train"
    for f, leader in ties.items():
        assert torch.all(params[f].detach()[~mask[leader]] == 0.0), f


def test_dqn_hard_target_update_copies_the_mask():
    domain = tiny("dqn")
    model = domain.build_model(seed=0)
    prunable, ties = domain.prunable(model), domain.tied_parameters(model)
    params = dict(model.named_parameters())
    target0 = {f: params[f].detach().clone() for f in ties}
    mask = half_mask(prunable, seed=1)
    enforced = Mask({**mask, **{f: mask[leader] for f, leader in ties.items()}})
    with MaskEnforcer({**prunable, **{f: params[f] for f in ties}}, enforced):
        domain.train(model, steps=200, seed=0)
    for f, leader in ties.items():
        assert f.startswith("q_net_target.")
        target = params[f].detach()
        assert torch.all(target[~mask[leader]] == 0.0), f
        assert not torch.equal(target, target0[f] * mask[leader]), f"{f}: no target update happened"
    # the last hard copy (tau=1) came after the online net's last updates, or near them
    assert algorithm_of(model).tau == 1.0


@pytest.mark.parametrize("algorithm", list(TINY))
def test_tied_parameters_map_targets_to_online_weights(algorithm):
    domain = tiny(algorithm)
    model = domain.build_model(seed=0)
    params, prunable = dict(model.named_parameters()), domain.prunable(model)
    ties = domain.tied_parameters(model)
    targets = {n for n in params if "_target." in n and n.endswith(".weight")}
    assert set(ties) == targets
    for f, leader in ties.items():
        assert leader in prunable and params[f].shape == params[leader].shape
        assert leader == f.replace("_target.", ".", 1)
    assert all("_target" not in n for n in prunable)


@pytest.mark.parametrize(("algorithm", "env_id"), [("dqn", "Pendulum-v1"), ("sac", "CartPole-v1"),
                                                   ("td3", "CartPole-v1")])
def test_mismatched_action_space_is_refused(algorithm, env_id):
    with pytest.raises(ConfigError, match=r"^algorithm: .*needs a (discrete|continuous).* action space; "):
        RLConfig(algorithm=algorithm, env_id=env_id)


def test_keys_of_other_algorithms_are_refused_and_defaults_follow_the_algorithm():
    with pytest.raises(ConfigError, match=r"^n_epochs: not used by algorithm 'dqn'"):
        RLConfig(algorithm="dqn", n_epochs=3)
    assert RLConfig(algorithm="dqn").batch_size == 32 and RLConfig(algorithm="sac", env_id="Pendulum-v1").batch_size == 256
    assert RLConfig().n_steps == 256 and RLConfig(algorithm="a2c").n_steps == 5


def test_step_multiple():
    assert tiny("a2c").step_multiple() == 8
    assert tiny("dqn").step_multiple() == 4
    assert tiny("sac", n_envs=2).step_multiple() == 2


@pytest.mark.parametrize("algorithm", ["dqn", "sac", "td3"])
def test_off_policy_reports_increasing_steps_and_forward_ones(algorithm):
    domain = tiny(algorithm)
    model = domain.build_model(seed=0)
    seen = []
    result = domain.train(model, steps=60, seed=0, on_step=seen.append)
    assert seen == list(range(1, 61)) and result.steps == 60
    out = domain.forward_ones(model)
    assert out is not None and out.ndim == 2 and torch.isfinite(out).all()
    assert domain.scoring_batches(1, seed=0) is None
    with pytest.raises(ValueError, match="PPO and A2C on discrete actions"):
        domain.scoring_loss(model, {})


def test_a2c_scoring_loss():
    domain = tiny("a2c")
    model = domain.build_model(seed=0)
    (batch,) = domain.scoring_batches(1, seed=0, model=model)
    assert torch.isfinite(domain.scoring_loss(model, batch))


@pytest.mark.parametrize("algorithm", list(TINY))
def test_check_domain(algorithm):
    metrics = check_domain(tiny(algorithm), steps=STEPS[algorithm] // 2)
    assert set(metrics) == {"mean_return", "std_return"}
