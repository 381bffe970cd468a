"""The RL domain's settings, checked without importing torch or stable-baselines3 (a config error
is answered before the heavy imports; see tickets.cli). Checking makes the environment once
(``envs.probe_spaces``) with gymnasium alone; only Atari's wrappers come from SB3."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
from gymnasium import spaces

from tickets.errors import ConfigError, did_you_mean
from tickets.optim_config import OptimizerConfig

from .algorithm_specs import ALGORITHM_KEYS, SPECS
from .envs import check_atari, check_env_id, is_image_space, make_env, probe_spaces, registered_name

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

# activation name -> its torch.nn class (domains.rl.domain builds the policies with them)
ACTIVATION_CLASSES = {"tanh": "Tanh", "relu": "ReLU"}

# Device strings torch.device accepts, told apart without importing torch; any other is checked
# by torch.device itself, for its own message.
PLAIN_DEVICE = re.compile(r"(cpu|cuda|mps)(:(0|[1-9][0-9]?))?")


def check_device(device: Any) -> None:
    if isinstance(device, str) and PLAIN_DEVICE.fullmatch(device):
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device: {e}") from None


@dataclass
class RLConfig:
    env_id: str = "CartPole-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # gym.make keywords (max_episode_steps, g, ...)
    # attributes set on env.unwrapped after construction (physics of a variant: CartPole's length,
    # masspole, ...), on every environment the domain makes; checked (see domains.rl.variants)
    env_attrs: dict[str, Any] = field(default_factory=dict)
    atari: bool = False  # SB3's AtariWrapper on training and evaluation envs (see domains.rl.envs)
    frame_stack: int = 1  # observations stacked over the last n steps (VecFrameStack; Atari: 4)
    policy: Literal["auto", "mlp", "cnn"] = "auto"  # auto: SB3's CnnPolicy for image observations, else Mlp
    algorithm: Literal["ppo", "a2c", "dqn", "sac", "td3"] = "ppo"
    n_envs: int = 1
    gamma: float = 0.99
    # Algorithm-dependent keys: None takes the algorithm's default (SB3's; PPO: n_steps 256,
    # n_epochs 4); setting one the algorithm does not read is an error. See algorithm_specs.SPECS.
    # on-policy (PPO, A2C)
    n_steps: int | None = None  # environment steps per rollout, per environment
    n_epochs: int | None = None  # PPO
    gae_lambda: float | None = None
    clip_range: float | None = None  # PPO
    ent_coef: float | None = None
    max_grad_norm: float | None = None  # also DQN; SB3 clips by global norm: see pruning.mask_grads
    batch_size: int | None = None  # PPO, DQN, SAC, TD3
    # off-policy (DQN, SAC, TD3)
    buffer_size: int | None = None
    learning_starts: int | None = None
    train_freq: int | None = None  # environment steps per environment between updates
    gradient_steps: int | None = None
    tau: float | None = None  # target update coefficient (DQN: 1.0, a hard copy)
    target_update_interval: int | None = None  # DQN, SAC
    exploration_fraction: float | None = None  # DQN
    exploration_final_eps: float | None = None  # DQN
    policy_delay: int | None = None  # TD3
    # policy network and its optimizer
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: Literal["tanh", "relu"] = "tanh"
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="adam", lr=3e-4))
    eval_episodes: int = 10
    # sample efficiency: steps to reach it. None: the env's reward_threshold, for a CartPole whose
    # episode cap differs from the registered one scaled to it (CartPole-v1 capped at 100: 95.0)
    return_threshold: float | None = None
    device: str = "cpu"

    def __post_init__(self):
        check_env_id(self.env_id, self.atari)
        for key in ("env_kwargs", "env_attrs"):
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"{key}: must be a mapping, got {getattr(self, key)!r}")
        if self.frame_stack < 1:
            raise ConfigError(f"frame_stack: must be at least 1, got {self.frame_stack}")
        if self.atari:
            check_atari(self.env_id, self.env_kwargs)
        if self.algorithm not in SPECS:
            raise ConfigError(f"algorithm: {self.algorithm!r} is not one of {sorted(SPECS)}"
                              f"{did_you_mean(self.algorithm, SPECS)}")
        # not dataclass fields: derived from the environment, so neither hashed nor saved
        self.observation_space, self.action_space, bounds = probe_spaces(
            self.env_id, self.env_kwargs, self.atari, self.frame_stack, self.env_attrs)
        self.threshold = self._resolve_threshold(bounds)
        self._resolve_algorithm_keys()
        self._check_policy()
        ints = ("n_envs", "n_steps", "n_epochs", "eval_episodes", "buffer_size", "train_freq",
                "target_update_interval", "policy_delay")
        for key in ints:
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        for key in ("learning_starts", "gradient_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be non-negative, got {getattr(self, key)}")
        if self.batch_size is not None:
            if self.batch_size < 2:  # advantage normalisation needs two samples
                raise ConfigError(f"batch_size: must be at least 2, got {self.batch_size}")
            if self.n_steps is not None and self.batch_size > self.n_steps * self.n_envs:
                raise ConfigError(f"batch_size: {self.batch_size} is larger than a rollout "
                                  f"(n_steps * n_envs = {self.n_steps * self.n_envs})")
            if self.buffer_size is not None and self.batch_size > self.buffer_size:
                raise ConfigError(f"batch_size: {self.batch_size} is larger than buffer_size {self.buffer_size}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma: must be in (0, 1], got {self.gamma}")
        for key in ("gae_lambda", "tau", "exploration_fraction", "exploration_final_eps"):
            if getattr(self, key) is not None and not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)}")
        for key in ("clip_range", "max_grad_norm"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.ent_coef is not None and self.ent_coef < 0:
            raise ConfigError(f"ent_coef: must be non-negative, got {self.ent_coef}")
        if not all(isinstance(w, int) and w > 0 for w in self.net_arch):
            raise ConfigError(f"net_arch: layer widths must be positive integers, got {self.net_arch}")
        if self.activation not in ACTIVATION_CLASSES:
            raise ConfigError(f"activation: {self.activation!r} is not one of {sorted(ACTIVATION_CLASSES)}")
        check_device(self.device)

    def _resolve_threshold(self, bounds: tuple[float | None, float | None]) -> float | None:
        """The return threshold of sample efficiency, one this variant can reach and does not
        reach by default (``variants.return_bounds``; unknown bounds are not checked)."""
        spec = gym.spec(registered_name(self.env_id))
        lo, hi = bounds
        threshold, what = self.return_threshold, "return_threshold: {t:g}"
        if threshold is None:
            threshold = spec.reward_threshold
            what = f"return_threshold: unset, so {self.env_id}'s reward_threshold {{t:g}}"
            cap = self._episode_cap()
            if (threshold is not None and hi is not None and lo is not None and lo > 0 and spec.max_episode_steps
                    and cap is not None and cap != spec.max_episode_steps):
                # a +1-a-step task (CartPole): the same share of the variant's longest episode
                return float(threshold) * cap / spec.max_episode_steps
        if threshold is None:
            return None
        if not math.isfinite(threshold):
            raise ConfigError(f"return_threshold: must be finite, got {threshold}")
        if hi is not None and threshold > hi:
            raise ConfigError(f"{what.format(t=threshold)} is beyond the best return this variant can give ({hi:g}, "
                              f"with max_episode_steps {self._episode_cap()}): no run would reach it; "
                              "set return_threshold to a return it can reach")
        if lo is not None and threshold <= lo:
            raise ConfigError(f"{what.format(t=threshold)} is at or below the worst return this variant can give "
                              f"({lo:g}, with max_episode_steps {self._episode_cap()}): every run would reach it "
                              "at once; set return_threshold above it")
        return float(threshold)

    def _episode_cap(self) -> int | None:
        return self.env_kwargs.get("max_episode_steps", gym.spec(registered_name(self.env_id)).max_episode_steps)

    def _resolve_algorithm_keys(self) -> None:
        spec = SPECS[self.algorithm]
        for key in ALGORITHM_KEYS:
            if key in spec.defaults:
                if getattr(self, key) is None:
                    setattr(self, key, spec.defaults[key])
            elif getattr(self, key) is not None:
                users = [a for a, s in SPECS.items() if key in s.defaults]
                raise ConfigError(f"{key}: not used by algorithm {self.algorithm!r} (only by {', '.join(users)})")
        if not isinstance(self.action_space, spec.action_space):
            kind = "discrete" if spec.action_space is spaces.Discrete else "continuous (Box)"
            raise ConfigError(f"algorithm: {self.algorithm!r} needs a {kind} action space; "
                              f"{self.env_id} has {self.action_space}")

    def _check_policy(self) -> None:
        if self.policy == "cnn" and not is_image_space(self.observation_space):
            hint = "" if self.atari else "; for Atari frames set atari: true"
            raise ConfigError(f"policy: 'cnn' needs image observations (uint8, height x width x channels); "
                              f"{self.env_id} gives {self.observation_space}{hint}")

    def policy_class(self) -> str:
        """SB3's policy name: CnnPolicy (NatureCNN features) or MlpPolicy."""
        cnn = self.policy == "cnn" or (self.policy == "auto" and is_image_space(self.observation_space))
        return "CnnPolicy" if cnn else "MlpPolicy"

    def make_env(self, n_envs: int, seed: int) -> VecEnv:
        return make_env(self.env_id, n_envs=n_envs, seed=seed, env_kwargs=self.env_kwargs, atari=self.atari,
                        frame_stack=self.frame_stack, env_attrs=self.env_attrs)
