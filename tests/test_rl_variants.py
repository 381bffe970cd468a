"""RL environment variants and budgets (issue 10, items 0c, 2, 5, 12): ``env_attrs`` set an
environment's physics after construction, checked, on every environment the domain makes; the
sample-efficiency threshold is one the variant can reach; a user's own ``module:Env-v0``
environment works; a budget SB3 would round up is refused before any training; scoring episodes
are played by θ0."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from domains.rl import RLConfig, RLDomain  # noqa: E402
from domains.rl.domain import algorithm_of  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.errors import ConfigError  # noqa: E402
from tickets.methods import make_runner  # noqa: E402
from tickets.rewind import capture  # noqa: E402

TINY = dict(n_steps=32, batch_size=32, n_epochs=1, net_arch=[8], eval_episodes=1)
LONG_POLE = {"length": 1.0, "masspole": 0.2}


def experiment(steps=64, rewind=0, **domain):
    return {"name": "variant", "train": {"steps": steps}, "pruning": {"levels": 1, "fraction": 0.5},
            "rewind": {"step": rewind}, "domain": {"name": "rl", **TINY, **domain}, "controls": []}


def unwrapped(vec_env):
    return vec_env.unwrapped.envs[0].unwrapped


# ---- env_attrs ------------------------------------------------------------------------------
def test_gymnasium_cartpole_takes_no_physics_keywords():
    """Why env_attrs exist: the README's old route, env_kwargs, is refused by gymnasium 1.x."""
    with pytest.raises(ConfigError, match=r"^env_kwargs: cannot make 'CartPole-v1'"):
        RLConfig(env_kwargs={"length": 1.0})


def test_env_attrs_change_cartpole_physics_and_keep_derived_quantities_consistent():
    cfg = RLConfig(**TINY, env_attrs=LONG_POLE)
    plain = RLConfig(**TINY)
    env, ref = cfg.make_env(1, seed=0), plain.make_env(1, seed=0)
    base, ref_base = unwrapped(env), unwrapped(ref)
    assert (base.length, base.masspole) == (1.0, 0.2)
    assert base.total_mass == pytest.approx(1.2) and base.polemass_length == pytest.approx(0.2)
    # the same state and action: a heavier, longer pole moves differently
    state = np.array([0.0, 0.1, 0.05, -0.1])
    for e in (base, ref_base):
        e.reset(seed=0)
        e.state = state.copy()
    nxt, _, _, _, _ = base.step(1)
    ref_nxt, _, _, _, _ = ref_base.step(1)
    assert not np.allclose(nxt, ref_nxt)
    # the dynamics are those of the new constants (gymnasium's Euler step, recomputed here)
    x, x_dot, theta, theta_dot = state
    temp = (base.force_mag + 0.2 * 1.0 * theta_dot**2 * np.sin(theta)) / 1.2
    theta_acc = (9.8 * np.sin(theta) - np.cos(theta) * temp) / (1.0 * (4.0 / 3.0 - 0.2 * np.cos(theta) ** 2 / 1.2))
    assert nxt[3] == pytest.approx(theta_dot + 0.02 * theta_acc, rel=1e-5)


def test_env_attrs_reach_training_evaluation_and_scoring_environments(monkeypatch):
    domain = RLDomain(RLConfig(**TINY, env_attrs=LONG_POLE))
    model = domain.build_model(seed=0)
    assert unwrapped(algorithm_of(model).env).length == 1.0  # the training environments
    made = []
    original = domain.config.make_env

    def spy(n, seed):
        env = original(n, seed)
        made.append(unwrapped(env).length)
        return env

    monkeypatch.setattr(domain.config, "make_env", spy)
    domain.evaluate(model, "test")
    domain.scoring_batches(1, seed=0, model=model)
    assert made == [1.0, 1.0]


def test_env_attrs_on_the_observation_bounds_update_the_space():
    cfg = RLConfig(**TINY, env_attrs={"x_threshold": 3.0})
    assert cfg.observation_space.high[0] == pytest.approx(6.0)


@pytest.mark.parametrize("attrs, message", [
    ({"lenght": 1.0}, r"env_attrs.lenght: .*no attribute 'lenght'; did you mean 'length'"),
    ({"length": "long"}, r"env_attrs.length: CartPoleEnv.length holds a float"),
    ({"masspole": 0.0}, r"env_attrs.masspole: must be a positive number"),
    ({"total_mass": 2.0}, r"env_attrs.total_mass: .*derived \(masspole \+ masscart\)"),
    ({"step": 1}, r"env_attrs.step: .*method, not a setting"),
    ({"kinematics_integrator": 3}, r"env_attrs.kinematics_integrator: .*holds a str"),
])
def test_bad_env_attrs_are_refused_before_any_training(tmp_path, attrs, message):
    with pytest.raises(ConfigError, match=rf"config\.domain\.{message}"):
        make_runner(load_experiment(experiment(env_attrs=attrs)), tmp_path)
    assert not any(tmp_path.iterdir())


def test_env_attrs_of_other_classic_environments():
    pendulum = RLConfig(env_id="Pendulum-v1", algorithm="sac", env_attrs={"max_torque": 3.0, "g": 9.81})
    assert pendulum.action_space.high[0] == pytest.approx(3.0)  # SAC scales its actions to this
    acrobot = RLConfig(env_id="Acrobot-v1", **TINY, env_attrs={"LINK_LENGTH_1": 1.5, "book_or_nips": "nips"})
    assert unwrapped(acrobot.make_env(1, 0)).LINK_LENGTH_1 == 1.5


# ---- return_threshold --------------------------------------------------------------------------
def test_the_default_threshold_follows_the_variants_episode_cap():
    assert RLConfig(**TINY).threshold == 475.0  # CartPole-v1: 95% of 500 steps
    capped = RLDomain(RLConfig(**TINY, env_kwargs={"max_episode_steps": 100}))
    assert capped.config.threshold == 95.0
    assert capped.summarize([{"step": 32, "mean_return": 100.0}]) == {"return_threshold": 95.0,
                                                                     "steps_to_threshold": 32}


@pytest.mark.parametrize("settings, message", [
    (dict(env_kwargs={"max_episode_steps": 100}, return_threshold=200.0),
     r"return_threshold: 200 is beyond the best return this variant can give \(100, with max_episode_steps 100\)"),
    (dict(env_kwargs={"sutton_barto_reward": True}), r"return_threshold: unset, so CartPole-v1's reward_threshold 475"),
    (dict(env_id="Acrobot-v1", env_kwargs={"max_episode_steps": 80}),
     r"reward_threshold -100 is at or below the worst return this variant can give \(-80"),
])
def test_an_unreachable_or_trivial_threshold_is_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        RLConfig(**TINY, **settings)


# ---- a user's own environment -----------------------------------------------------------------
def test_a_users_own_environment_by_module_and_id(tmp_path):
    cfg = experiment(env_id="rl_tiny_env:TinyCorridor-v0", env_attrs={"length": 8, "speed": 0.5})
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    rows = run.rows()
    assert [(r["level"], r["condition"]) for r in rows] == [(0, "dense"), (1, "ticket")]
    assert all(r["summary"]["return_threshold"] == 5.0 for r in rows)  # the spec's reward_threshold
    domain = RLDomain(load_experiment(cfg).domain_config)
    base = unwrapped(domain.config.make_env(1, 0))
    assert (type(base).__name__, base.length, base.speed) == ("Corridor", 8, 0.5)
    with pytest.raises(ConfigError, match=r"env_attrs.lenght: .*Corridor.*did you mean 'length'"):
        RLConfig(**TINY, env_id="rl_tiny_env:TinyCorridor-v0", env_attrs={"lenght": 8})


# ---- budgets that SB3 would round -------------------------------------------------------------
def test_a_budget_between_rollouts_is_refused_with_the_nearest_valid_ones(tmp_path):
    """configs/rl/ppo_cartpole.yaml has 256-step rollouts; 300 steps trained 512 and said so."""
    exp = load_experiment("configs/rl/ppo_cartpole.yaml", ["train.steps=300", "seeds=[]"])
    with pytest.raises(ConfigError, match=r"^train.steps: 300 is not a multiple of the PPO rollout "
                                          r"\(n_steps 256 x n_envs 1 = 256\).*use 256 or 512$"):
        make_runner(exp, tmp_path)
    assert not any(tmp_path.iterdir())
    exp = load_experiment(experiment(steps=100, n_envs=2, n_steps=16, batch_size=16))
    with pytest.raises(ConfigError, match=r"n_steps 16 x n_envs 2 = 32\).*would train 128 steps; use 96 or 128"):
        make_runner(exp, tmp_path)


def test_recorded_steps_are_the_budget(tmp_path):
    run = make_runner(load_experiment(experiment(steps=64)), tmp_path, show_progress=False).execute()
    assert [r["steps"] for r in run.rows()] == [64, 64]


OFF = dict(algorithm="dqn", batch_size=16, buffer_size=500, learning_starts=32, train_freq=4, net_arch=[8],
           eval_episodes=1, n_steps=None, n_epochs=None)


def off_policy(steps, rewind=0, **domain):
    cfg = experiment(steps=steps, rewind=rewind)
    cfg["domain"] = {"name": "rl", **{k: v for k, v in {**OFF, **domain}.items() if v is not None}}
    return load_experiment(cfg)


@pytest.mark.parametrize("steps, rewind, message", [
    (66, 0, r"^train.steps: 66 is not a multiple of the DQN collection between updates \(train_freq 4 x n_envs 1 = 4\)"
            r".*use 64 or 68$"),
    (32, 0, r"^train.steps: 32 leaves 32 steps after rewind.step 0, not more than learning_starts 32"),
    (64, 16, r"^rewind.step: 16 is within learning_starts \(32\).*θk would be θ0"),
    (64, 40, r"^train.steps: 64 leaves 24 steps after rewind.step 40"),
])
def test_off_policy_budgets_that_would_not_train_as_asked_are_refused(tmp_path, steps, rewind, message):
    with pytest.raises(ConfigError, match=message):
        make_runner(off_policy(steps, rewind), tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_off_policy_budget_past_learning_starts_is_accepted(tmp_path):
    make_runner(off_policy(96, 36), tmp_path)


# ---- scoring episodes are played by θ0 --------------------------------------------------------
def test_snip_scoring_episodes_are_played_by_theta0(tmp_path, monkeypatch):
    from domains.rl import scoring

    players = []
    play = scoring.episode_batch

    def record(config, policy, seed):
        players.append(capture(policy))
        return play(config, policy, seed)

    monkeypatch.setattr(scoring, "episode_batch", record)
    cfg = experiment(steps=32)
    cfg["pruning"] = {"method": "at_init", "scorer": "snip", "compressions": [2.0], "scoring_batches": 2}
    run = make_runner(load_experiment(cfg), tmp_path, show_progress=False).execute()
    theta0 = run.load_state("init")
    assert len(players) == 2
    for weights in players:
        assert all(torch.equal(weights[n], theta0[n]) for n in theta0)


def test_scoring_episodes_depend_on_the_policy_and_seed_alone():
    domain = RLDomain(RLConfig(**TINY))
    a, b = domain.build_model(seed=0), domain.build_model(seed=1)
    mode = a.training
    first = domain.scoring_batches(2, seed=5, model=a)
    torch.rand(10)  # the caller's generator state does not matter
    again = domain.scoring_batches(2, seed=5, model=a)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(first, again) for k in x)
    with torch.no_grad():  # SB3's action head starts near-uniform (gain 0.01): make b's policy its own
        b.action_net.bias.copy_(torch.tensor([-5.0, 5.0]))
    other = domain.scoring_batches(2, seed=5, model=b)
    assert all(bool((y["actions"] == 1).float().mean() > 0.9) for y in other)
    assert any(not torch.equal(x["actions"], y["actions"]) for x, y in zip(first, other))
    assert a.training == mode  # the caller's policy keeps its mode
    with pytest.raises(TypeError, match="model="):
        domain.scoring_batches(1, seed=0)
