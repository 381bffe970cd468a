"""The RL domain's environments: any registered gymnasium id (Atari through ale-py), built the way
SB3 builds them, with the same wrappers for training and evaluation, and checked before any work.

A vectorised environment is: ``make_vec_env`` (each env under a ``Monitor``, so evaluation counts
whole games and raw scores even when a wrapper ends episodes at a lost life or clips rewards),
SB3's ``AtariWrapper`` (``atari: true``: no-op starts, frame skip 4 with max-pooling, a lost life
ends the training episode, FIRE on reset, 84x84 greyscale, rewards clipped to their sign),
``VecFrameStack`` (``frame_stack``), and ``VecTransposeImage`` for channel-last images, as SB3's
algorithms add it themselves, so a policy and its evaluation see the same observations.

The config check (``probe_spaces``) makes one environment the same way without the vectorised
environment (SB3 imports torch) and computes the spaces its wrappers would give
(tests/test_rl_config_imports.py checks them against ``make_env``'s); only ``atari: true``
imports SB3, for its AtariWrapper.
"""

from __future__ import annotations

import importlib
import warnings
from functools import partial
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tickets.errors import ConfigError, did_you_mean

from .variants import apply_env_attrs, return_bounds

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

# Packages whose import registers an id namespace with gymnasium (gym.make does not import them).
NAMESPACE_PACKAGES = {"ALE": "ale_py"}
ATARI_PACKAGE = "ale_py"  # also registers the namespace-free ids (PongNoFrameskip-v4)


def registered_name(env_id: str) -> str:
    """The gymnasium id of ``env_id`` ("package.module:Env-v0" names a module to import first)."""
    return env_id.rpartition(":")[2]


def check_env_id(env_id: str, atari: bool = False) -> None:
    """Import what registers ``env_id`` and check that gymnasium knows it."""
    module, _, name = env_id.rpartition(":")  # "package.module:Env-v0" registers on import, as in gym.make
    namespace = name.partition("/")[0] if "/" in name else None
    module = module or NAMESPACE_PACKAGES.get(namespace) or (ATARI_PACKAGE if atari else "")
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


def check_atari(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """SB3's AtariWrapper needs an ALE environment that does not skip frames itself."""
    spec = gym.spec(registered_name(env_id))
    if not str(spec.entry_point).startswith("ale_py"):
        raise ConfigError(f"atari: {env_id} is not an Atari (ALE) environment; the Atari wrappers need one")
    frameskip = {**spec.kwargs, **env_kwargs}.get("frameskip", 1)
    if frameskip != 1:
        raise ConfigError(f"atari: the AtariWrapper skips 4 frames itself, and {env_id} already skips {frameskip}; "
                          "use a NoFrameskip-v4 id or set env_kwargs: {frameskip: 1}")


def is_image_space(space: spaces.Space) -> bool:
    """SB3's ``preprocessing.is_image_space`` (a uint8 Box of three dimensions in [0, 255]), which
    imports torch with SB3."""
    return (isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8
            and not (np.any(space.low != 0) or np.any(space.high != 255)))


def is_image_space_channels_first(space: spaces.Box) -> bool:
    """SB3's ``preprocessing.is_image_space_channels_first``: the smallest dimension is the channels."""
    smallest = np.argmin(space.shape).item()
    if smallest == 1:
        warnings.warn("Treating image space as channels-last, while second dimension was smallest of the three.")
    return smallest == 0


def _prepared(env: gym.Env, *, env_id: str, env_attrs: dict[str, Any], atari: bool) -> gym.Env:
    """One environment under its Monitor: ``env_attrs`` set (see domains.rl.variants), then the
    Atari wrappers; the vectorised environment reads its spaces after this."""
    env = apply_env_attrs(env, env_attrs, env_id)
    if not atari:
        return env
    from stable_baselines3.common.atari_wrappers import AtariWrapper

    return AtariWrapper(env)


def make_env(env_id: str, *, n_envs: int, seed: int, env_kwargs: dict[str, Any], atari: bool = False,
             frame_stack: int = 1, env_attrs: dict[str, Any] | None = None) -> VecEnv:
    """``n_envs`` seeded copies of the environment with the domain's wrappers (module docstring)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

    wrap = partial(_prepared, env_id=env_id, env_attrs=dict(env_attrs or {}), atari=atari)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                       wrapper_class=wrap if (atari or env_attrs) else None)
    if frame_stack > 1:
        env = VecFrameStack(env, frame_stack)
    space = env.observation_space
    if is_image_space(space) and not is_image_space_channels_first(space):
        env = VecTransposeImage(env)
    return env


def _make_one(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` as SB3's ``make_vec_env`` calls it (so a bad keyword gets the same message)."""
    try:
        return gym.make(env_id, **{"render_mode": "rgb_array", **env_kwargs})
    except TypeError:
        return gym.make(env_id, **env_kwargs)


def _check_vectorisable(space: spaces.Space) -> None:
    """What SB3's DummyVecEnv refuses in an observation space (``vec_env.util.obs_space_info``)."""
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        subspaces = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
        if any(isinstance(sub, (spaces.Dict, spaces.Tuple)) for sub in subspaces):
            raise NotImplementedError(
                "Nested observation spaces are not supported (Tuple/Dict space inside Tuple/Dict space).")
    elif hasattr(space, "spaces"):
        raise AssertionError(f"Unsupported structured space '{type(space)}'")


def _stacked(space: spaces.Space, n: int) -> spaces.Space:
    """The observation space under SB3's ``VecFrameStack(n)`` (``StackedObservations``): a Box
    repeated along its channels (the first axis of a channels-first image, else the last)."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: _stacked(sub, n) for key, sub in space.spaces.items()})
    if not isinstance(space, spaces.Box):
        raise TypeError(f"StackedObservations only supports Box and Dict as observation spaces. {space} was provided.")
    axis = 0 if is_image_space(space) and is_image_space_channels_first(space) else -1
    return spaces.Box(low=np.repeat(space.low, n, axis=axis), high=np.repeat(space.high, n, axis=axis),
                      dtype=space.dtype)


def _vectorised_observation_space(space: spaces.Space, frame_stack: int) -> spaces.Space:
    """The observation space of ``make_env``'s vectorised environment over one with ``space``."""
    _check_vectorisable(space)
    if frame_stack > 1:
        if not isinstance(space, (spaces.Box, spaces.Dict)):
            raise AssertionError("VecFrameStack only works with gym.spaces.Box and gym.spaces.Dict observation spaces")
        space = _stacked(space, frame_stack)
    if is_image_space(space) and not is_image_space_channels_first(space):  # VecTransposeImage
        height, width, channels = space.shape
        space = spaces.Box(low=0, high=255, shape=(channels, height, width), dtype=space.dtype)
    return space


def probe_spaces(env_id: str, env_kwargs: dict[str, Any], atari: bool = False, frame_stack: int = 1,
                 env_attrs: dict[str, Any] | None = None) -> tuple[spaces.Space, spaces.Space, tuple]:
    """(observation space as the policy sees it, action space, (lowest, highest) return of an
    episode where known: see ``variants.return_bounds``), or a ConfigError naming the key. One
    environment, made and wrapped as ``make_env`` makes each (module docstring)."""
    env = None
    try:
        env = _make_one(env_id, env_kwargs)
        env = _prepared(env, env_id=env_id, env_attrs=dict(env_attrs or {}), atari=atari)
        observation_space = _vectorised_observation_space(env.observation_space, frame_stack)
        return observation_space, env.action_space, return_bounds(env)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 (a bad env_kwargs key, a missing dependency)
        raise ConfigError(f"env_kwargs: cannot make {env_id!r}: {e}") from None
    finally:
        if env is not None:
            env.close()
