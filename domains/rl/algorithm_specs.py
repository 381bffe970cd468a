"""What each algorithm the RL domain trains asks of the config, stated without importing SB3 (a
config is checked before torch is imported): the action space it needs and the algorithm-dependent
RLConfig keys it reads, with their defaults. ``domains.rl.algorithms`` pairs each entry with its
SB3 class and what it means for pruning.

The defaults are SB3 2.x's keyword defaults, apart from PPO's shorter rollouts (n_steps 256,
n_epochs 4); tests/test_rl_config_imports.py checks them against SB3's signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Any

from gymnasium import spaces


@dataclass(frozen=True)
class AlgorithmSpec:
    action_space: type[spaces.Space] | UnionType  # Discrete, Box, or either
    defaults: dict[str, Any]  # the algorithm-dependent RLConfig keys it reads, with their defaults

    @property
    def off_policy(self) -> bool:
        return "train_freq" in self.defaults


SPECS: dict[str, AlgorithmSpec] = {
    "ppo": AlgorithmSpec(spaces.Discrete | spaces.Box,
                         dict(n_steps=256, batch_size=64, n_epochs=4, gae_lambda=0.95, clip_range=0.2,
                              ent_coef=0.0, max_grad_norm=0.5)),
    "a2c": AlgorithmSpec(spaces.Discrete | spaces.Box,
                         dict(n_steps=5, gae_lambda=1.0, ent_coef=0.0, max_grad_norm=0.5)),
    "dqn": AlgorithmSpec(spaces.Discrete,
                         dict(batch_size=32, buffer_size=1_000_000, learning_starts=100, train_freq=4,
                              gradient_steps=1, tau=1.0, target_update_interval=10_000,
                              exploration_fraction=0.1, exploration_final_eps=0.05, max_grad_norm=10.0)),
    "sac": AlgorithmSpec(spaces.Box,
                         dict(batch_size=256, buffer_size=1_000_000, learning_starts=100, train_freq=1,
                              gradient_steps=1, tau=0.005, target_update_interval=1)),
    "td3": AlgorithmSpec(spaces.Box,
                         dict(batch_size=256, buffer_size=1_000_000, learning_starts=100, train_freq=1,
                              gradient_steps=1, tau=0.005, policy_delay=2)),
}

# every algorithm-dependent key, for "not used by" messages
ALGORITHM_KEYS = sorted({k for a in SPECS.values() for k in a.defaults})
