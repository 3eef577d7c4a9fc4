"""Point on a line: a complete metarl task family in one file (no metarl imports needed).

A point starts at x = 0 and must reach a goal g ~ U[-goal_range, goal_range]; each step moves it by the action,
clipped to ±0.1; the reward is -|x - g| after the move; every episode lasts ``horizon`` (20) steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

MAX_STEP = 0.1


class LineEnv(gym.Env):
    """One episode on the line; ``set_task({"goal": g})`` moves the goal in place."""

    metadata = {"render_modes": []}

    def __init__(self, task: dict | None = None, horizon: int = 20):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, shape=(1,), dtype=np.float32)
        self.horizon = horizon
        self._goal, self._x, self._t = 0.0, 0.0, 0
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        self._goal = float(task["goal"])

    def get_task(self) -> dict:
        return {"goal": self._goal}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)  # seeds self.np_random (unused here: the dynamics are deterministic)
        self._x, self._t = 0.0, 0
        return np.array([self._x], dtype=np.float32), {}

    def step(self, action):
        self._x += float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -MAX_STEP, MAX_STEP))
        self._t += 1
        reward = -abs(self._x - self._goal)
        truncated = self._t >= self.horizon  # report the horizon as truncation
        return np.array([self._x], dtype=np.float32), reward, False, truncated, {}


class LineFamily:
    """Point on a line: reach a goal ~ U[-goal_range, goal_range] in ``horizon`` steps of at most 0.1."""

    default_version = "v1"
    versions: dict[str, dict[str, Any]] = {
        "v1": {"horizon": 20, "distribution": "goal ~ U[-1, 1]"},
    }

    def __init__(self, version: str | None = None, horizon: int | None = None, goal_range: float = 1.0):
        version = self.default_version if version is None else version
        if version not in self.versions:
            raise ValueError(f"line has no version {version!r}; allowed: {', '.join(self.versions)}")
        self.name = "line"
        self.version = version
        self.horizon = int(horizon if horizon is not None else self.versions[version]["horizon"])
        self.goal_range = float(goal_range)
        env = LineEnv(horizon=self.horizon)
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Draw only from ``rng`` so that tasks follow the run's seed; return plain JSON-able dicts."""
        return [{"goal": float(g)} for g in rng.uniform(-self.goal_range, self.goal_range, size=n)]

    def make_env(self, task: dict | None = None) -> gym.Env:
        return LineEnv(task, horizon=self.horizon)

    def oracle_features(self, task: dict) -> np.ndarray:  # optional: task parameters for an oracle baseline
        return np.array([task["goal"]], dtype=np.float32)
