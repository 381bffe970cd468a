"""The RL domain adapter: stable-baselines3 agents on gymnasium environments.

The model the core sees is the SB3 policy (an ``nn.Module`` with plain parameter names such as
``mlp_extractor.policy_net.0.weight``); the algorithm that trains it hangs off the policy as
``policy._tickets_algorithm``. Steps are environment steps.
"""

from __future__ import annotations

import contextlib
import importlib
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

from tickets.domain import Domain, StepCallback, TrainResult
from tickets.errors import ConfigError, did_you_mean
from tickets.optim import OptimizerConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}

# Evaluation environments are seeded from the split name, apart from any training seed.
SPLIT_SEEDS = {"validation": 1_000_003, "test": 2_000_029}


@dataclass
class RLConfig:
    env_id: str = "CartPole-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    algorithm: Literal["ppo"] = "ppo"
    n_envs: int = 1
    # PPO
    n_steps: int = 256  # environment steps per rollout, per environment
    batch_size: int = 64
    n_epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5  # SB3 clips by global norm: see pruning.mask_grads
    # policy network and its optimizer
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: Literal["tanh", "relu"] = "tanh"
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="adam", lr=3e-4))
    eval_episodes: int = 10
    device: str = "cpu"

    def __post_init__(self):
        _check_env_id(self.env_id)
        if not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs: must be a mapping, got {self.env_kwargs!r}")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm: {self.algorithm!r} is not one of {sorted(ALGORITHMS)}"
                              f"{did_you_mean(self.algorithm, ALGORITHMS)}")
        for key in ("n_envs", "n_steps", "n_epochs", "eval_episodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        if self.batch_size < 2:  # advantage normalisation needs two samples
            raise ConfigError(f"batch_size: must be at least 2, got {self.batch_size}")
        if self.batch_size > self.n_steps * self.n_envs:
            raise ConfigError(f"batch_size: {self.batch_size} is larger than a rollout "
                              f"(n_steps * n_envs = {self.n_steps * self.n_envs})")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma: must be in (0, 1], got {self.gamma}")
        if not 0 <= self.gae_lambda <= 1:
            raise ConfigError(f"gae_lambda: must be in [0, 1], got {self.gae_lambda}")
        for key in ("clip_range", "max_grad_norm"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.ent_coef < 0:
            raise ConfigError(f"ent_coef: must be non-negative, got {self.ent_coef}")
        if not all(isinstance(w, int) and w > 0 for w in self.net_arch):
            raise ConfigError(f"net_arch: layer widths must be positive integers, got {self.net_arch}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation: {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"device: {e}") from None


def _check_env_id(env_id: str) -> None:
    module, _, name = env_id.rpartition(":")  # "package.module:Env-v0" registers on import, as in gym.make
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"env_id: cannot import {module!r} to register {name!r}: {e}") from None
    try:
        gym.spec(name)
    except gym.error.Error as e:
        hint = did_you_mean(env_id, gym.registry) or f" ({e})"
        raise ConfigError(f"env_id: {env_id!r} is not a registered gymnasium environment{hint}") from None


@dataclass(frozen=True)
class Algorithm:
    """How to build one SB3 algorithm from the config: its class and its own hyperparameters."""

    cls: type[BaseAlgorithm]
    hyperparameters: Callable[[RLConfig], dict[str, Any]]


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(PPO, lambda c: dict(n_steps=c.n_steps, batch_size=c.batch_size, n_epochs=c.n_epochs,
                                         gamma=c.gamma, gae_lambda=c.gae_lambda, clip_range=c.clip_range,
                                         ent_coef=c.ent_coef, max_grad_norm=c.max_grad_norm)),
}


@contextlib.contextmanager
def _own_rng():
    """SB3 seeds the global python/numpy/torch generators; leave the caller's untouched."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


class _StepReporter(BaseCallback):
    """Passes environment step counts to ``report`` one call late: the last step of a rollout
    is reported only after the update that consumes it (at the next rollout's start or at the
    end of training), so whoever captures weights "at step k" gets every update on data up to k."""

    def __init__(self, report: Callable[[int], None]):
        super().__init__()
        self.report = report
        self.pending: int | None = None

    def _flush(self) -> None:
        if self.pending is not None:
            step, self.pending = self.pending, None
            self.report(step)

    def _on_step(self) -> bool:
        self._flush()
        self.pending = self.model.num_timesteps
        return True

    def _on_rollout_start(self) -> None:
        self._flush()

    def _on_training_end(self) -> None:
        self._flush()


def algorithm_of(model: nn.Module) -> BaseAlgorithm:
    algo = getattr(model, "_tickets_algorithm", None)
    if algo is None:
        raise TypeError(f"{type(model).__name__} was not built by RLDomain.build_model (no _tickets_algorithm)")
    return algo


class RLDomain(Domain):
    name = "rl"
    Config = RLConfig
    primary_metric = "mean_return"

    def _optimizer_kwargs(self) -> dict[str, Any]:
        kw = self.config.optimizer.kwargs()
        kw.pop("lr")  # SB3 sets it from learning_rate
        if self.config.optimizer.name in ("adam", "adamw"):
            kw.setdefault("eps", 1e-5)  # SB3's own default for its policies' Adam
        return kw

    def build_model(self, seed: int) -> nn.Module:
        cfg = self.config
        algo_spec = ALGORITHMS[cfg.algorithm]
        policy_kwargs = dict(net_arch=list(cfg.net_arch), activation_fn=ACTIVATIONS[cfg.activation],
                             optimizer_class=cfg.optimizer.torch_class(),
                             optimizer_kwargs=self._optimizer_kwargs())
        with _own_rng():
            env = make_vec_env(cfg.env_id, n_envs=cfg.n_envs, seed=seed, env_kwargs=cfg.env_kwargs)
            algo = algo_spec.cls("MlpPolicy", env, learning_rate=cfg.optimizer.lr, policy_kwargs=policy_kwargs,
                                 seed=seed, verbose=0, device=cfg.device, **algo_spec.hyperparameters(cfg))
        policy = algo.policy
        # A plain attribute (BaseAlgorithm is not an nn.Module), so parameter names stay unprefixed.
        policy._tickets_algorithm = algo
        return policy

    def train(self, model: nn.Module, *, steps: int, start_step: int = 0, seed: int = 0,
              on_step: StepCallback | None = None, eval_every: int = 0) -> TrainResult:
        algo = algorithm_of(model)
        history: list[dict[str, float]] = []
        next_eval = (start_step // eval_every + 1) * eval_every if eval_every > 0 else None

        def validate(step: int) -> None:
            history.append({"step": step, **self.evaluate(model, "validation")})

        def report(n: int) -> None:
            nonlocal next_eval
            step = start_step + n
            if on_step is not None:
                on_step(step)
            if next_eval is not None and step >= next_eval:
                validate(step)
                next_eval = (step // eval_every + 1) * eval_every

        with _own_rng():
            algo.set_random_seed(seed)  # global generators, action space, and the env's next reset
            policy = algo.policy
            # a fresh optimizer per train() call, as the supervised loop does
            policy.optimizer = policy.optimizer_class(policy.parameters(), lr=algo.lr_schedule(1),
                                                      **policy.optimizer_kwargs)
            if steps > start_step:
                algo.learn(total_timesteps=steps - start_step, callback=_StepReporter(report),
                           reset_num_timesteps=True)
                reached = start_step + algo.num_timesteps
            else:
                reached = start_step
        if not history or history[-1]["step"] != reached:
            validate(reached)
        return TrainResult(steps=reached, history=history)

    def step_multiple(self) -> int:
        return self.config.n_steps * self.config.n_envs  # weights change once per rollout

    def forward_ones(self, model: nn.Module) -> torch.Tensor:
        """Policy and value heads on an all-ones observation (the policy's own forward samples, and
        its preprocessing casts to float32, so the features extractor is called directly)."""
        p = next(model.parameters())
        obs = torch.ones((1, *model.observation_space.shape), dtype=p.dtype, device=p.device)
        latent_pi, latent_vf = model.mlp_extractor(model.features_extractor(obs))
        return torch.cat([model.action_net(latent_pi), model.value_net(latent_vf)], dim=1)

    def scoring_batches(self, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
        """``n`` batches of one episode each, played by the policy at initialisation: observations,
        actions and discounted returns."""
        cfg = self.config
        env = gym.make(cfg.env_id, **cfg.env_kwargs)
        policy = self.build_model(seed)
        batches = []
        try:
            for i in range(n):
                obs, _ = env.reset(seed=seed + i)
                observations, actions, rewards, done = [], [], [], False
                while not done:
                    action, _ = policy.predict(obs, deterministic=False)
                    observations.append(obs)
                    actions.append(action)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    rewards.append(float(reward))
                    done = terminated or truncated
                returns, g = [], 0.0
                for r in reversed(rewards):
                    g = r + cfg.gamma * g
                    returns.append(g)
                batches.append({"observations": torch.as_tensor(np.array(observations), dtype=torch.float32),
                                "actions": torch.as_tensor(np.array(actions)),
                                "returns": torch.tensor(returns[::-1], dtype=torch.float32)})
        finally:
            env.close()
        return batches

    def scoring_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], *,
                     temperature: float = 1.0) -> torch.Tensor:
        """REINFORCE with the value as baseline, plus the value's regression on the returns: a
        policy-gradient objective that exists at initialisation (PPO's needs old log-probs).
        ``temperature`` divides the action logits."""
        device = next(model.parameters()).device
        obs = batch["observations"].to(device)
        latent_pi, latent_vf = model.mlp_extractor(model.extract_features(obs))
        values = model.value_net(latent_vf).squeeze(-1)
        dist = torch.distributions.Categorical(logits=model.action_net(latent_pi) / temperature)
        returns = batch["returns"].to(device)
        advantages = (returns - values).detach()
        return -(dist.log_prob(batch["actions"].to(device)) * advantages).mean() + F.mse_loss(values, returns)

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"unknown split {split!r} (RL evaluates on {sorted(SPLIT_SEEDS)})")
        cfg = self.config
        env = make_vec_env(cfg.env_id, n_envs=1, seed=SPLIT_SEEDS[split], env_kwargs=cfg.env_kwargs)
        try:
            mean, std = evaluate_policy(model, env, n_eval_episodes=cfg.eval_episodes, deterministic=True)
        finally:
            env.close()
        return {"mean_return": float(mean), "std_return": float(std)}

    def describe(self) -> dict[str, Any]:
        return {"domain": self.name, **asdict(self.config),
                "libraries": {lib: version(lib) for lib in ("stable-baselines3", "gymnasium")}}

    def model_identity(self, model: nn.Module) -> dict[str, Any]:
        cfg = self.config
        return {**super().model_identity(model), "algorithm": cfg.algorithm, "env_id": cfg.env_id,
                "net_arch": list(cfg.net_arch), "activation": cfg.activation}
