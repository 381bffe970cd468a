"""Environment variants for transfer: ``env_attrs`` set attributes of each environment after it is
made, and the return a variant can give, so a sample-efficiency threshold is one it can reach.

gymnasium 1.x's classic-control environments take almost no constructor keywords (CartPole none
but ``sutton_barto_reward``; Pendulum ``g``; MountainCar ``goal_velocity``): their physics are
plain attributes of the unwrapped environment, set in ``__init__``. ``env_attrs: {length: 1.0}``
sets them on ``env.unwrapped`` of every environment the domain makes (training, evaluation and
scoring episodes alike), before the vectorised environment reads its spaces. An attribute the
environment does not have, a method, a space, or a value of another type than the one it holds
is refused. Quantities an environment derives from its attributes in ``__init__`` (CartPole's
``total_mass`` and ``polemass_length``, the observation bounds of CartPole, MountainCar, Acrobot
and Pendulum, Pendulum's and MountainCarContinuous' action bounds) are recomputed for the classic
environments listed in :data:`DERIVED`; a user's own environment should compute such quantities
where it uses them (in ``step``), or not derive them from settable attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tickets.errors import ConfigError, did_you_mean

CLASSIC = "gymnasium.envs.classic_control."


def _box_like(old: spaces.Box, low, high) -> spaces.Box:
    new = spaces.Box(low=np.broadcast_to(np.asarray(low, dtype=old.dtype), old.shape).copy(),
                     high=np.broadcast_to(np.asarray(high, dtype=old.dtype), old.shape).copy(), dtype=old.dtype)
    new.seed(int(old.np_random.integers(2**31)))  # the old space's seeding carries over
    return new


def _cartpole(env: Any) -> None:
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length
    high = [env.x_threshold * 2, np.inf, env.theta_threshold_radians * 2, np.inf]
    env.observation_space = _box_like(env.observation_space, -np.array(high), high)


def _mountain_car(env: Any) -> None:
    env.low = np.array([env.min_position, -env.max_speed], dtype=np.float32)
    env.high = np.array([env.max_position, env.max_speed], dtype=np.float32)
    env.observation_space = _box_like(env.observation_space, env.low, env.high)


def _continuous_mountain_car(env: Any) -> None:
    env.low_state = np.array([env.min_position, -env.max_speed], dtype=np.float32)
    env.high_state = np.array([env.max_position, env.max_speed], dtype=np.float32)
    env.observation_space = _box_like(env.observation_space, env.low_state, env.high_state)
    env.action_space = _box_like(env.action_space, env.min_action, env.max_action)


def _pendulum(env: Any) -> None:
    high = np.array([1.0, 1.0, env.max_speed])
    env.observation_space = _box_like(env.observation_space, -high, high)
    env.action_space = _box_like(env.action_space, -env.max_torque, env.max_torque)


def _acrobot(env: Any) -> None:
    high = np.array([1.0, 1.0, 1.0, 1.0, env.MAX_VEL_1, env.MAX_VEL_2])
    env.observation_space = _box_like(env.observation_space, -high, high)


# unwrapped class (module:qualname) -> recomputes what its __init__ derives from settable attributes
DERIVED: dict[str, Callable[[Any], None]] = {
    CLASSIC + "cartpole:CartPoleEnv": _cartpole,
    CLASSIC + "mountain_car:MountainCarEnv": _mountain_car,
    CLASSIC + "continuous_mountain_car:Continuous_MountainCarEnv": _continuous_mountain_car,
    CLASSIC + "pendulum:PendulumEnv": _pendulum,
    CLASSIC + "acrobot:AcrobotEnv": _acrobot,
}

# what DERIVED recomputes: set the attributes it comes from instead
DERIVED_ATTRS = {
    CLASSIC + "cartpole:CartPoleEnv": {"total_mass": "masspole + masscart", "polemass_length": "masspole * length"},
    CLASSIC + "mountain_car:MountainCarEnv": {"low": "min_position, max_speed", "high": "max_position, max_speed"},
    CLASSIC + "continuous_mountain_car:Continuous_MountainCarEnv": {"low_state": "min_position, max_speed",
                                                                    "high_state": "max_position, max_speed"},
}

# attributes that must stay positive (a zero mass divides by zero; a negative one is no physics)
POSITIVE = {
    CLASSIC + "cartpole:CartPoleEnv": ("masscart", "masspole", "length", "tau", "force_mag", "x_threshold",
                                        "theta_threshold_radians"),
    CLASSIC + "pendulum:PendulumEnv": ("max_speed", "max_torque", "dt", "m", "l"),
    CLASSIC + "acrobot:AcrobotEnv": ("dt", "LINK_LENGTH_1", "LINK_LENGTH_2", "LINK_MASS_1", "LINK_MASS_2",
                                     "LINK_MOI", "MAX_VEL_1", "MAX_VEL_2"),
    CLASSIC + "mountain_car:MountainCarEnv": ("max_speed", "force"),
    CLASSIC + "continuous_mountain_car:Continuous_MountainCarEnv": ("max_speed", "power"),
}


def class_name(env: Any) -> str:
    cls = type(env)
    return f"{cls.__module__}:{cls.__qualname__}"


def _same_kind(current: Any, value: Any) -> bool:
    """A number for a number (Pendulum's max_speed is the int 8), a bool for a bool, else the type."""
    if isinstance(current, (bool, np.bool_)) or isinstance(value, bool):
        return isinstance(current, (bool, np.bool_)) and isinstance(value, bool)
    if isinstance(current, (int, float, np.integer, np.floating)):
        return isinstance(value, (int, float))
    return isinstance(value, type(current))


def settings_of(base: Any) -> list[str]:
    """The public, non-callable attributes of an unwrapped environment (its own and its class's)."""
    skip = {"metadata", "spec", "render_mode", "screen", "clock", "isopen", "state", "screen_width",
            "screen_height", "screen_dim", "steps_beyond_terminated"}
    names = {*vars(base), *(k for c in type(base).__mro__ if c.__module__ != "gymnasium.core" for k in vars(c))}
    derived = DERIVED_ATTRS.get(class_name(base), {})
    return sorted(k for k in names if not k.startswith("_") and k not in skip and k not in derived
                  and _settable(getattr(base, k, None)))


def apply_env_attrs(env: gym.Env, attrs: dict[str, Any], env_id: str) -> gym.Env:
    """Set ``attrs`` on ``env.unwrapped`` (checked: see the module docstring) and recompute what
    the environment derives from them; returns ``env``."""
    if not attrs:
        return env
    base = env.unwrapped
    name = class_name(base)
    for key, value in attrs.items():
        where = f"env_attrs.{key}"
        if key.startswith("_") or not hasattr(base, key):
            public = settings_of(base)
            raise ConfigError(f"{where}: {env_id}'s environment ({type(base).__name__}) has no attribute {key!r}"
                              f"{did_you_mean(key, public)} (its settings: {', '.join(public)})")
        current = getattr(base, key)
        if key in DERIVED_ATTRS.get(name, {}):
            raise ConfigError(f"{where}: {type(base).__name__}.{key} is derived ({DERIVED_ATTRS[name][key]}); "
                              "set those attributes instead")
        if not _settable(current):
            raise ConfigError(f"{where}: {type(base).__name__}.{key} is a {type(current).__name__}, not a setting")
        if not _same_kind(current, value):
            raise ConfigError(f"{where}: {type(base).__name__}.{key} holds a {type(current).__name__} "
                              f"({current!r}), got {value!r}")
        if key in POSITIVE.get(name, ()) and not (isinstance(value, (int, float)) and math.isfinite(value)
                                                  and value > 0):
            raise ConfigError(f"{where}: must be a positive number, got {value!r}")
        setattr(base, key, float(value) if isinstance(current, (float, np.floating)) else value)
    if name in DERIVED:
        DERIVED[name](base)
    return env


def _settable(value: Any) -> bool:
    return not callable(value) and not isinstance(value, (spaces.Space, np.random.Generator, property))


def return_bounds(env: gym.Env) -> tuple[float | None, float | None]:
    """(lowest, highest) return of one episode of this (made, capped) environment where the
    reward structure is known, else None for the side that is not: CartPole +1 a step (Sutton
    and Barto's reward: 0 or -1), Acrobot and MountainCar -1 a step, MountainCarContinuous at
    most 100; the cap is ``max_episode_steps``."""
    base, cap = env.unwrapped, env.spec.max_episode_steps if env.spec is not None else None
    name = class_name(base)
    if name == CLASSIC + "cartpole:CartPoleEnv":
        if getattr(base, "_sutton_barto_reward", False):
            return -1.0, 0.0
        return 1.0, (float(cap) if cap is not None else None)
    if name in (CLASSIC + "acrobot:AcrobotEnv", CLASSIC + "mountain_car:MountainCarEnv"):
        return (-float(cap) if cap is not None else None), 0.0
    if name == CLASSIC + "continuous_mountain_car:Continuous_MountainCarEnv":
        return None, 100.0
    return None, None
