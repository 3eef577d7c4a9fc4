"""2D navigation (Finn et al. 2017): a point starts at the origin and must reach a goal drawn from U[-0.5, 0.5]^2.

Each step moves the point by a velocity of at most 0.1 per axis; the reward is the negative distance to the goal
after the move. An episode ends when the point is within ``goal_tolerance`` (0.01) of the goal on both axes, as in
the authors' point env and pytorch-maml-rl, or after ``horizon`` steps. Versions differ in how actions map to
velocities:

- ``finn2017`` (default): actions live in [-1, 1] and are scaled to velocities in [-0.1, 0.1], as in the authors'
  code, which wraps the point env in rllab's ``normalize`` (so a unit-variance Gaussian policy explores at the
  scale of the task).
- ``raw-velocity``: actions are the velocities themselves, clipped to ±0.1 (as in pytorch-maml-rl); a policy with
  standard deviation 1 then saturates almost every action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.families import FamilyError, resolve_version

MAX_VELOCITY = 0.1


def velocity(actions: np.ndarray, action_bound: float) -> np.ndarray:
    """Clip actions to ±action_bound and scale them to velocities of at most MAX_VELOCITY per axis."""
    return np.clip(np.asarray(actions, dtype=np.float64), -action_bound, action_bound) * (MAX_VELOCITY / action_bound)


def at_goal(offset: np.ndarray, tolerance: float) -> np.ndarray:
    """True where the point is within ``tolerance`` of its goal on every axis (``offset`` = state - goal)."""
    return (np.abs(offset) < tolerance).all(axis=-1)


class Navigation2DEnv(gym.Env):
    """One point-mass episode; ``set_task({"goal": [x, y]})`` moves the goal in place."""

    metadata = {"render_modes": []}

    def __init__(self, task: dict | None = None, horizon: int = 100, action_bound: float = 1.0,
                 goal_tolerance: float = 0.01):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-action_bound, action_bound, shape=(2,), dtype=np.float32)
        self.action_bound = action_bound
        self.horizon = horizon
        self.goal_tolerance = goal_tolerance
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
        self._state = self._state + velocity(action, self.action_bound)
        self._t += 1
        offset = self._state - self._goal
        reward = -float(np.linalg.norm(offset))
        terminated = bool(at_goal(offset, self.goal_tolerance))
        truncated = self._t >= self.horizon
        return self._state.astype(np.float32), reward, terminated, truncated, {"task": self.get_task()}


class BatchedNavigation2D:
    """``num_envs`` point masses advanced by one numpy operation per step (the fast path the sampler uses)."""

    def __init__(self, num_envs: int, action_bound: float = 1.0, goal_tolerance: float = 0.01):
        self.num_envs = num_envs
        self.action_bound = action_bound
        self.goal_tolerance = goal_tolerance
        self._goals = np.zeros((num_envs, 2))
        self._states = np.zeros((num_envs, 2))

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        self._goals = np.asarray([t["goal"] for t in tasks], dtype=np.float64).reshape(self.num_envs, 2)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        self._states = np.zeros((self.num_envs, 2))
        return self._states.astype(np.float32)

    def step(self, actions: np.ndarray):
        self._states = self._states + velocity(actions, self.action_bound)
        offsets = self._states - self._goals
        rewards = -np.linalg.norm(offsets, axis=-1)
        return self._states.astype(np.float32), rewards, at_goal(offsets, self.goal_tolerance), {}


class Navigation2DFamily:
    """Goals uniform in a square; versions set the square, the horizon and the action scale."""

    default_version = "finn2017"
    versions: dict[str, dict[str, Any]] = {
        "finn2017": {"goal_low": -0.5, "goal_high": 0.5, "horizon": 100, "action_bound": 1.0,
                     "distribution": "goal ~ U[-0.5, 0.5]^2; actions in [-1, 1] scaled to velocities of ±0.1"},
        "raw-velocity": {"goal_low": -0.5, "goal_high": 0.5, "horizon": 100, "action_bound": 0.1,
                         "distribution": "goal ~ U[-0.5, 0.5]^2; actions are velocities clipped to ±0.1"},
    }

    def __init__(self, version: str | None = None, horizon: int | None = None, goal_tolerance: float = 0.01):
        """``goal_tolerance``: the episode ends within this distance of the goal on both axes (0 = never)."""
        self.name = "2d-navigation"
        self.version, spec = resolve_version(self.name, self.versions, self.default_version, version)
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        self._low, self._high = spec["goal_low"], spec["goal_high"]
        self._action_bound = spec["action_bound"]
        self._tolerance = float(goal_tolerance)
        if not self._tolerance >= 0:
            raise FamilyError(f"2d-navigation needs goal_tolerance >= 0 (0 = never end early), got {goal_tolerance}")
        env = self.make_env()
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        goals = rng.uniform(self._low, self._high, size=(n, 2))
        return [{"goal": g.tolist()} for g in goals]

    def make_env(self, task: dict | None = None) -> gym.Env:
        return Navigation2DEnv(task, horizon=self.horizon, action_bound=self._action_bound,
                               goal_tolerance=self._tolerance)

    def make_batched_env(self, n: int) -> BatchedNavigation2D:
        return BatchedNavigation2D(n, self._action_bound, self._tolerance)

    def oracle_features(self, task: dict) -> np.ndarray:
        return np.asarray(task["goal"], dtype=np.float32)
