"""The stable-baselines3 algorithms the RL domain trains, and what each means for pruning.

Each algorithm's action space and the RLConfig keys it reads (with their defaults) are in
``domains.rl.algorithm_specs``, which the config check reads without importing SB3; here each is
paired with its SB3 class, which of its policy's weights are prunable, and which are target-network
copies that follow an online weight's mask.

Prunable weights (the model is ``algo.policy``; every Linear and Conv weight of the networks
named, so with ``CnnPolicy`` the NatureCNN's convolutions and its linear layer too):

* PPO / A2C: ``features_extractor`` (shared by policy and value: SB3 registers it also as
  ``pi_features_extractor`` and ``vf_features_extractor``, and ``named_parameters`` names it
  once; unshared, ``vf_features_extractor`` is a second one), ``mlp_extractor`` policy and
  value nets, ``action_net``, ``value_net``.
* DQN: ``q_net``; ``q_net_target`` follows it.
* SAC: ``actor`` (its ``latent_pi`` trunk and both heads, ``mu`` and ``log_std``: the
  ``log_std`` head is a layer like any other, and pruning only ``mu`` would leave half the
  actor's output dense) and ``critic`` (both Q-networks); ``critic_target`` follows ``critic``.
* TD3: ``actor`` and ``critic``; ``actor_target`` and ``critic_target`` follow them.

A follower is never scored or counted; the core's MaskEnforcer zeroes it with its leader's mask
after every optimizer step, so SB3's hard (DQN) or polyak (SAC, TD3) target update mixes zeros
with zeros and the target keeps the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from tickets.selection import default_prunable

from .algorithm_specs import SPECS, AlgorithmSpec


@dataclass(frozen=True)
class Algorithm:
    """How to build one SB3 algorithm from the config."""

    cls: type[BaseAlgorithm]
    spec: AlgorithmSpec  # its action space and the keys it reads (algorithm_specs.SPECS)
    prunable_modules: tuple[str, ...]  # policy submodules whose Linear weights are prunable
    targets: dict[str, str] = field(default_factory=dict)  # target submodule -> online submodule
    extra: Callable[[Any], dict[str, Any]] = lambda c: {}  # fixed hyperparameters from the config

    @property
    def defaults(self) -> dict[str, Any]:
        return self.spec.defaults

    @property
    def off_policy(self) -> bool:
        return self.spec.off_policy

    def hyperparameters(self, cfg: Any) -> dict[str, Any]:
        return {"gamma": cfg.gamma, **{k: getattr(cfg, k) for k in self.defaults}, **self.extra(cfg)}


ACTOR_CRITIC_MODULES = ("features_extractor", "vf_features_extractor", "mlp_extractor", "action_net", "value_net")

# one for each entry of algorithm_specs.SPECS, in its order
ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(PPO, SPECS["ppo"], ACTOR_CRITIC_MODULES),
    "a2c": Algorithm(A2C, SPECS["a2c"], ACTOR_CRITIC_MODULES),
    "dqn": Algorithm(DQN, SPECS["dqn"], ("q_net",), {"q_net_target": "q_net"}),
    "sac": Algorithm(SAC, SPECS["sac"], ("actor", "critic"), {"critic_target": "critic"}),
    "td3": Algorithm(TD3, SPECS["td3"], ("actor", "critic"), {"actor_target": "actor", "critic_target": "critic"}),
}


def prunable_of(spec: Algorithm, policy: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in default_prunable(policy).items() if n.split(".", 1)[0] in spec.prunable_modules}


def tied_of(spec: Algorithm, policy: nn.Module) -> dict[str, str]:
    """Each target weight -> the online weight it tracks (same path under the online module)."""
    names = set(dict(policy.named_parameters()))
    ties = {}
    for n in default_prunable(policy):
        head, _, rest = n.partition(".")
        if head in spec.targets:
            leader = f"{spec.targets[head]}.{rest}"
            if leader not in names:
                raise RuntimeError(f"target weight {n!r} has no online counterpart {leader!r}")
            ties[n] = leader
    return ties


def optimizers_of(policy: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Each optimizer the algorithm's train() steps, by name: (owner, attribute)."""
    if hasattr(policy, "actor") and hasattr(policy.actor, "optimizer"):  # SAC, TD3
        return {"actor.optimizer": (policy.actor, "optimizer"), "critic.optimizer": (policy.critic, "optimizer")}
    return {"optimizer": (policy, "optimizer")}
