"""RL: stable-baselines3 agents (PPO, ...) on gymnasium environments; steps are environment steps."""

from .domain import RLConfig, RLDomain

__all__ = ["RLConfig", "RLDomain"]
