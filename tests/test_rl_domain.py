import json

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
from tickets.optim import OptimizerConfig  # noqa: E402
from tickets.rewind import capture  # noqa: E402


def tiny(**overrides) -> RLDomain:
    """PPO on CartPole with 32-step rollouts: one update per 32 environment steps."""
    settings = dict(n_steps=32, batch_size=32, n_epochs=2, net_arch=[16], eval_episodes=3)
    return RLDomain(RLConfig(**{**settings, **overrides}))


def half_mask(params, seed=0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in params.items()})


def test_check_domain():
    metrics = check_domain(tiny(), steps=64)
    assert set(metrics) == {"mean_return", "std_return"}


def test_model_is_the_policy_with_plain_names():
    domain = tiny(net_arch=[16, 8])
    model = domain.build_model(seed=0)
    assert set(domain.prunable(model)) == {
        "mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.2.weight",
        "mlp_extractor.value_net.0.weight", "mlp_extractor.value_net.2.weight",
        "action_net.weight", "value_net.weight",
    }
    assert algorithm_of(model).policy is model
    assert not any(n.startswith("_tickets") for n, _ in model.named_parameters())
    json.dumps(domain.describe())
    json.dumps(domain.model_identity(model))


OPTIMIZERS = {
    "sgd_momentum": (OptimizerConfig(name="sgd", lr=0.01, momentum=0.9), torch.optim.SGD),
    "adam": (OptimizerConfig(name="adam", lr=3e-3), torch.optim.Adam),
    "adamw_wd": (OptimizerConfig(name="adamw", lr=3e-3, weight_decay=0.01), torch.optim.AdamW),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_pruned_weights_stay_zero_inside_sb3_training(opt_name):
    opt_cfg, opt_cls = OPTIMIZERS[opt_name]
    domain = tiny(optimizer=opt_cfg)
    model = domain.build_model(seed=0)
    params = domain.prunable(model)
    mask = half_mask(params)
    before = {n: p.detach().clone() for n, p in params.items()}
    with MaskEnforcer(params, mask):
        domain.train(model, steps=128, seed=0)
    opt = model.optimizer  # the one PPO.train() stepped
    assert type(opt) is opt_cls
    group = opt.param_groups[0]
    assert group["lr"] == opt_cfg.lr and group["weight_decay"] == opt_cfg.weight_decay
    if opt_name == "sgd_momentum":
        assert group["momentum"] == 0.9
    for n, p in params.items():
        w, m = p.detach(), mask[n]
        assert torch.all(w[~m] == 0.0), n
        # not every survivor: a hidden unit whose outgoing weights are all pruned gets no gradient
        assert (w[m] != before[n][m]).any(), f"{n}: surviving weights did not train"


def test_without_enforcer_pruned_weights_move():
    domain = tiny()
    model = domain.build_model(seed=0)
    params = domain.prunable(model)
    mask = half_mask(params)
    MaskEnforcer(params, mask)  # zeroes once, never attached
    domain.train(model, steps=64, seed=0)
    assert any(bool((p.detach()[~mask[n]] != 0).any()) for n, p in params.items())


def test_same_seed_same_result():
    domain = tiny()
    runs = []
    for _ in range(2):
        model = domain.build_model(seed=0)
        result = domain.train(model, steps=96, seed=5, eval_every=32)
        runs.append((capture(model), result.history, domain.evaluate(model, "test")))
    (w1, h1, m1), (w2, h2, m2) = runs
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert h1 == h2 and m1 == m2
    other = domain.build_model(seed=0)
    domain.train(other, steps=96, seed=6)
    assert not all(torch.equal(w1[k], v) for k, v in capture(other).items())


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    domain = tiny()
    state = torch.get_rng_state()
    a, b, c = domain.build_model(0), domain.build_model(0), domain.build_model(1)
    assert torch.equal(state, torch.get_rng_state())
    wa, wb, wc = capture(a), capture(b), capture(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_steps_history_and_rewind_point():
    domain = tiny()
    model = domain.build_model(seed=0)
    init = capture(model)
    seen, at = [], {}

    def on_step(step):
        seen.append(step)
        if step in (41, 42, 73, 74):
            at[step] = capture(model)

    result = domain.train(model, steps=100, start_step=10, seed=0, on_step=on_step, eval_every=40)
    # 90 steps asked for, so three whole 32-step rollouts: 11, ..., 106
    assert seen == list(range(11, 107)) and result.steps == 106
    assert [r["step"] for r in result.history] == [40, 80, 106]
    assert all(set(r) == {"step", "mean_return", "std_return"} for r in result.history)
    # a step is reported once every update on data up to it is applied: the first rollout
    # ends at step 42, so weights reported at 41 are the initial ones and at 42 are not
    assert all(torch.equal(at[41][k], init[k]) for k in init)
    assert not all(torch.equal(at[42][k], init[k]) for k in init)
    assert all(torch.equal(at[42][k], at[73][k]) for k in init)
    assert not all(torch.equal(at[73][k], at[74][k]) for k in init)


def test_evaluate_is_deterministic_per_split():
    domain = tiny()
    model = domain.build_model(seed=0)
    assert domain.evaluate(model, "test") == domain.evaluate(model, "test")
    assert set(domain.evaluate(model, "validation")) == {"mean_return", "std_return"}
    with pytest.raises(ValueError, match="split"):
        domain.evaluate(model, "tets")


def test_bad_env_id_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^env_id: .*did you mean 'CartPole-v1'"):
        RLConfig(env_id="CartPol-v1")
    with pytest.raises(ConfigError, match=r"^env_id: "):
        RLConfig(env_id="NoSuchEnvironment-v0")


@pytest.mark.parametrize("overrides, key", [
    ({"batch_size": 64, "n_steps": 32}, "batch_size"),
    ({"net_arch": [16, 0]}, "net_arch"),
    ({"gamma": 1.5}, "gamma"),
    ({"n_envs": 0}, "n_envs"),
    ({"clip_range": 0.0}, "clip_range"),
    ({"activation": "gelu"}, "activation"),
    ({"algorithm": "sac"}, "algorithm"),  # CartPole has discrete actions
])
def test_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        RLConfig(**overrides)


def test_experiment_config_builds_the_rl_domain():
    from tickets.config import load_experiment

    base = {"name": "rl", "seed": 0, "train": {"steps": 64}}
    sgd = {"name": "sgd", "lr": 0.01}
    exp = load_experiment({**base, "domain": {"name": "rl", "net_arch": [8], "optimizer": sgd}})
    assert exp.domain_config == RLConfig(net_arch=[8], optimizer=OptimizerConfig(name="sgd", lr=0.01))
    with pytest.raises(ConfigError, match=r"config\.domain\.env_id: "):
        load_experiment({**base, "domain": {"name": "rl", "env_id": "CartPol-v1"}})
