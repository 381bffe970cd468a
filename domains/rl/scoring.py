"""What pruning-at-initialisation scorers ask of an RL policy (see ``RLDomain``'s methods).

The all-ones forward through the policy, Q or actor-critic networks (collapse diagnostics,
SynFlow), and the REINFORCE-style episode batches and loss of data-dependent scorers (SNIP,
GraSP; PPO and A2C on discrete actions only).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

if TYPE_CHECKING:
    from .config import RLConfig


def forward_ones(config: RLConfig, policy: nn.Module) -> torch.Tensor:
    """The networks' outputs on an all-ones observation (the policies' own forwards sample or
    take argmaxes, and their preprocessing casts to float32, so submodules are called directly):
    PPO/A2C: action and value heads; DQN: Q-values; SAC/TD3: the actor's output (SAC: mean
    action before squashing and log-std) and both critics on (ones, actor action)."""
    p = next(policy.parameters())
    obs = torch.ones((1, *policy.observation_space.shape), dtype=p.dtype, device=p.device)
    algorithm = config.algorithm
    if algorithm in ("ppo", "a2c"):
        latent_pi, latent_vf = _actor_critic_latents(policy, lambda extractor: extractor(obs))
        return torch.cat([policy.action_net(latent_pi), policy.value_net(latent_vf)], dim=1)
    if algorithm == "dqn":
        return policy.q_net.q_net(policy.q_net.features_extractor(obs))
    actor, critic = policy.actor, policy.critic
    if algorithm == "sac":
        latent = actor.latent_pi(actor.features_extractor(obs))
        outputs = [actor.mu(latent), actor.log_std(latent)]
        action = torch.tanh(outputs[0])
    else:  # td3
        action = actor.mu(actor.features_extractor(obs))
        outputs = [action]
    q_in = torch.cat([critic.features_extractor(obs), action], dim=1)
    return torch.cat([*outputs, *(q(q_in) for q in critic.q_networks)], dim=1)


def require_scoring(config: RLConfig) -> None:
    """Raise ValueError unless ``config`` is PPO or A2C on discrete actions."""
    if config.algorithm not in ("ppo", "a2c") or not isinstance(config.action_space, spaces.Discrete):
        raise ValueError("scoring batches are defined for PPO and A2C on discrete actions "
                         f"(this config: {config.algorithm!r} on {config.env_id})")


def scoring_batches(config: RLConfig, policy: nn.Module, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` batches of one episode each (on the wrapped environment, as in training) played by
    ``policy`` (a copy: the caller's keeps its training mode), the i-th on an environment seeded
    ``seed + i``, actions sampled from a generator seeded ``seed`` (the caller's left alone):
    observations, actions and discounted returns."""
    player = copy.deepcopy(policy)
    device = next(player.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return [episode_batch(config, player, seed + i) for i in range(n)]


def episode_batch(config: RLConfig, policy: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """One episode played by ``policy`` (sampling its actions) on an environment seeded ``seed``."""
    env = config.make_env(1, seed)
    try:
        obs, done = env.reset(), False
        observations, actions, rewards = [], [], []
        while not done:
            action, _ = policy.predict(obs, deterministic=False)
            observations.append(obs[0])
            actions.append(action[0])
            obs, reward, dones, _ = env.step(action)
            rewards.append(float(reward[0]))
            done = bool(dones[0])
    finally:
        env.close()
    returns, g = [], 0.0
    for r in reversed(rewards):
        g = r + config.gamma * g
        returns.append(g)
    return {"observations": torch.as_tensor(np.array(observations), dtype=torch.float32),
            "actions": torch.as_tensor(np.array(actions)),
            "returns": torch.tensor(returns[::-1], dtype=torch.float32)}


def scoring_loss(config: RLConfig, policy: nn.Module, batch: dict[str, torch.Tensor], *,
                 temperature: float = 1.0) -> torch.Tensor:
    """REINFORCE with the value as baseline, plus the value's regression on the returns: a
    policy-gradient objective that exists at initialisation (PPO's needs old log-probs).
    ``temperature`` divides the action logits. PPO and A2C on discrete actions only."""
    require_scoring(config)
    device = next(policy.parameters()).device
    obs = preprocess_obs(batch["observations"].to(device), policy.observation_space,
                         normalize_images=policy.normalize_images)
    latent_pi, latent_vf = _actor_critic_latents(policy, lambda extractor: extractor(obs))
    values = policy.value_net(latent_vf).squeeze(-1)
    dist = torch.distributions.Categorical(logits=policy.action_net(latent_pi) / temperature)
    returns = batch["returns"].to(device)
    advantages = (returns - values).detach()
    return -(dist.log_prob(batch["actions"].to(device)) * advantages).mean() + F.mse_loss(values, returns)


def _actor_critic_latents(policy: nn.Module, features: Callable[[nn.Module], torch.Tensor]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent_pi, latent_vf) of a PPO/A2C policy, ``features(extractor)`` giving an extractor's
    output: one shared extractor (SB3's default), or pi_features_extractor (an alias of
    features_extractor) and vf_features_extractor."""
    if policy.share_features_extractor:
        return policy.mlp_extractor(features(policy.features_extractor))
    return (policy.mlp_extractor.forward_actor(features(policy.pi_features_extractor)),
            policy.mlp_extractor.forward_critic(features(policy.vf_features_extractor)))
