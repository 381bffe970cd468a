"""The RL domain adapter: stable-baselines3 agents on gymnasium environments.

The model the core sees is the SB3 policy (an ``nn.Module`` with plain parameter names such as
``mlp_extractor.policy_net.0.weight``); the algorithm that trains it hangs off the policy
(``algorithm_of(policy)``). Steps are environment steps.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from tickets.domain import Domain, StepCallback, TrainResult
from tickets.errors import ConfigError, did_you_mean
from tickets.optim import OptimizerConfig, load_optimizer_tensors, optimizer_tensors

from . import scoring
from .algorithms import ALGORITHM_KEYS, ALGORITHMS, optimizers_of, prunable_of, tied_of
from .envs import check_atari, check_env_id, make_env, probe_spaces, registered_name

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
ENT_COEF = "log_ent_coef"  # SAC's learned entropy coefficient, in the optimizer state

# Evaluation environments are seeded from the split name, apart from any training seed.
SPLIT_SEEDS = {"validation": 1_000_003, "test": 2_000_029}


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
    # n_epochs 4); setting one the algorithm does not read is an error. See algorithms.ALGORITHMS.
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
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm: {self.algorithm!r} is not one of {sorted(ALGORITHMS)}"
                              f"{did_you_mean(self.algorithm, ALGORITHMS)}")
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
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation: {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"device: {e}") from None


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
        spec = ALGORITHMS[self.algorithm]
        for key in ALGORITHM_KEYS:
            if key in spec.defaults:
                if getattr(self, key) is None:
                    setattr(self, key, spec.defaults[key])
            elif getattr(self, key) is not None:
                users = [a for a, s in ALGORITHMS.items() if key in s.defaults]
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


class _AlgorithmHandle:
    """The policy's link to its algorithm. Deep copies of the policy (the core probes copies)
    share it instead of copying the algorithm with its environments (ALE's cannot be copied)
    and replay buffer."""

    def __init__(self, algo: BaseAlgorithm):
        self.algo = algo

    def __deepcopy__(self, memo: dict) -> _AlgorithmHandle:
        return self


def attach_algorithm(policy: nn.Module, algo: BaseAlgorithm) -> None:
    # A plain attribute (BaseAlgorithm is not an nn.Module), so parameter names stay unprefixed.
    policy._tickets_algorithm = _AlgorithmHandle(algo)


def algorithm_of(model: nn.Module) -> BaseAlgorithm:
    handle = getattr(model, "_tickets_algorithm", None)
    if handle is None:
        raise TypeError(f"{type(model).__name__} was not built by RLDomain.build_model (no algorithm attached)")
    return handle.algo


class RLDomain(Domain):
    name = "rl"
    Config = RLConfig
    primary_metric = "mean_return"

    def _optimizer_kwargs(self) -> dict[str, Any]:
        kw = self.config.optimizer.kwargs()
        kw.pop("lr")  # SB3 sets it from learning_rate
        if self.config.optimizer.name in ("adam", "adamw") and not ALGORITHMS[self.config.algorithm].off_policy:
            kw.setdefault("eps", 1e-5)  # SB3's own default for its actor-critic policies' Adam
        return kw

    def build_model(self, seed: int) -> nn.Module:
        cfg = self.config
        algo_spec = ALGORITHMS[cfg.algorithm]
        policy_kwargs = dict(net_arch=list(cfg.net_arch), activation_fn=ACTIVATIONS[cfg.activation],
                             optimizer_class=cfg.optimizer.torch_class(),
                             optimizer_kwargs=self._optimizer_kwargs())
        with _own_rng():
            env = cfg.make_env(cfg.n_envs, seed)
            algo = algo_spec.cls(cfg.policy_class(), env, learning_rate=cfg.optimizer.lr,
                                 policy_kwargs=policy_kwargs, seed=seed, verbose=0, device=cfg.device,
                                 **algo_spec.hyperparameters(cfg))
        attach_algorithm(algo.policy, algo)
        return algo.policy

    def train(self, model: nn.Module, *, steps: int, start_step: int = 0, seed: int = 0,
              on_step: StepCallback | None = None, eval_every: int = 0,
              optimizer_state: dict[str, torch.Tensor] | None = None) -> TrainResult:
        """Fresh optimizers (seeded with ``optimizer_state`` when given), reseeded RNGs and fresh
        environments: SB3 cannot restore an environment mid-episode, so a run restarted at step
        k collects other rollouts than the uninterrupted run did after k."""
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
            # fresh optimizers per train() call, as the supervised loop does (each over the
            # parameters SB3 gave it: DQN's over q_net only, SAC/TD3's one for actor and critic)
            for owner, attr in optimizers_of(policy).values():
                old = getattr(owner, attr)
                setattr(owner, attr, policy.optimizer_class([p for g in old.param_groups for p in g["params"]],
                                                            lr=algo.lr_schedule(1), **policy.optimizer_kwargs))
            if optimizer_state is not None:
                self._load_optimizer_state(model, optimizer_state)
            if getattr(algo, "replay_buffer", None) is not None:
                algo.replay_buffer.reset()  # no transitions from an earlier train() call
            if steps > start_step:
                algo.learn(total_timesteps=steps - start_step, callback=_StepReporter(report),
                           reset_num_timesteps=True)
                reached = start_step + algo.num_timesteps
            else:
                reached = start_step
        if not history or history[-1]["step"] != reached:
            validate(reached)
        return TrainResult(steps=reached, history=history)

    # ---- optimizer state (rewind.optimizer) ---------------------------------------------------
    supports_optimizer_state = True

    def _optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        named = {name: getattr(owner, attr) for name, (owner, attr) in optimizers_of(model).items()}
        algo = algorithm_of(model)
        if getattr(algo, "ent_coef_optimizer", None) is not None:
            named["ent_coef_optimizer"] = algo.ent_coef_optimizer
        return named

    def _param_names(self, model: nn.Module) -> dict[int, str]:
        names = {id(p): n for n, p in model.named_parameters()}
        log_ent_coef = getattr(algorithm_of(model), "log_ent_coef", None)
        if log_ent_coef is not None:
            names[id(log_ent_coef)] = ENT_COEF
        return names

    def optimizer_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Every optimizer the algorithm steps (PPO/A2C/DQN: one; SAC/TD3: actor and critic).
        SAC's entropy coefficient comes with it: it lives outside the policy, so the rewind
        weights miss it, and its own Adam's moments would be meaningless without it."""
        state = optimizer_tensors(self._optimizers(model), self._param_names(model))
        log_ent_coef = getattr(algorithm_of(model), "log_ent_coef", None)
        if log_ent_coef is not None:
            state[ENT_COEF] = log_ent_coef.detach().to("cpu", copy=True)
        return state

    def _load_optimizer_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        log_ent_coef = getattr(algorithm_of(model), "log_ent_coef", None)
        if log_ent_coef is not None and ENT_COEF in state:
            with torch.no_grad():
                log_ent_coef.copy_(state.pop(ENT_COEF))
        load_optimizer_tensors(self._optimizers(model), self._param_names(model), state)

    def prunable(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Linear and convolution weights of the online networks (see domains.rl.algorithms);
        never target networks."""
        return prunable_of(ALGORITHMS[self.config.algorithm], model)

    def tied_parameters(self, model: nn.Module) -> dict[str, str]:
        """Target-network weights -> the online weights they track (DQN, SAC, TD3)."""
        return tied_of(ALGORITHMS[self.config.algorithm], model)

    def step_multiple(self) -> int:
        """Weights change once per rollout: PPO/A2C, every n_steps * n_envs environment steps;
        DQN/SAC/TD3, after each collection of train_freq steps per environment (train_freq *
        n_envs; none before learning_starts, which only delays the first change)."""
        cfg = self.config
        per_env = cfg.train_freq if ALGORITHMS[cfg.algorithm].off_policy else cfg.n_steps
        return per_env * cfg.n_envs

    def check_budget(self, steps: int, rewind_step: int = 0) -> None:
        """SB3 changes the weights once per rollout (on-policy) or collection (off-policy) and its
        ``learn`` runs whole ones, so a budget between two of them would silently train up to the
        next (``train.steps: 300`` with 256-step rollouts trains 512). Off-policy algorithms make
        no update before ``learning_starts`` steps of each ``learn`` call (every level starts one)."""
        cfg = self.config
        m = self.step_multiple()
        off_policy = ALGORITHMS[cfg.algorithm].off_policy
        unit = (f"the {cfg.algorithm.upper()} collection between updates (train_freq {cfg.train_freq} x n_envs "
                f"{cfg.n_envs} = {m})" if off_policy else
                f"the {cfg.algorithm.upper()} rollout (n_steps {cfg.n_steps} x n_envs {cfg.n_envs} = {m})")
        if steps % m:
            lower, upper = steps // m * m, (steps // m + 1) * m
            use = " or ".join(str(s) for s in (lower, upper) if s > rewind_step)
            raise ConfigError(f"train.steps: {steps} is not a multiple of {unit}: SB3 trains whole ones, so a level "
                              f"would train {upper} steps; use {use}")
        if off_policy:
            if steps - rewind_step <= cfg.learning_starts:
                raise ConfigError(f"train.steps: {steps} leaves {steps - rewind_step} steps after rewind.step "
                                  f"{rewind_step}, not more than learning_starts {cfg.learning_starts}: "
                                  f"{cfg.algorithm.upper()} makes no update before learning_starts steps, so no "
                                  f"level would train; raise train.steps above {rewind_step + cfg.learning_starts} "
                                  "or lower learning_starts")
            if 0 < rewind_step <= cfg.learning_starts:
                raise ConfigError(f"rewind.step: {rewind_step} is within learning_starts ({cfg.learning_starts}), "
                                  f"before {cfg.algorithm.upper()}'s first update, so θk would be θ0; use "
                                  f"rewind.step 0 or a multiple of {m} above {cfg.learning_starts}")

    forward_ones_unavailable = "forward_ones is defined for PPO, A2C, DQN, SAC and TD3 policies on Box observations"

    def forward_ones(self, model: nn.Module) -> torch.Tensor | None:
        """The networks' outputs on an all-ones observation, submodules called directly (PPO/A2C:
        action and value heads; DQN: Q-values; SAC/TD3: the actor's output and both critics on
        (ones, actor action)); see ``scoring.forward_ones``."""
        return scoring.forward_ones(self.config, model)

    def _require_scoring(self) -> None:
        scoring.require_scoring(self.config)

    def scoring_batches(self, n: int, seed: int, *, model: nn.Module | None = None
                        ) -> list[dict[str, torch.Tensor]] | None:
        """``n`` batches of one episode each (on the wrapped environment, as in training), played
        by ``model``, the policy being scored at θ0, so the REINFORCE loss's actions are its own
        samples and its gradient is θ0's policy gradient: observations, actions and discounted
        returns (PPO and A2C on discrete actions; None otherwise). ``seed`` seeds the episodes'
        environments and the policy's action sampling."""
        try:
            self._require_scoring()
        except ValueError:
            return None
        if model is None:
            raise TypeError("RLDomain.scoring_batches needs model=: the episodes are played by the policy scored")
        return scoring.scoring_batches(self.config, model, n, seed)

    def scoring_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], *,
                     temperature: float = 1.0) -> torch.Tensor:
        """REINFORCE with the value as baseline, plus the value's regression on the returns
        (``temperature`` divides the action logits; see ``scoring.scoring_loss``). PPO and A2C
        on discrete actions only."""
        return scoring.scoring_loss(self.config, model, batch, temperature=temperature)

    def summarize(self, history: list[dict[str, float]]) -> dict[str, Any]:
        """Sample efficiency, the RL analogue of the early-stop iteration: the first validation
        step whose mean return reached the threshold (None if none did)."""
        threshold = self.config.threshold  # return_threshold, or the variant's (RLConfig._resolve_threshold)
        if threshold is None:
            return {}
        reached = [h["step"] for h in history if h["mean_return"] >= threshold]
        return {"return_threshold": float(threshold), "steps_to_threshold": int(reached[0]) if reached else None}

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"unknown split {split!r} (RL evaluates on {sorted(SPLIT_SEEDS)})")
        cfg = self.config
        env = cfg.make_env(1, SPLIT_SEEDS[split])
        try:
            mean, std = evaluate_policy(model, env, n_eval_episodes=cfg.eval_episodes, deterministic=True)
        finally:
            env.close()
        return {"mean_return": float(mean), "std_return": float(std)}

    def describe(self) -> dict[str, Any]:
        libraries = ("stable-baselines3", "gymnasium", *(("ale-py",) if self.config.atari else ()))
        return {"domain": self.name, **asdict(self.config), "libraries": {lib: version(lib) for lib in libraries}}

    def model_identity(self, model: nn.Module) -> dict[str, Any]:
        cfg = self.config
        return {**super().model_identity(model), "algorithm": cfg.algorithm, "env_id": cfg.env_id,
                "policy": cfg.policy_class(), "net_arch": list(cfg.net_arch), "activation": cfg.activation}
