"""The RL domain's environments: any registered gymnasium id (Atari through ale-py), built the way
SB3 builds them, with the same wrappers for training and evaluation, and checked before any work.

A vectorised environment is: ``make_vec_env`` (each env under a ``Monitor``, so evaluation counts
whole games and raw scores even when a wrapper ends episodes at a lost life or clips rewards),
SB3's ``AtariWrapper`` (``atari: true``: no-op starts, frame skip 4 with max-pooling, a lost life
ends the training episode, FIRE on reset, 84x84 greyscale, rewards clipped to their sign),
``VecFrameStack`` (``frame_stack``), and ``VecTransposeImage`` for channel-last images, as SB3's
algorithms add it themselves, so a policy and its evaluation see the same observations.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

from tickets.errors import ConfigError, did_you_mean

from .variants import apply_env_attrs, return_bounds

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


def _prepared(env: gym.Env, *, env_id: str, env_attrs: dict[str, Any], atari: bool) -> gym.Env:
    """One environment under its Monitor: ``env_attrs`` set (see domains.rl.variants), then the
    Atari wrappers; the vectorised environment reads its spaces after this."""
    env = apply_env_attrs(env, env_attrs, env_id)
    return AtariWrapper(env) if atari else env


def make_env(env_id: str, *, n_envs: int, seed: int, env_kwargs: dict[str, Any], atari: bool = False,
             frame_stack: int = 1, env_attrs: dict[str, Any] | None = None) -> VecEnv:
    """``n_envs`` seeded copies of the environment with the domain's wrappers (module docstring)."""
    wrap = partial(_prepared, env_id=env_id, env_attrs=dict(env_attrs or {}), atari=atari)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                       wrapper_class=wrap if (atari or env_attrs) else None)
    if frame_stack > 1:
        env = VecFrameStack(env, frame_stack)
    space = env.observation_space
    if is_image_space(space) and not is_image_space_channels_first(space):
        env = VecTransposeImage(env)
    return env


def probe_spaces(env_id: str, env_kwargs: dict[str, Any], atari: bool = False, frame_stack: int = 1,
                 env_attrs: dict[str, Any] | None = None) -> tuple[spaces.Space, spaces.Space, tuple]:
    """(observation space as the policy sees it, action space, (lowest, highest) return of an
    episode where known: see ``variants.return_bounds``), or a ConfigError naming the key."""
    try:
        env = make_env(env_id, n_envs=1, seed=0, env_kwargs=env_kwargs, atari=atari, frame_stack=frame_stack,
                       env_attrs=env_attrs)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 (a bad env_kwargs key, a missing dependency)
        raise ConfigError(f"env_kwargs: cannot make {env_id!r}: {e}") from None
    try:
        inner = env.unwrapped.envs[0]  # a DummyVecEnv under any VecEnv wrappers
        return env.observation_space, env.action_space, return_bounds(inner)
    finally:
        env.close()
