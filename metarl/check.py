"""Checks that a task family honours the TaskFamily contract, explaining every failure (like SB3's ``check_env``).

``check_family`` builds the family, then runs short rollouts with fixed seeds and fixed action sequences to test
what the sampler and the meta-learner rely on: spaces and dtypes, deterministic seeding, ``set_task`` switching the
task in place (and being undone by switching back), JSON round trips of tasks, the horizon, and agreement of an
optional ``make_batched_env`` with ``make_env``. ``describe_families`` lists the registered families, their versions
and horizons for ``metarl envs``.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.families import FamilyError, list_families, make_family, resolve_family_class

SEED = 12345
COMPARE_STEPS = 100  # steps per rollout compared between two runs (the full horizon when shorter)
COMPARE_MIN_STEPS = 50  # short-horizon families compare several episodes so that random rewards can differ


@dataclass
class CheckResult:
    """One named check; ``message`` says what is wrong (or a note when it passed)."""

    name: str
    passed: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Rollout:
    obs: np.ndarray  # [steps + 1, ...] including the reset observation
    rewards: np.ndarray  # [steps]
    terminated_at: int | None  # step index (1-based) of termination, if any
    truncated_at: int | None


def _same(a: _Rollout, b: _Rollout) -> bool:
    return (a.obs.shape == b.obs.shape and a.rewards.shape == b.rewards.shape
            and np.allclose(a.obs, b.obs, rtol=1e-6, atol=1e-8, equal_nan=True)
            and np.allclose(a.rewards, b.rewards, rtol=1e-6, atol=1e-8, equal_nan=True))


def _concat(rollouts: Sequence[_Rollout]) -> _Rollout:
    return _Rollout(np.concatenate([r.obs for r in rollouts]), np.concatenate([r.rewards for r in rollouts]),
                    rollouts[0].terminated_at, rollouts[0].truncated_at)


def _actions(space: gym.Space, n: int, seed: int) -> list[Any]:
    """A fixed action sequence drawn from a seeded copy of the space."""
    space = copy.deepcopy(space)
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def _rollout(env: gym.Env, seed: int, actions: Sequence[Any]) -> _Rollout:
    obs, _ = env.reset(seed=seed)
    observations, rewards = [np.asarray(obs, dtype=np.float64)], []
    terminated_at = truncated_at = None
    for t, action in enumerate(actions, start=1):
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(np.asarray(obs, dtype=np.float64))
        rewards.append(float(reward))
        if terminated or truncated:
            terminated_at = t if terminated else None
            truncated_at = t if truncated else None
            break
    return _Rollout(np.stack(observations), np.asarray(rewards), terminated_at, truncated_at)


def _set_task(env: gym.Env, task: dict) -> None:
    env.get_wrapper_attr("set_task")(task)


class _Note(str):
    """A remark attached to a check that passed."""


def _real_vector(what: str, space: gym.spaces.Box, hint: str) -> list[str]:
    """A 1-D Box of any floating dtype (float16/32/64) works: metarl casts to float32 at its boundary."""
    if not np.issubdtype(space.dtype, np.floating):
        return [f"{what} must be a 1-D real-valued Box (float16/32/64), got dtype {space.dtype}"]
    if len(space.shape) != 1:
        return [f"{what} must be a 1-D real-valued Box, got shape {space.shape} ({hint})"]
    return []


def _json_key(task: dict) -> str:
    """A comparable text form of a task, even one that is not JSON-serialisable (that has its own check)."""
    return json.dumps(task, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o))


class _FamilyChecker:
    """Runs the checks in order; a failed check whose result later checks need stops the run."""

    def __init__(self, family: Any, results: list[CheckResult]):
        self.family = family
        self.results = results
        self.tasks: list[dict] = []
        self.env: gym.Env | None = None

    def prepare(self) -> None:
        """Fixed actions and episode counts for the comparisons (needs a valid horizon and action space)."""
        self.horizon = int(self.family.horizon)
        steps = min(self.horizon, COMPARE_STEPS)
        self.episodes = max(1, math.ceil(COMPARE_MIN_STEPS / steps))
        self.actions = _actions(self.family.action_space, steps, SEED)

    def record(self, name: str, check: Callable[[], str | None]) -> bool:
        """Run ``check``: it returns None (pass), a ``_Note`` (pass, with a remark) or a failure message."""
        try:
            message = check()
        except Exception as exc:  # a crash inside the family is a failed check, not a crash of the checker
            message = f"raised {type(exc).__name__}: {exc}"
        passed = message is None or isinstance(message, _Note)
        self.results.append(CheckResult(name, passed, message or ""))
        return passed

    def episodes_under(self, env: gym.Env, task: dict | None) -> _Rollout:
        """Several seeded episodes (the same seeds and actions every time) under ``task``."""
        if task is not None:
            _set_task(env, task)
        return _concat([_rollout(env, SEED + i, self.actions) for i in range(self.episodes)])

    # ------------------------------------------------------------------------------------------------- checks

    def protocol(self) -> str | None:
        f = self.family
        problems = [f"{attr} is missing" for attr in ("name", "version", "horizon", "observation_space",
                                                      "action_space", "sample_tasks", "make_env")
                    if not hasattr(f, attr)]
        if not problems:
            if not isinstance(f.name, str) or not isinstance(f.version, str):
                problems.append(f"name and version must be str, got {type(f.name).__name__} and "
                                f"{type(f.version).__name__}")
            if isinstance(f.horizon, bool) or not isinstance(f.horizon, (int, np.integer)) or f.horizon < 1:
                problems.append(f"horizon must be a positive int, got {f.horizon!r}")
        return "; ".join(problems) or None

    def spaces(self) -> str | None:
        obs, act = self.family.observation_space, self.family.action_space
        problems = []
        if not isinstance(obs, gym.spaces.Box):
            problems.append(f"observation_space must be a 1-D real-valued Box, got {type(obs).__name__} {obs!r:.120} "
                            "(flatten Dict/Tuple observations with gymnasium.wrappers.FlattenObservation)")
        else:
            problems += _real_vector("observation_space", obs, "image observations need a feature encoder first")
        if isinstance(act, gym.spaces.Box):
            problems += _real_vector("a continuous action_space", act, "flatten the action")
        elif isinstance(act, gym.spaces.Discrete):
            if act.start != 0:
                problems.append(f"a Discrete action_space must start at 0, got start={act.start}")
        else:
            problems.append(f"action_space must be a Box or Discrete, got {type(act).__name__}")
        return "; ".join(problems) or None

    def sample_tasks(self) -> str | None:
        first = self.family.sample_tasks(np.random.default_rng(SEED), 4)
        if not isinstance(first, list) or len(first) != 4 or not all(isinstance(t, dict) for t in first):
            return f"sample_tasks(rng, 4) must return a list of 4 dicts, got {type(first).__name__}: {first!r:.200}"
        self.tasks = first
        again = self.family.sample_tasks(np.random.default_rng(SEED), 4)
        if [_json_key(t) for t in first] != [_json_key(t) for t in again]:
            return "sample_tasks is not deterministic: two generators with the same seed gave different tasks " \
                   "(draw only from the rng argument)"
        return None

    def tasks_json(self) -> str | None:
        for task in self.tasks:
            try:
                text = json.dumps(task, allow_nan=False)
            except (TypeError, ValueError) as exc:
                return f"task {task!r:.200} is not JSON-serialisable ({exc}); use plain float/int/str/list values " \
                       "(numpy arrays -> .tolist())"
            if json.loads(text) != task:
                return f"task {task!r:.200} changes on a JSON round trip (tuples or non-str keys?)"
        return None

    def make_env(self) -> str | None:
        env = self.family.make_env()
        if not isinstance(env, gym.Env):
            return f"make_env() must return a gymnasium.Env, got {type(env).__name__}"
        problems = []
        if env.observation_space != self.family.observation_space:
            problems.append(f"env.observation_space {env.observation_space} != family's "
                            f"{self.family.observation_space}")
        if env.action_space != self.family.action_space:
            problems.append(f"env.action_space {env.action_space} != family's {self.family.action_space}")
        try:
            env.get_wrapper_attr("set_task")
        except AttributeError:
            problems.append("the env has no set_task (reachable through wrappers via get_wrapper_attr)")
        self.env = env
        return "; ".join(problems) or None

    def episode(self) -> str | None:
        """One full episode with random actions: observations in the space, finite rewards, horizon respected."""
        env, space = self.env, self.family.observation_space
        _set_task(env, self.tasks[0])
        obs, info = env.reset(seed=SEED)
        if not isinstance(info, dict):
            return f"reset must return (obs, info dict), got info of type {type(info).__name__}"
        if not space.contains(obs):
            return f"reset observation {obs!r:.200} (dtype {getattr(obs, 'dtype', type(obs))}) is not in " \
                   f"{space} (the right shape and dtype?)"
        actions = _actions(self.family.action_space, self.horizon, SEED + 1)
        for t, action in enumerate(actions, start=1):
            obs, reward, terminated, truncated, info = env.step(action)
            if not space.contains(obs):
                return f"step {t}: observation {obs!r:.200} (dtype {getattr(obs, 'dtype', type(obs))}) is not in " \
                       f"{space}"
            if not isinstance(reward, (int, float, np.integer, np.floating)) or not np.isfinite(reward):
                return f"step {t}: reward must be a finite number, got {reward!r}"
            if not isinstance(terminated, (bool, np.bool_)) or not isinstance(truncated, (bool, np.bool_)):
                return f"step {t}: terminated/truncated must be bools, got {terminated!r}, {truncated!r}"
            if terminated:
                return _Note(f"terminated after {t} of {self.horizon} steps (the sampler masks the rest)")
            if truncated and t < self.horizon:
                return f"truncated after {t} steps but the family's horizon is {self.horizon}"
            if truncated:
                return None
        return f"the episode reached the horizon ({self.horizon} steps) without truncated=True; report " \
               "truncated when the step count reaches the horizon"

    def seeding(self) -> str | None:
        task = self.tasks[0]
        first = self.episodes_under(self.env, task)
        again = self.episodes_under(self.env, task)
        if not _same(first, again):
            return "two rollouts with the same reset seed, task and actions differ on the same env: reset(seed=...) " \
                   "must re-seed all randomness (use self.np_random after super().reset(seed=seed))"
        fresh = self.episodes_under(self.family.make_env(), task)
        if not _same(first, fresh):
            return "a fresh env with the same reset seed, task and actions gives a different rollout"
        return None

    def set_task_changes(self) -> str | None:
        distinct = {_json_key(t): t for t in self.family.sample_tasks(np.random.default_rng(SEED + 2), 8)}
        if len(distinct) < 2:
            return _Note("sample_tasks gave one distinct task in 8 draws; nothing to compare")
        task_a, task_b = list(distinct.values())[:2]
        env = self.env
        run_a = self.episodes_under(env, task_a)
        run_b = self.episodes_under(env, task_b)
        if _same(run_a, run_b):
            return "set_task did not change the env: two different tasks gave identical observations and rewards " \
                   "for the same seed and actions"
        if not _same(run_a, self.episodes_under(env, task_a)):
            return "switching back with set_task does not restore the first task's behaviour (state left over " \
                   "from the previous task?)"
        if not _same(run_a, self.episodes_under(self.family.make_env(task_a), None)):
            return "make_env(task) behaves differently from make_env() followed by set_task(task)"
        return None

    def task_roundtrip(self) -> str | None:
        task = self.tasks[0]
        reference = self.episodes_under(self.env, task)
        if not _same(reference, self.episodes_under(self.env, json.loads(json.dumps(task)))):
            return "set_task(json.loads(json.dumps(task))) behaves differently from set_task(task)"
        try:
            get_task = self.env.get_wrapper_attr("get_task")
        except AttributeError:
            return _Note("the env has no get_task (optional)")
        _set_task(self.env, task)
        current = get_task()
        json.dumps(current, allow_nan=False)
        if not _same(reference, self.episodes_under(self.env, json.loads(json.dumps(current)))):
            return "set_task(get_task()) does not reproduce the task"
        return None

    def batched_env(self) -> str | None:
        make_batched = getattr(self.family, "make_batched_env", None)
        if make_batched is None:
            return _Note("no make_batched_env; the sampler steps make_env() envs")
        tasks = self.tasks[:2]
        seeds = [SEED, SEED + 7]
        batched = make_batched(2)
        if getattr(batched, "num_envs", None) != 2:
            return f"make_batched_env(2).num_envs must be 2, got {getattr(batched, 'num_envs', None)!r}"
        batched.set_tasks(tasks)
        obs = np.asarray(batched.reset(seeds))
        dim = self.family.observation_space.shape
        if obs.shape != (2, *dim) or obs.dtype != np.float32:
            return f"batched reset must return float32 obs of shape {(2, *dim)}, got {obs.dtype} {obs.shape}"
        steps = min(self.horizon, COMPARE_STEPS)
        per_env = [_actions(self.family.action_space, steps, SEED + 3 + i) for i in range(2)]
        plain = []
        for task, seed, actions in zip(tasks, seeds, per_env):
            env = self.family.make_env()
            _set_task(env, task)
            plain.append(_rollout(env, seed, actions))
        batched_obs, batched_rewards = [obs], []
        alive = np.ones(2, dtype=bool)
        for t in range(steps):
            stacked = np.stack([np.asarray(per_env[i][t]) for i in range(2)])
            obs, rewards, terminated, _ = batched.step(stacked)
            obs, rewards, terminated = np.asarray(obs), np.asarray(rewards), np.asarray(terminated)
            if obs.shape != (2, *dim) or rewards.shape != (2,) or terminated.shape != (2,):
                return f"batched step must return obs {(2, *dim)}, rewards (2,), terminated (2,); got " \
                       f"{obs.shape}, {rewards.shape}, {terminated.shape}"
            batched_obs.append(obs)
            batched_rewards.append(rewards)
            for i in range(2):
                if not alive[i]:
                    continue
                if plain[i].terminated_at == t + 1 and not terminated[i]:
                    return f"env {i}: the plain env terminated at step {t + 1} but the batched env did not"
                ended = plain[i].terminated_at or plain[i].truncated_at
                if terminated[i] and (ended is None or ended > t + 1):
                    return f"env {i}: the batched env terminated at step {t + 1} but the plain env did not"
                if ended is not None and ended <= t + 1:
                    alive[i] = False
        for i in range(2):
            n = len(plain[i].rewards)
            got = _Rollout(np.stack([o[i] for o in batched_obs[:n + 1]]).astype(np.float64),
                           np.asarray([r[i] for r in batched_rewards[:n]], dtype=np.float64), None, None)
            if not _same(plain[i], got):
                step = next((t for t in range(n) if not np.allclose(plain[i].rewards[t], got.rewards[t])
                             or not np.allclose(plain[i].obs[t + 1], got.obs[t + 1])), None)
                where = "the reset observation" if step is None else f"step {step + 1}"
                return f"env {i}: the batched env disagrees with make_env() at {where} for the same task, " \
                       "reset seed and actions"
        return None


def check_family(name_or_import_path: str, version: str | None = None,
                 kwargs: dict[str, Any] | None = None) -> list[CheckResult]:
    """Check a registered family (or ``"pkg.module:Class"``); returns one result per check, failures explained."""
    try:
        family = make_family(name_or_import_path, version, **(kwargs or {}))
    except Exception as exc:
        return [CheckResult("construct", False, f"{type(exc).__name__}: {exc}")]
    results = [CheckResult("construct", True, f"{family.name} version {family.version}")]
    checker = _FamilyChecker(family, results)
    if not checker.record("protocol", checker.protocol):
        return results
    if not checker.record("spaces", checker.spaces):
        return results
    checker.prepare()
    if not checker.record("sample_tasks", checker.sample_tasks):
        return results
    checker.record("tasks_json", checker.tasks_json)
    if not checker.record("make_env", checker.make_env):
        return results
    checker.record("episode", checker.episode)
    checker.record("seeding", checker.seeding)
    checker.record("set_task", checker.set_task_changes)
    checker.record("task_roundtrip", checker.task_roundtrip)
    checker.record("batched_env", checker.batched_env)
    return results


# --------------------------------------------------------------------------------------------------- listing


def _default_version(cls: Any) -> str | None:
    """``cls.default_version`` if declared, else the default of the ``version`` argument of ``cls``."""
    default = getattr(cls, "default_version", None)
    if default is not None:
        return default
    try:
        parameter = inspect.signature(cls).parameters.get("version")
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def describe_families() -> list[dict[str, Any]]:
    """Every registered family: name, description, versions, default version, horizon and task distribution per
    version. A family that cannot be imported (e.g. an optional dependency is missing) gets an ``error`` entry."""
    described = []
    for name in list_families():
        entry: dict[str, Any] = {"name": name, "description": "", "versions": [], "default_version": None,
                                 "horizons": {}, "distributions": {}}
        try:
            cls = resolve_family_class(name)
            doc = inspect.getdoc(cls) or ""
            entry["description"] = doc.splitlines()[0] if doc else ""
            versions: dict[str, dict] = dict(getattr(cls, "versions", None) or {})
            entry["default_version"] = _default_version(cls)
            if not versions:  # no version table: ask an instance
                family = make_family(name)
                entry["default_version"] = family.version
                versions = {family.version: {"horizon": family.horizon}}
            entry["versions"] = list(versions)
            for version, spec in versions.items():
                horizon = spec.get("horizon")
                if horizon is None:
                    horizon = make_family(name, version).horizon
                entry["horizons"][version] = int(horizon)
                if "distribution" in spec:
                    entry["distributions"][version] = spec["distribution"]
        except Exception as exc:  # listing must not fail because one family is broken or not installed
            entry["error"] = f"{type(exc).__name__}: {exc}"
        described.append(entry)
    return described


__all__ = ["CheckResult", "check_family", "describe_families", "FamilyError"]
