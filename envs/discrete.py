"""Discrete task families from RL^2 (Duan et al. 2016): Bernoulli multi-armed bandits and random tabular MDPs.

``bandit``: K arms (``num_arms``, default 5) with success probabilities p_k ~ U[0, 1]; pulling arm k pays 1 with
probability p_k, else 0. The observation is the constant 1-vector (a bandit has no state).

``tabular-mdp``: S states (default 10) and A actions (default 5); transition rows P(.|s, a) ~ Dirichlet(1, ..., 1),
mean rewards mu(s, a) ~ N(1, 1), a step pays mu(s, a) + N(0, 1) noise. Every episode starts in state 0 (Duan:
"an episode always starts on the first state"); the observation is the one-hot state (float32).

Both have a plain gymnasium env and a numpy-vectorised batched env that give identical results: all randomness of
an episode comes from the episode's reset seed, drawn up front in blocks of ``horizon`` steps by
``_draw_noise`` (uniform draws for Bernoulli rewards and transitions, standard normals for Gaussian rewards), so
the batched env steps with pure array operations and matches the plain env draw for draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.families import FamilyError, resolve_version


def _draw_noise(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One block of per-step noise: uniforms (for Bernoulli draws and transitions) then standard normals."""
    return rng.random(steps), rng.standard_normal(steps)


class _NoiseStream:
    """Per-episode noise for one env, extended block by block from the episode's generator when needed."""

    def __init__(self, rng: np.random.Generator, block: int):
        self.rng, self.block = rng, block
        self.uniform, self.normal = _draw_noise(rng, block)

    def at(self, t: int) -> tuple[float, float]:
        while t >= len(self.uniform):
            u, z = _draw_noise(self.rng, self.block)
            self.uniform, self.normal = np.concatenate([self.uniform, u]), np.concatenate([self.normal, z])
        return self.uniform[t], self.normal[t]


class _BatchedNoise:
    """``n`` noise streams kept as [n, T] arrays, one generator per env seeded by its reset seed."""

    def __init__(self, seeds: Sequence[int], block: int):
        self.streams = [_NoiseStream(np.random.default_rng(int(s)), block) for s in seeds]
        self.uniform = np.stack([s.uniform for s in self.streams])
        self.normal = np.stack([s.normal for s in self.streams])

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t >= self.uniform.shape[1]:
            for stream in self.streams:
                stream.at(t)
            self.uniform = np.stack([s.uniform for s in self.streams])
            self.normal = np.stack([s.normal for s in self.streams])
        return self.uniform[:, t], self.normal[:, t]


def _convert_once(tasks: Sequence[dict], convert: Callable[[dict], Any]) -> list[Any]:
    """``convert(task)`` for every task, computed once per distinct task object (the sampler repeats each task
    once per episode)."""
    cache: dict[int, Any] = {}
    for task in tasks:
        if id(task) not in cache:
            cache[id(task)] = convert(task)
    return [cache[id(task)] for task in tasks]


# ------------------------------------------------------------------------------------------------------ bandit


class BanditEnv(gym.Env):
    """K-armed Bernoulli bandit; ``set_task({"probs": [p_1, ..., p_K]})`` swaps the arms' success probabilities."""

    metadata = {"render_modes": []}

    def __init__(self, task: dict | None = None, num_arms: int = 5, horizon: int = 10):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)  # always 1
        self.action_space = gym.spaces.Discrete(num_arms)
        self.num_arms, self.horizon = num_arms, horizon
        self._probs = np.full(num_arms, 0.5)
        self._noise: _NoiseStream | None = None
        self._t = 0
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        probs = np.asarray(task["probs"], dtype=np.float64)
        if probs.shape != (self.num_arms,):
            raise ValueError(f"bandit task has {probs.shape} probabilities, expected ({self.num_arms},)")
        self._probs = probs

    def get_task(self) -> dict:
        return {"probs": self._probs.tolist()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._noise = _NoiseStream(self.np_random, self.horizon)
        self._t = 0
        return np.ones(1, dtype=np.float32), {}

    def step(self, action):
        u, _ = self._noise.at(self._t)
        reward = float(u < self._probs[int(action)])
        self._t += 1
        return np.ones(1, dtype=np.float32), reward, False, self._t >= self.horizon, {}


class BatchedBandit:
    """``num_envs`` bandits; one gather and one comparison per step."""

    def __init__(self, num_envs: int, num_arms: int, horizon: int):
        self.num_envs, self.num_arms, self.horizon = num_envs, num_arms, horizon
        self._probs = np.full((num_envs, num_arms), 0.5)
        self._noise: _BatchedNoise | None = None
        self._t = 0

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        self._probs = np.stack(_convert_once(tasks, lambda t: np.asarray(t["probs"], dtype=np.float64)))
        if self._probs.shape != (self.num_envs, self.num_arms):
            raise ValueError(f"expected {self.num_envs} tasks of {self.num_arms} arms, got {self._probs.shape}")

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        self._noise = _BatchedNoise(seeds, self.horizon)
        self._t = 0
        return np.ones((self.num_envs, 1), dtype=np.float32)

    def step(self, actions: np.ndarray):
        u, _ = self._noise.at(self._t)
        p = self._probs[np.arange(self.num_envs), np.asarray(actions, dtype=np.int64)]
        self._t += 1
        return (np.ones((self.num_envs, 1), dtype=np.float32), (u < p).astype(np.float64),
                np.zeros(self.num_envs, dtype=bool), {})


class BanditFamily:
    """Bernoulli bandits with arm probabilities ~ U[0, 1]; ``num_arms`` and ``horizon`` (pulls per episode)."""

    name = "bandit"
    default_version = "duan2016"
    versions: dict[str, dict[str, Any]] = {
        "duan2016": {"horizon": 10, "num_arms": 5, "distribution": "p_k ~ U[0, 1], K = 5 arms (num_arms)"},
    }

    def __init__(self, version: str | None = None, num_arms: int | None = None, horizon: int | None = None):
        self.version, spec = resolve_version(self.name, self.versions, self.default_version, version)
        self.num_arms = int(num_arms if num_arms is not None else spec["num_arms"])
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        if self.num_arms < 1 or self.horizon < 1:
            raise FamilyError(f"bandit needs num_arms >= 1 and horizon >= 1, got {self.num_arms}, {self.horizon}")
        env = BanditEnv(num_arms=self.num_arms, horizon=self.horizon)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return [{"probs": p.tolist()} for p in rng.random((n, self.num_arms))]

    def make_env(self, task: dict | None = None) -> BanditEnv:
        return BanditEnv(task, num_arms=self.num_arms, horizon=self.horizon)

    def make_batched_env(self, n: int) -> BatchedBandit:
        return BatchedBandit(n, self.num_arms, self.horizon)

    def oracle_features(self, task: dict) -> np.ndarray:
        return np.asarray(task["probs"], dtype=np.float32)


# ------------------------------------------------------------------------------------------------- tabular MDP


def _next_state(cumulative: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """Inverse-CDF sampling: the first state whose cumulative probability exceeds u (rows along the last axis)."""
    return np.minimum((cumulative <= np.expand_dims(u, -1)).sum(-1), cumulative.shape[-1] - 1)


def _mdp_arrays(task: dict, num_states: int, num_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative transition probabilities [S, A, S], mean rewards [S, A]) of one task, shape-checked."""
    transitions = np.asarray(task["transitions"], dtype=np.float64)
    means = np.asarray(task["reward_means"], dtype=np.float64)
    if transitions.shape != (num_states, num_actions, num_states) or means.shape != (num_states, num_actions):
        raise ValueError(f"tabular-mdp task has transitions {transitions.shape} and reward_means {means.shape}; "
                         f"expected {(num_states, num_actions, num_states)} and {(num_states, num_actions)}")
    return np.cumsum(transitions, axis=-1), means


class TabularMDPEnv(gym.Env):
    """Random tabular MDP; ``set_task({"transitions": [S][A][S], "reward_means": [S][A]})`` swaps the MDP."""

    metadata = {"render_modes": []}

    def __init__(self, task: dict | None = None, num_states: int = 10, num_actions: int = 5, horizon: int = 10):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(num_states,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(num_actions)
        self.num_states, self.num_actions, self.horizon = num_states, num_actions, horizon
        uniform = {"transitions": np.full((num_states, num_actions, num_states), 1.0 / num_states),
                   "reward_means": np.ones((num_states, num_actions))}
        self._transitions = uniform["transitions"]
        self._cumulative, self._means = _mdp_arrays(uniform, num_states, num_actions)
        self._noise: _NoiseStream | None = None
        self._state, self._t = 0, 0
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        self._cumulative, self._means = _mdp_arrays(task, self.num_states, self.num_actions)
        self._transitions = np.asarray(task["transitions"], dtype=np.float64)

    def get_task(self) -> dict:
        return {"transitions": self._transitions.tolist(), "reward_means": self._means.tolist()}

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.num_states, dtype=np.float32)
        obs[self._state] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._noise = _NoiseStream(self.np_random, self.horizon)
        self._state, self._t = 0, 0
        return self._obs(), {}

    def step(self, action):
        u, z = self._noise.at(self._t)
        a = int(action)
        reward = float(self._means[self._state, a] + z)
        self._state = int(_next_state(self._cumulative[self._state, a], u))
        self._t += 1
        return self._obs(), reward, False, self._t >= self.horizon, {}


class BatchedTabularMDP:
    """``num_envs`` tabular MDPs advanced by array gathers; the one-hot observations come from an identity."""

    def __init__(self, num_envs: int, num_states: int, num_actions: int, horizon: int):
        self.num_envs, self.num_states, self.num_actions, self.horizon = num_envs, num_states, num_actions, horizon
        self._eye = np.eye(num_states, dtype=np.float32)
        self._rows = np.arange(num_envs)
        self._cumulative = np.broadcast_to(np.linspace(1 / num_states, 1, num_states),
                                           (num_envs, num_states, num_actions, num_states))
        self._means = np.ones((num_envs, num_states, num_actions))
        self._states = np.zeros(num_envs, dtype=np.int64)
        self._noise: _BatchedNoise | None = None
        self._t = 0

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        pairs = _convert_once(tasks, lambda t: _mdp_arrays(t, self.num_states, self.num_actions))
        self._cumulative = np.stack([cumulative for cumulative, _ in pairs])
        self._means = np.stack([means for _, means in pairs])

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        self._noise = _BatchedNoise(seeds, self.horizon)
        self._states = np.zeros(self.num_envs, dtype=np.int64)
        self._t = 0
        return self._eye[self._states]

    def step(self, actions: np.ndarray):
        u, z = self._noise.at(self._t)
        a = np.asarray(actions, dtype=np.int64)
        rewards = self._means[self._rows, self._states, a] + z
        self._states = _next_state(self._cumulative[self._rows, self._states, a], u)
        self._t += 1
        return self._eye[self._states], rewards, np.zeros(self.num_envs, dtype=bool), {}


class TabularMDPFamily:
    """Random MDPs with Dirichlet(1) transitions and N(1, 1) mean rewards (RL^2's tabular MDPs)."""

    name = "tabular-mdp"
    default_version = "duan2016"
    versions: dict[str, dict[str, Any]] = {
        "duan2016": {"horizon": 10, "num_states": 10, "num_actions": 5,
                     "distribution": "P(.|s,a) ~ Dir(1), mu(s,a) ~ N(1,1), r ~ N(mu,1); 10 states x 5 actions"},
    }

    def __init__(self, version: str | None = None, num_states: int | None = None, num_actions: int | None = None,
                 horizon: int | None = None):
        self.version, spec = resolve_version(self.name, self.versions, self.default_version, version)
        self.num_states = int(num_states if num_states is not None else spec["num_states"])
        self.num_actions = int(num_actions if num_actions is not None else spec["num_actions"])
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        if min(self.num_states, self.num_actions, self.horizon) < 1:
            raise FamilyError("tabular-mdp needs num_states, num_actions and horizon >= 1")
        env = self.make_env()
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Per task: the Dirichlet transition rows, then the mean rewards."""
        tasks = []
        for _ in range(n):
            transitions = rng.dirichlet(np.ones(self.num_states), size=(self.num_states, self.num_actions))
            means = rng.normal(1.0, 1.0, size=(self.num_states, self.num_actions))
            tasks.append({"transitions": transitions.tolist(), "reward_means": means.tolist()})
        return tasks

    def make_env(self, task: dict | None = None) -> TabularMDPEnv:
        return TabularMDPEnv(task, self.num_states, self.num_actions, self.horizon)

    def make_batched_env(self, n: int) -> BatchedTabularMDP:
        return BatchedTabularMDP(n, self.num_states, self.num_actions, self.horizon)

    def oracle_features(self, task: dict) -> np.ndarray:
        return np.concatenate([np.ravel(task["transitions"]), np.ravel(task["reward_means"])]).astype(np.float32)
