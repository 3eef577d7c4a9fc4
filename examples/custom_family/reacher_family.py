"""Reacher goals: a task family around Gymnasium's own ``Reacher-v5``, as a user would write it.

The env is the unmodified Gymnasium env from ``gymnasium.make`` (a float64 observation ``Box`` behind a
``TimeLimit`` and other wrappers); a task fixes the target that Reacher otherwise draws at random on each reset.
metarl casts observations to float32 at its boundary, so nothing here has to.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ReacherGoalEnv(gym.Wrapper):
    """``Reacher-v5`` whose target is the task's goal instead of a random one."""

    def __init__(self, task: dict | None = None, horizon: int = 50):
        super().__init__(gym.make("Reacher-v5", max_episode_steps=horizon))
        self._goal = np.zeros(2)
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float64)

    def get_task(self) -> dict:
        return {"goal": self._goal.tolist()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        reacher = self.env.unwrapped
        qpos, qvel = reacher.data.qpos.copy(), reacher.data.qvel.copy()
        qpos[-2:], qvel[-2:] = self._goal, 0.0
        reacher.set_state(qpos, qvel)
        reacher.goal = self._goal.copy()
        return reacher._get_obs(), info


class ReacherGoalFamily:
    """Reach a goal drawn uniformly from the disc of radius ``goal_radius`` (Reacher's own range: 0.2)."""

    default_version = "v5"
    versions = {"v5": {"horizon": 50, "distribution": "goal uniform on the disc of radius 0.2"}}

    def __init__(self, version: str | None = None, goal_radius: float = 0.2):
        self.name, self.version = "reacher-goal", version or self.default_version
        if self.version not in self.versions:
            raise ValueError(f"reacher-goal has no version {self.version!r}; allowed: v5")
        self.horizon = self.versions[self.version]["horizon"]
        self.goal_radius = float(goal_radius)
        env = self.make_env()
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        radius = self.goal_radius * np.sqrt(rng.uniform(size=n))
        angle = rng.uniform(0, 2 * np.pi, size=n)
        return [{"goal": [float(r * np.cos(a)), float(r * np.sin(a))]} for r, a in zip(radius, angle)]

    def make_env(self, task: dict | None = None) -> gym.Env:
        return ReacherGoalEnv(task, horizon=self.horizon)

    def oracle_features(self, task: dict) -> np.ndarray:
        return np.asarray(task["goal"], dtype=np.float32)
