"""2D navigation (Finn et al. 2017): a point starts at the origin and must reach a goal drawn from U[-0.5, 0.5]^2.

Actions are velocities clipped to ±0.1 per axis; the reward is the negative distance to the goal after the
move; every episode lasts ``horizon`` steps.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

MAX_ACTION = 0.1


class Navigation2DEnv(gym.Env):
    """One point-mass episode; ``set_task({"goal": [x, y]})`` moves the goal in place."""

    metadata = {"render_modes": []}

    def __init__(self, task: dict | None = None, horizon: int = 100):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, shape=(2,), dtype=np.float32)
        self.horizon = horizon
        self._goal = np.zeros(2)
        self._state = np.zeros(2)
        self._t = 0
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def get_task(self) -> dict:
        return {"goal": self._goal.tolist()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = np.zeros(2)
        self._t = 0
        return self._state.astype(np.float32), {"task": self.get_task()}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -MAX_ACTION, MAX_ACTION)
        self._state = self._state + action
        self._t += 1
        reward = -float(np.linalg.norm(self._state - self._goal))
        truncated = self._t >= self.horizon
        return self._state.astype(np.float32), reward, False, truncated, {"task": self.get_task()}


class BatchedNavigation2D:
    """``num_envs`` point masses advanced by one numpy operation per step (the fast path the sampler uses)."""

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self._goals = np.zeros((num_envs, 2))
        self._states = np.zeros((num_envs, 2))

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        self._goals = np.asarray([t["goal"] for t in tasks], dtype=np.float64).reshape(self.num_envs, 2)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        self._states = np.zeros((self.num_envs, 2))
        return self._states.astype(np.float32)

    def step(self, actions: np.ndarray):
        self._states = self._states + np.clip(actions, -MAX_ACTION, MAX_ACTION)
        rewards = -np.linalg.norm(self._states - self._goals, axis=-1)
        return self._states.astype(np.float32), rewards, np.zeros(self.num_envs, dtype=bool), {}


class Navigation2DFamily:
    """Goals uniform in a square; versions name the square's half-width and the horizon."""

    default_version = "finn2017"
    versions: dict[str, dict[str, Any]] = {
        "finn2017": {"goal_low": -0.5, "goal_high": 0.5, "horizon": 100, "distribution": "goal ~ U[-0.5, 0.5]^2"},
    }

    def __init__(self, version: str | None = None, horizon: int | None = None):
        version = self.default_version if version is None else version
        spec = self.versions[version]
        self.name = "2d-navigation"
        self.version = version
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        self._low, self._high = spec["goal_low"], spec["goal_high"]
        env = Navigation2DEnv(horizon=self.horizon)
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        goals = rng.uniform(self._low, self._high, size=(n, 2))
        return [{"goal": g.tolist()} for g in goals]

    def make_env(self, task: dict | None = None) -> gym.Env:
        return Navigation2DEnv(task, horizon=self.horizon)

    def make_batched_env(self, n: int) -> BatchedNavigation2D:
        return BatchedNavigation2D(n)

    def oracle_features(self, task: dict) -> np.ndarray:
        return np.asarray(task["goal"], dtype=np.float32)
