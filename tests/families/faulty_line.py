"""A point-on-a-line task family whose env raises after a set number of steps in its process: the fault tests
use it (``family.name: "faulty_line:FaultyLineFamily"``, this folder on PYTHONPATH) to check that a raising env
stops a run with a short error naming the family and the task."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

_steps_in_this_process = 0


class FaultyLineEnv(gym.Env):
    def __init__(self, horizon: int, fail_after_steps: int):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-0.1, 0.1, shape=(1,), dtype=np.float32)
        self.horizon, self.fail_after_steps = horizon, fail_after_steps
        self._goal, self._x, self._t = 0.0, 0.0, 0

    def set_task(self, task: dict) -> None:
        self._goal = float(task["goal"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._x, self._t = 0.0, 0
        return np.array([self._x], dtype=np.float32), {}

    def step(self, action):
        global _steps_in_this_process
        _steps_in_this_process += 1
        if _steps_in_this_process > self.fail_after_steps:
            raise RuntimeError(f"simulated env failure at goal {self._goal:.3f}")
        self._x += float(np.clip(np.asarray(action).reshape(-1)[0], -0.1, 0.1))
        self._t += 1
        return np.array([self._x], dtype=np.float32), -abs(self._x - self._goal), False, self._t >= self.horizon, {}


class FaultyLineFamily:
    default_version = "v1"
    versions = {"v1": {"horizon": 10, "distribution": "goal ~ U[-1, 1]"}}

    def __init__(self, version: str | None = None, fail_after_steps: int = 10**9):
        self.name, self.version, self.horizon = "faulty-line", version or "v1", 10
        self.fail_after_steps = fail_after_steps
        env = FaultyLineEnv(self.horizon, fail_after_steps)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return [{"goal": float(g)} for g in rng.uniform(-1, 1, size=n)]

    def make_env(self, task: dict | None = None) -> gym.Env:
        env = FaultyLineEnv(self.horizon, self.fail_after_steps)
        if task is not None:
            env.set_task(task)
        return env
