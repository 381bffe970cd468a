"""RL: stable-baselines3 agents (PPO, A2C, DQN, SAC, TD3) on gymnasium environments; steps are environment steps."""

from .domain import RLConfig, RLDomain

__all__ = ["RLConfig", "RLDomain"]
