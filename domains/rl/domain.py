"""The RL domain adapter: stable-baselines3 agents on gymnasium environments.

The model the core sees is the SB3 policy (an ``nn.Module`` with plain parameter names such as
``mlp_extractor.policy_net.0.weight``); the algorithm that trains it hangs off the policy
(``algorithm_of(policy)``). Steps are environment steps.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

from tickets.domain import Domain, StepCallback, TrainResult
from tickets.errors import ConfigError
from tickets.optim import load_optimizer_tensors, optimizer_tensors

from . import native, scoring
from .algorithms import ALGORITHMS, optimizers_of, prunable_of, tied_of
from .config import ACTIVATION_CLASSES, RLConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, cls) for name, cls in ACTIVATION_CLASSES.items()}
ENT_COEF = "log_ent_coef"  # SAC's learned entropy coefficient, in the optimizer state

# Evaluation environments are seeded from the split name, apart from any training seed.
SPLIT_SEEDS = {"validation": 1_000_003, "test": 2_000_029}


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
        algo = self.build_algorithm(seed)
        attach_algorithm(algo.policy, algo)
        return algo.policy

    def algorithm_class(self) -> type[BaseAlgorithm]:
        return ALGORITHMS[self.config.algorithm].cls

    def build_algorithm(self, seed: int, *, net_arch: Any = None) -> BaseAlgorithm:
        """The SB3 algorithm of the config (``net_arch`` in place of the config's: a smaller policy)."""
        cfg = self.config
        algo_spec = ALGORITHMS[cfg.algorithm]
        policy_kwargs = dict(net_arch=list(cfg.net_arch) if net_arch is None else net_arch,
                             activation_fn=ACTIVATIONS[cfg.activation],
                             optimizer_class=cfg.optimizer.torch_class(),
                             optimizer_kwargs=self._optimizer_kwargs())
        with _own_rng():
            env = cfg.make_env(cfg.n_envs, seed)
            return algo_spec.cls(cfg.policy_class(), env, learning_rate=cfg.optimizer.lr,
                                 policy_kwargs=policy_kwargs, seed=seed, verbose=0, device=cfg.device,
                                 **algo_spec.hyperparameters(cfg))

    def save_native(self, model: nn.Module, directory: Path) -> dict[str, Any]:
        """An SB3 zip that ``PPO.load``/``A2C.load`` rebuilds (domains.rl.native)."""
        return native.save(self, model, directory)

    def load_native(self, directory: Path) -> nn.Module:
        algo = native.load(self, directory)
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
