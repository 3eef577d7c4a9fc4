"""Meta-World (Yu et al. 2019; the Farama ``metaworld`` 3.1.1 package) ML1, ML10 and ML45 as task families.

The tasks are the benchmark's own, never mixed: each family builds the benchmark (``metaworld.ML1(env_name)``,
``ML10()``, ``ML45()``, seeded with ``benchmark_seed``) and trains on its ``train_tasks`` only; meta-test draws
from its ``test_tasks`` through ``sample_test_tasks`` (ML1: held-out goals of the same class, ML10 / ML45: the
held-out classes). A task is a JSON dict ``{"env_name", "split", "index", "rand_vec"}``: the class, where it sits
in the benchmark's list of that class's 50 tasks, and the benchmark's own task data (the vector that fixes object
and goal positions), so a rollout worker re-tasks an env without building the benchmark (which takes seconds per
class) and tasks cross Ray and checkpoints as they are.

One env of the family hosts one Meta-World env at a time and swaps it when ``set_task`` names another class:
idle envs wait in a cache shared by all envs of the family object (one per rollout worker), most recently used
first, so a worker whose meta-batches mix classes reuses envs instead of rebuilding them (~0.2 s and ~20 MB each).

Observations are the benchmark's 39-d partially observable vector (goal zeroed), actions 4-d in [-1, 1];
success is the env's ``info["success"]``, counted when it is set at any step of an episode (the benchmark's
evaluation ends an episode at the first success). Versions are Meta-World's reward functions: ``reward-v2``
(default; the reward of the v2/v3 envs, in [0, 10] per step) and ``reward-v1`` (the original 2019 paper's).
"""

from __future__ import annotations

import functools
import pickle
from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.families import FamilyError, resolve_version

EXTRA = "pip install -e '.[metaworld]'"
HORIZON = 500  # the benchmark's max_path_length
OBS_DIM, ACT_DIM = 39, 4
# The benchmark's meta-test protocol (metaworld.evaluation.metalearning_evaluation): one adaptation step on
# 10 episodes per task, then 3 evaluation episodes of the adapted policy; success = the flag at any step.
ADAPTATION_STEPS, ADAPTATION_EPISODES, EVALUATION_EPISODES = 1, 10, 3

_REWARD_VERSIONS: dict[str, dict[str, Any]] = {
    "reward-v2": {"horizon": HORIZON, "reward_function_version": "v2"},
    "reward-v1": {"horizon": HORIZON, "reward_function_version": "v1"},
}


def import_metaworld(family: str) -> Any:
    """The ``metaworld`` module, or a one-line FamilyError naming the extra that installs it."""
    try:
        import metaworld
    except ImportError as exc:
        raise FamilyError(f"family {family!r} needs Meta-World, an optional extra: {EXTRA} ({exc})") from None
    return metaworld


@functools.lru_cache(maxsize=4)
def benchmark_tasks(benchmark: str, env_name: str | None, seed: int) -> dict[str, dict[str, list[dict]]]:
    """{"train" | "test": {class name: [task dict, ...]}} of one benchmark, built once per process (seconds)."""
    metaworld = import_metaworld(f"metaworld-{benchmark.lower()}")
    bench = metaworld.ML1(env_name, seed=seed) if benchmark == "ML1" else getattr(metaworld, benchmark)(seed=seed)
    out: dict[str, dict[str, list[dict]]] = {}
    for split, classes, tasks in (("train", bench.train_classes, bench.train_tasks),
                                  ("test", bench.test_classes, bench.test_tasks)):
        by_class: dict[str, list[dict]] = {name: [] for name in classes}
        for task in tasks:
            data = pickle.loads(task.data)
            same = by_class[task.env_name]
            same.append({"env_name": task.env_name, "split": split, "index": len(same),
                         "rand_vec": [float(v) for v in np.asarray(data["rand_vec"]).ravel()]})
        out[split] = by_class
    return out


def balanced_tasks(rng: np.random.Generator, by_class: dict[str, list[dict]], n: int) -> list[dict]:
    """``n`` tasks spread evenly over the classes, as the benchmark's own samplers do (meta-batch ÷ classes each;
    the remainder on classes drawn without repeats), goals drawn without repeats within a class (all of a class's
    goals before any repeats). Tasks come grouped by class, so a rollout worker's contiguous slice needs few
    classes."""
    names = list(by_class)
    counts = np.full(len(names), n // len(names))
    counts[rng.choice(len(names), size=n % len(names), replace=False)] += 1
    tasks: list[dict] = []
    for name, k in zip(names, counts):
        pool = by_class[name]
        rounds = -(-int(k) // len(pool))
        order = np.concatenate([rng.permutation(len(pool)) for _ in range(rounds)]) if k else []
        tasks += [dict(pool[i]) for i in order[:k]]
    return tasks


class EnvCache:
    """Idle Meta-World envs of one family object, most recently used last, at most ``capacity`` of them."""

    def __init__(self, reward_function_version: str, capacity: int):
        self.reward_function_version = reward_function_version
        self.capacity = capacity
        self.built = 0  # envs constructed so far (tests and perf read it)
        self._idle: OrderedDict[int, tuple[str, Any]] = OrderedDict()

    def acquire(self, env_name: str) -> Any:
        for key in reversed(self._idle):
            if self._idle[key][0] == env_name:
                return self._idle.pop(key)[1]
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.built += 1
        return ALL_V3_ENVIRONMENTS[env_name](reward_function_version=self.reward_function_version)

    def release(self, env_name: str, env: Any) -> None:
        self._idle[id(env)] = (env_name, env)
        while len(self._idle) > self.capacity:
            _, (_, old) = self._idle.popitem(last=False)
            old.close()


class MetaWorldEnv(gym.Env):
    """One episode of a Meta-World task; ``set_task`` re-tasks it in place, switching the class when needed."""

    metadata = {"render_modes": []}

    def __init__(self, cache: EnvCache, horizon: int = HORIZON, task: dict | None = None, default_task=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
        self.horizon = horizon
        self._cache = cache
        self._default_task = default_task  # callable: a task for an env reset before any set_task
        self._sub: Any = None
        self._task: dict | None = None
        self._t = 0
        if task is not None:
            self.set_task(task)

    def set_task(self, task: dict) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.types import Task

        name = task.get("env_name") if isinstance(task, dict) else None
        if name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"a Meta-World task needs env_name, one of {', '.join(ALL_V3_ENVIRONMENTS)}; "
                             f"got {task!r:.200}")
        if self._task is None or self._task["env_name"] != name:
            if self._sub is not None:
                self._cache.release(self._task["env_name"], self._sub)
            self._sub = self._cache.acquire(name)
            self._sub.max_path_length = max(self.horizon, HORIZON)  # the env refuses steps past it
        data = {"rand_vec": np.asarray(task["rand_vec"], dtype=np.float64), "env_cls": ALL_V3_ENVIRONMENTS[name],
                "partially_observable": True}
        self._sub.set_task(Task(env_name=name, data=pickle.dumps(data)))
        self._task = dict(task)

    def get_task(self) -> dict | None:
        return None if self._task is None else dict(self._task)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)  # the benchmark's reset is deterministic once its task data is set
        if self._task is None:
            if self._default_task is None:
                raise RuntimeError("MetaWorldEnv: call set_task(task) before reset")
            self.set_task(self._default_task())
        self._t = 0
        obs, _ = self._sub.reset()
        return obs.astype(np.float32), {"task": self.get_task()}

    def step(self, action):
        obs, reward, _, _, info = self._sub.step(np.asarray(action, dtype=np.float32))
        self._t += 1
        info["success"] = bool(info["success"])
        return obs.astype(np.float32), float(reward), False, self._t >= self.horizon, info

    def close(self) -> None:
        if self._sub is not None:
            self._cache.release(self._task["env_name"], self._sub)
            self._sub, self._task = None, None


class _MetaWorldFamily:
    """Shared by ML1 / ML10 / ML45: the benchmark's train tasks for training, its test tasks for meta-test."""

    benchmark = ""
    default_version = "reward-v2"
    versions: dict[str, dict[str, Any]] = {}
    reports_success = True
    # The benchmark's meta-test protocol: metarl.evaluation scores this many episodes of the adapted policy.
    evaluation_episodes = EVALUATION_EPISODES
    # Envs a rollout worker steps at once (the sampler runs larger meta-batches in chunks): ~20 MB per env.
    max_envs = 40

    def __init__(self, version: str | None = None, horizon: int | None = None, benchmark_seed: int = 0,
                 env_cache_size: int = 40, env_name: str | None = None):
        """``benchmark_seed`` seeds the benchmark's goal lists (Meta-World draws them at random otherwise);
        ``env_cache_size`` bounds the idle envs a worker keeps for reuse when classes switch."""
        self.name = f"metaworld-{self.benchmark.lower()}"
        self.version, spec = resolve_version(self.name, self.versions, self.default_version, version)
        metaworld = import_metaworld(self.name)
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        if self.horizon < 1:
            raise FamilyError(f"{self.name} needs horizon >= 1 (the benchmark's is {HORIZON}), got {horizon}")
        if env_cache_size < 0:
            raise FamilyError(f"{self.name} needs env_cache_size >= 0, got {env_cache_size}")
        self.benchmark_seed = int(benchmark_seed)
        self.env_name = env_name
        self.train_classes, self.test_classes = self._classes(metaworld.env_dict)
        self._cache = EnvCache(spec["reward_function_version"], env_cache_size)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)

    def _classes(self, env_dict: Any) -> tuple[list[str], list[str]]:
        split = getattr(env_dict, f"{self.benchmark}_V3")
        return list(split["train"]), list(split["test"])

    def _tasks(self, split: str) -> dict[str, list[dict]]:
        return benchmark_tasks(self.benchmark, self.env_name, self.benchmark_seed)[split]

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Training tasks only."""
        return balanced_tasks(rng, self._tasks("train"), n)

    def sample_test_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Meta-test tasks only: the benchmark's held-out goals (ML1) or classes (ML10, ML45)."""
        return balanced_tasks(rng, self._tasks("test"), n)

    def make_env(self, task: dict | None = None) -> gym.Env:
        return MetaWorldEnv(self._cache, self.horizon, task, default_task=self._first_task)

    def _first_task(self) -> dict:
        first = next(iter(self._tasks("train").values()))
        return dict(first[0])


def _versions(distribution: str) -> dict[str, dict[str, Any]]:
    return {v: {**spec, "distribution": f"{distribution}; reward {spec['reward_function_version']}"}
            for v, spec in _REWARD_VERSIONS.items()}


class MetaWorldML1Family(_MetaWorldFamily):
    """Meta-World ML1: one manipulation class (``env_name``), train on 50 goals, meta-test on 50 held-out goals."""

    benchmark = "ML1"
    versions = _versions("ML1: 50 train goals, 50 held-out test goals of family.kwargs.env_name (default reach-v3)")

    def __init__(self, version: str | None = None, env_name: str = "reach-v3", horizon: int | None = None,
                 benchmark_seed: int = 0, env_cache_size: int = 40):
        metaworld = import_metaworld("metaworld-ml1")
        allowed = list(metaworld.env_dict.ALL_V3_ENVIRONMENTS)
        if env_name not in allowed:
            raise FamilyError(f"metaworld-ml1 has no env_name {env_name!r}; allowed: {', '.join(allowed)}")
        super().__init__(version, horizon, benchmark_seed, env_cache_size, env_name=env_name)

    def _classes(self, env_dict: Any) -> tuple[list[str], list[str]]:
        return [self.env_name], [self.env_name]


class MetaWorldML10Family(_MetaWorldFamily):
    """Meta-World ML10: train on 10 manipulation classes, meta-test on 5 held-out classes (50 goals each)."""

    benchmark = "ML10"
    versions = _versions("ML10: 10 train classes x 50 goals, 5 held-out test classes x 50 goals")

    def __init__(self, version: str | None = None, horizon: int | None = None, benchmark_seed: int = 0,
                 env_cache_size: int = 40):
        super().__init__(version, horizon, benchmark_seed, env_cache_size)


class MetaWorldML45Family(_MetaWorldFamily):
    """Meta-World ML45: train on 45 manipulation classes, meta-test on 5 held-out classes (50 goals each)."""

    benchmark = "ML45"
    versions = _versions("ML45: 45 train classes x 50 goals, 5 held-out test classes x 50 goals")

    def __init__(self, version: str | None = None, horizon: int | None = None, benchmark_seed: int = 0,
                 env_cache_size: int = 40):
        super().__init__(version, horizon, benchmark_seed, env_cache_size)
