"""A user's own environment, registered on import: ``env_id: rl_tiny_env:TinyCorridor-v0``
(gymnasium imports the module named before the colon, then makes the id)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right to the end of a corridor: +1 a step while inside it, the episode ends at the
    end (``length`` cells, a settable attribute) or at the registered cap."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, length: int = 5, render_mode: str | None = None):
        self.render_mode = render_mode
        self.length = length
        self.speed = 1.0
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.position = 0.0

    def _obs(self):
        return np.array([self.position, self.length - self.position], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = float(self.np_random.uniform(0, 0.5))
        return self._obs(), {}

    def step(self, action):
        self.position += self.speed if action == 1 else -self.speed * 0.5
        return self._obs(), 1.0, self.position >= self.length, False, {}


if "TinyCorridor-v0" not in gym.registry:
    gym.register(id="TinyCorridor-v0", entry_point=f"{__name__}:Corridor", max_episode_steps=20,
                 reward_threshold=5.0)
