"""check_family: every built-in family passes; deliberately broken families fail the right check, explained."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from metarl.envs.navigation import Navigation2DEnv, Navigation2DFamily

from metarl.check import check_family, describe_families
from metarl.families import list_families, resolve_family_class

# Meta-World's ML10/ML45 build their benchmark's task lists (20-80 s): those checks run with the slow tests.
BUILTIN_VERSIONS = [pytest.param(name, version, marks=[pytest.mark.slow] if name.startswith("metaworld") else [])
                    for name in list_families()
                    for version in getattr(resolve_family_class(name), "versions", {"": None})]


def _failures(results) -> dict[str, str]:
    return {r.name: r.message for r in results if not r.passed}


@pytest.mark.parametrize("name,version", BUILTIN_VERSIONS)
def test_builtin_families_pass(name, version):
    results = check_family(name, version)
    assert _failures(results) == {}
    assert {r.name for r in results} >= {"construct", "spaces", "sample_tasks", "tasks_json", "make_env", "episode",
                                         "seeding", "set_task", "task_roundtrip", "batched_env"}


# ------------------------------------------------------------------------------------------- broken families


class _IgnoresTaskEnv(Navigation2DEnv):
    def set_task(self, task: dict) -> None:
        pass  # the bug: the goal never changes


class IgnoresTaskFamily(Navigation2DFamily):
    """set_task does nothing."""

    make_batched_env = None

    def make_env(self, task=None):
        return _IgnoresTaskEnv(task, horizon=self.horizon)


class _Float64Env(Navigation2DEnv):
    def __init__(self, task=None, horizon=100):
        super().__init__(task, horizon)
        self.observation_space = type(self.observation_space)(-np.inf, np.inf, shape=(2,), dtype=np.float64)


class Float64ObsFamily(Navigation2DFamily):
    """Observations declared float64."""

    def __init__(self, version: str = "finn2017"):
        super().__init__(version)
        self.observation_space = _Float64Env().observation_space

    def make_env(self, task=None):
        return _Float64Env(task, horizon=self.horizon)


class DictObsFamily(Navigation2DFamily):
    """Observations declared as a Dict space."""

    def __init__(self, version: str = "finn2017"):
        super().__init__(version)
        self.observation_space = gym.spaces.Dict({"position": self.observation_space})


class ImageObsFamily(Navigation2DFamily):
    """Observations declared as an image."""

    def __init__(self, version: str = "finn2017"):
        super().__init__(version)
        self.observation_space = gym.spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8)


class NumpyTaskFamily(Navigation2DFamily):
    """Tasks hold numpy arrays."""

    def sample_tasks(self, rng, n):
        return [{"goal": g} for g in rng.uniform(-0.5, 0.5, size=(n, 2))]


class _UnseededEnv(Navigation2DEnv):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self._state = np.random.uniform(-1, 1, size=2)  # global numpy RNG: not reproducible from the seed
        return self._state.astype(np.float32), info


class UnseededFamily(Navigation2DFamily):
    """Resets from the global numpy RNG."""

    make_batched_env = None

    def make_env(self, task=None):
        return _UnseededEnv(task, horizon=self.horizon)


class ShortEpisodeFamily(Navigation2DFamily):
    """Envs truncate at half the horizon the family declares."""

    make_batched_env = None

    def make_env(self, task=None):
        return Navigation2DEnv(task, horizon=self.horizon // 2)


class _WrongBatched:
    def __init__(self, n):
        self.num_envs = n

    def set_tasks(self, tasks):
        pass

    def reset(self, seeds):
        return np.zeros((self.num_envs, 2), dtype=np.float32)

    def step(self, actions):
        return (np.zeros((self.num_envs, 2), dtype=np.float32), np.zeros(self.num_envs),
                np.zeros(self.num_envs, dtype=bool), {})


class WrongBatchedFamily(Navigation2DFamily):
    """A batched env that ignores the tasks and actions."""

    def make_batched_env(self, n):
        return _WrongBatched(n)


@pytest.mark.parametrize("cls,check,words", [
    (IgnoresTaskFamily, "set_task", "did not change"),
    (DictObsFamily, "spaces", "FlattenObservation"),
    (ImageObsFamily, "spaces", "real-valued Box (float16/32/64), got dtype uint8"),
    (NumpyTaskFamily, "tasks_json", "JSON"),
    (UnseededFamily, "seeding", "re-seed"),
    (ShortEpisodeFamily, "episode", "truncated after 50 steps"),
    (WrongBatchedFamily, "batched_env", "disagrees"),
])
def test_broken_families_fail_with_an_explanation(cls, check, words):
    failures = _failures(check_family(f"{__name__}:{cls.__name__}"))
    assert check in failures, failures
    assert words in failures[check]


def test_float64_observation_space_is_accepted():
    """Every Gymnasium MuJoCo env declares float64 observations; metarl casts them at its boundary."""
    assert _failures(check_family(f"{__name__}:Float64ObsFamily")) == {}


def test_unknown_family_fails_construct():
    (result,) = check_family("no-such-family")
    assert (result.name, result.passed) == ("construct", False)
    assert "unknown family" in result.message


def test_describe_families_lists_versions_and_horizons():
    described = {d["name"]: d for d in describe_families()}
    assert set(described) >= {"halfcheetah-vel", "ant-goal", "hopper-rand-params", "bandit", "tabular-mdp"}
    cheetah = described["halfcheetah-vel"]
    assert cheetah["default_version"] == "finn2017"
    assert cheetah["horizons"] == {"finn2017": 200, "gym-v5": 200, "rothfuss2019": 100}
    assert cheetah["distributions"]["rothfuss2019"].startswith("v* ~ U[0, 3]")
    assert described["2d-navigation"]["horizons"] == {"finn2017": 100, "raw-velocity": 100}
    assert all("error" not in d for d in described.values())
