"""An RL config is checked without importing torch or stable-baselines3 (domains/rl/config.py; SB3
takes ~2 s to import), with the same checks and one-line errors as when it ran after them: the
environment is probed with gymnasium alone (the spaces SB3's vectorised wrappers would give are
computed, and checked here against SB3's), and the algorithms' defaults are a plain table (checked
here against SB3's signatures). Atari configs import SB3 for its AtariWrapper."""

import inspect
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from import_probe import LOAD, RUN, probe
from gymnasium import spaces

from tickets.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ALL_CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs" / "rl").glob("*.yaml"))
CONFIGS = [c for c in ALL_CONFIGS if "atari" not in c]
HEAVY = ("torch", "stable_baselines3")

def python(script: str, *args: str) -> tuple[str, str]:
    return probe(HEAVY, script, *args)


def test_every_shipped_non_atari_rl_config_loads_without_torch_or_sb3():
    assert len(CONFIGS) >= 6
    out, err = python(LOAD, *CONFIGS)
    assert out == "heavy imported: []", err


def test_the_rl_package_and_its_config_do_not_import_torch_and_the_domain_loads_on_first_use():
    out, err = python("import sys\nimport domains.rl\nimport domains.rl.config\n"
                      "print('heavy imported:', [m for m in HEAVY if m in sys.modules])")
    assert out == "heavy imported: []", err
    out, err = python("import sys\nimport domains.rl\nfrom domains.rl.domain import RLDomain\n"
                      "assert domains.rl.RLDomain is RLDomain and RLDomain.Config is domains.rl.RLConfig\n"
                      "print('heavy imported:', [m for m in HEAVY if m in sys.modules])")
    assert out == "heavy imported: ['torch', 'stable_baselines3']", err


KNOWN_KEYS = ("activation, algorithm, atari, batch_size, buffer_size, clip_range, device, ent_coef, env_attrs, "
              "env_id, env_kwargs, eval_episodes, exploration_final_eps, exploration_fraction, frame_stack, "
              "gae_lambda, gamma, gradient_steps, learning_starts, max_grad_norm, n_envs, n_epochs, n_steps, "
              "net_arch, optimizer, policy, policy_delay, return_threshold, target_update_interval, tau, train_freq")


# the messages are those given when the check imported torch and SB3 (before issue 11)
@pytest.mark.parametrize(("config", "overrides", "error"), [
    ("ppo_cartpole", ["domain.gamma=2"], "config.domain.gamma: must be in (0, 1], got 2.0"),
    ("ppo_cartpole", ["domain.gama=0.9"],
     f"config.domain.gama: unknown key; did you mean 'gamma'? (known keys: {KNOWN_KEYS})"),
    ("ppo_cartpole", ["domain.env_id=CartPol-v1"],
     "config.domain.env_id: 'CartPol-v1' is not a registered gymnasium environment; did you mean 'CartPole-v1'?"),
    ("dqn_cartpole", ["domain.n_steps=5"], "config.domain.n_steps: not used by algorithm 'dqn' (only by ppo, a2c)"),
    ("dqn_cartpole", ["domain.env_id=Pendulum-v1"],
     "config.domain.algorithm: 'dqn' needs a discrete action space; Pendulum-v1 has Box(-2.0, 2.0, (1,), float32)"),
    ("sac_pendulum", ["domain.env_id=CartPole-v1"],
     "config.domain.algorithm: 'sac' needs a continuous (Box) action space; CartPole-v1 has Discrete(2)"),
    ("dqn_cartpole", ["domain.buffer_size=10"], "config.domain.batch_size: 64 is larger than buffer_size 10"),
    ("sac_pendulum", ["domain.policy=cnn"],
     "config.domain.policy: 'cnn' needs image observations (uint8, height x width x channels); Pendulum-v1 gives "
     "Box([-1. -1. -8.], [1. 1. 8.], (3,), float32); for Atari frames set atari: true"),
    ("ppo_cartpole", ["domain.atari=true"],
     "config.domain.atari: CartPole-v1 is not an Atari (ALE) environment; the Atari wrappers need one"),
    ("ppo_cartpole", ["domain.env_kwargs.foo=1"],
     "config.domain.env_kwargs: cannot make 'CartPole-v1': CartPoleEnv.__init__() got an unexpected keyword "
     "argument 'foo' was raised from the environment creator for CartPole-v1 with kwargs ({'foo': 1})"),
    ("ppo_cartpole", ["domain.env_id=FrozenLake-v1", "domain.frame_stack=2"],
     "config.domain.env_kwargs: cannot make 'FrozenLake-v1': VecFrameStack only works with gym.spaces.Box and "
     "gym.spaces.Dict observation spaces"),
    ("ppo_cartpole", ["domain.env_attrs.lenght=1"],
     "config.domain.env_attrs.lenght: CartPole-v1's environment (CartPoleEnv) has no attribute 'lenght'; did you "
     "mean 'length'? (its settings: force_mag, gravity, kinematics_integrator, length, masscart, masspole, tau, "
     "theta_threshold_radians, x_threshold)"),
    ("ppo_cartpole", ["domain.env_kwargs.max_episode_steps=100", "domain.return_threshold=150"],
     "config.domain.return_threshold: 150 is beyond the best return this variant can give (100, with "
     "max_episode_steps 100): no run would reach it; set return_threshold to a return it can reach"),
])
def test_a_bad_domain_value_is_refused_before_torch_is_imported(config, overrides, error):
    out, err = python(RUN, "run", f"configs/rl/{config}.yaml", *overrides)
    assert out == "heavy imported: [] exit: 2", err
    assert err == f"tickets: error: {error}"


# ---- the torch-free parts agree with torch and SB3 -----------------------------------------------

def test_device_strings_are_refused_with_torchs_own_message():
    torch = pytest.importorskip("torch")
    from domains.rl.config import PLAIN_DEVICE, check_device

    for device in ("cpu", "cuda", "mps", "cuda:0", "cuda:7", "cpu:0", "mps:1", "cuda:99"):
        assert PLAIN_DEVICE.fullmatch(device)
        torch.device(device)
    check_device("meta")  # not a plain one: torch decides
    for device in ("auto", "CUDA", "cuda:01", "cuda:x", "", "gpu"):
        with pytest.raises(RuntimeError) as real:
            torch.device(device)
        with pytest.raises(ConfigError) as ours:
            check_device(device)
        assert str(ours.value) == f"device: {real.value}"


def test_the_algorithm_table_states_sb3s_defaults():
    pytest.importorskip("stable_baselines3")
    from domains.rl.algorithm_specs import ALGORITHM_KEYS, SPECS
    from domains.rl.algorithms import ALGORITHMS

    own = {("ppo", "n_steps"): 256, ("ppo", "n_epochs"): 4}  # shorter rollouts than SB3's 2048 x 10
    # keys SB3 reads that the domain leaves at SB3's default: SAC's "auto" entropy coefficient, and
    # the off-policy algorithms' n-step returns (n_steps means a rollout's length here)
    left_at_sb3 = {("dqn", "n_steps"), ("sac", "n_steps"), ("td3", "n_steps"), ("sac", "ent_coef")}
    assert list(ALGORITHMS) == list(SPECS)
    left = set()
    for name, spec in SPECS.items():
        assert ALGORITHMS[name].spec is spec
        params = inspect.signature(ALGORITHMS[name].cls.__init__).parameters
        for key, value in spec.defaults.items():
            sb3 = params[key].default
            assert value == own.get((name, key), sb3), (name, key, value, sb3)
            assert ((name, key) in own) == (value != sb3), (name, key)
        left |= {(name, key) for key in ALGORITHM_KEYS if key in params and key not in spec.defaults}
    assert left == left_at_sb3


IMAGE_SPACES = [
    spaces.Box(0, 255, (84, 84, 3), np.uint8), spaces.Box(0, 255, (3, 84, 84), np.uint8),
    spaces.Box(0, 255, (84, 84), np.uint8), spaces.Box(0, 255, (84, 84, 3), np.float32),
    spaces.Box(0, 1, (84, 84, 3), np.uint8), spaces.Box(-np.inf, np.inf, (4,), np.float32),
    spaces.Box(0, 255, (84, 1, 84), np.uint8), spaces.Discrete(3), spaces.Dict({"a": spaces.Discrete(2)}),
]


@pytest.mark.parametrize("space", IMAGE_SPACES, ids=repr)
def test_image_space_checks_are_sb3s(space):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common import preprocessing

    from domains.rl import envs

    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        assert envs.is_image_space(space) == preprocessing.is_image_space(space)
        if envs.is_image_space(space):
            assert envs.is_image_space_channels_first(space) == preprocessing.is_image_space_channels_first(space)
    assert len(ours) == (2 if space.shape == (84, 1, 84) else 0)  # SB3's warning, from both


class _ObservationEnv(gym.Env):
    """A one-step environment with the observation space it is given."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, space, render_mode=None):
        self.observation_space, self.action_space, self.render_mode = space, spaces.Discrete(2), render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


SYNTHETIC = {
    "channels-last": spaces.Box(0, 255, (12, 10, 3), np.uint8),
    "channels-first": spaces.Box(0, 255, (3, 12, 10), np.uint8),
    "grey": spaces.Box(0, 255, (12, 10, 1), np.uint8),
    "float-image": spaces.Box(0.0, 1.0, (12, 10, 3), np.float32),
    "dict": spaces.Dict({"image": spaces.Box(0, 255, (12, 10, 3), np.uint8),
                         "vector": spaces.Box(-1.0, 2.0, (4,), np.float32)}),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2))),
    "dict-of-discrete": spaces.Dict({"a": spaces.Discrete(3)}),
    "nested": spaces.Dict({"inner": spaces.Dict({"x": spaces.Discrete(2)})}),
    "discrete": spaces.Discrete(5),
}
for _name, _space in SYNTHETIC.items():
    if f"TicketsObs-{_name}-v0" not in gym.registry:
        gym.register(id=f"TicketsObs-{_name}-v0", entry_point=_ObservationEnv, kwargs={"space": _space},
                     max_episode_steps=1)

PROBES = [  # (env_id, env_kwargs, atari, frame_stack, env_attrs)
    ("CartPole-v1", {}, False, 1, {}), ("CartPole-v1", {"max_episode_steps": 100}, False, 3, {"length": 1.0}),
    ("Acrobot-v1", {}, False, 1, {}), ("LunarLander-v3", {}, False, 2, {}), ("Pendulum-v1", {"g": 9.0}, False, 1, {}),
    ("Pendulum-v1", {}, False, 2, {"max_torque": 3.0}), ("MountainCarContinuous-v0", {}, False, 1, {"power": 0.002}),
    ("MountainCar-v0", {}, False, 1, {"max_speed": 0.08}), ("rl_tiny_env:TinyCorridor-v0", {}, False, 1, {"length": 7}),
    ("Blackjack-v1", {}, False, 1, {}),
    *[(f"TicketsObs-{name}-v0", {}, False, n, {}) for name in SYNTHETIC for n in (1, 3)],
    ("PongNoFrameskip-v4", {}, True, 4, {}), ("PongNoFrameskip-v4", {}, True, 1, {}),
    ("ALE/Pong-v5", {}, False, 2, {}),
]


def _through_sb3(env_id, env_kwargs, atari, frame_stack, env_attrs):
    """What probe_spaces returned when it built the vectorised environment with SB3."""
    from domains.rl.envs import make_env
    from domains.rl.variants import return_bounds

    env = make_env(env_id, n_envs=1, seed=0, env_kwargs=env_kwargs, atari=atari, frame_stack=frame_stack,
                   env_attrs=env_attrs)
    try:
        return env.observation_space, env.action_space, return_bounds(env.unwrapped.envs[0])
    finally:
        env.close()


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p[0]}-stack{p[3]}{'-atari' if p[2] else ''}")
def test_probed_spaces_are_those_of_sb3s_vectorised_environment(probe):
    pytest.importorskip("stable_baselines3")
    if "Pong" in probe[0]:
        pytest.importorskip("ale_py")
        pytest.importorskip("cv2")
    from domains.rl.envs import check_env_id, probe_spaces

    check_env_id(probe[0], probe[2])  # registers ALE's ids
    try:
        expected = _through_sb3(*probe)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(ConfigError) as ours:
            probe_spaces(*probe)
        assert str(ours.value) == f"env_kwargs: cannot make {probe[0]!r}: {e}"
        return
    observation_space, action_space, bounds = probe_spaces(*probe)
    assert (observation_space, action_space, bounds) == expected
    assert (repr(observation_space), repr(action_space)) == (repr(expected[0]), repr(expected[1]))
    assert type(observation_space) is type(expected[0]) and getattr(observation_space, "dtype", None) == getattr(
        expected[0], "dtype", None)
