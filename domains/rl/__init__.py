"""RL: stable-baselines3 agents (PPO, A2C, DQN, SAC, TD3) on gymnasium environments; steps are environment steps.

``RLConfig`` imports neither torch nor SB3; ``RLDomain`` imports both, on first use."""

from .config import RLConfig

__all__ = ["RLConfig", "RLDomain"]


def __getattr__(name: str):
    if name == "RLDomain":
        from .domain import RLDomain

        return RLDomain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
