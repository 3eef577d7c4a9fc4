"""Task families: the protocol a family implements, and the registry that finds one by name.

A *task family* is a distribution over tasks plus an environment whose task can be switched in place.
Built-in families live in the top-level ``envs/`` folder (importable as ``metarl.envs``); a user's family is
found by import path (``"my_pkg.my_module:MyFamily"``) or through the ``metarl.families`` entry-point group,
so adding one needs no change to metarl.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

ENTRY_POINT_GROUP = "metarl.families"

# Registered name -> "module:Class". Modules are imported lazily so that e.g. MuJoCo is only loaded when needed.
_BUILTINS: dict[str, str] = {
    "2d-navigation": "metarl.envs.navigation:Navigation2DFamily",
    "halfcheetah-vel": "metarl.envs.locomotion:HalfCheetahVelFamily",
    "halfcheetah-dir": "metarl.envs.locomotion:HalfCheetahDirFamily",
    "ant-vel": "metarl.envs.locomotion:AntVelFamily",
    "ant-dir": "metarl.envs.locomotion:AntDirFamily",
    "ant-goal": "metarl.envs.locomotion:AntGoalFamily",
    "hopper-rand-params": "metarl.envs.rand_params:HopperRandParamsFamily",
    "walker2d-rand-params": "metarl.envs.rand_params:Walker2dRandParamsFamily",
    "bandit": "metarl.envs.discrete:BanditFamily",
    "tabular-mdp": "metarl.envs.discrete:TabularMDPFamily",
    # Need the optional extra (pip install -e '.[metaworld]'); without it, building one is a one-line FamilyError.
    "metaworld-ml1": "metarl.envs.meta_world:MetaWorldML1Family",
    "metaworld-ml10": "metarl.envs.meta_world:MetaWorldML10Family",
    "metaworld-ml45": "metarl.envs.meta_world:MetaWorldML45Family",
}


class FamilyError(ValueError):
    """A family name, version or kwarg that cannot be resolved; the message says what is allowed."""


@runtime_checkable
class TaskFamily(Protocol):
    """What a task family provides. Tasks are JSON-serialisable dicts.

    Optional: ``sample_test_tasks(rng, n)`` for a benchmark with a fixed train/test split (meta-test then draws only
    from it, training only from ``sample_tasks``), ``reports_success`` (log ``success_step_k`` from the envs'
    ``info["success"]``), ``evaluation_episodes`` (episodes of the adapted policy meta-test scores), ``max_envs``
    (envs a rollout worker steps at once), ``make_batched_env(n)``, ``oracle_features(task)``."""

    name: str
    version: str
    horizon: int
    observation_space: gym.Space
    action_space: gym.Space

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]: ...

    def make_env(self, task: dict | None = None) -> gym.Env: ...


@runtime_checkable
class BatchedEnv(Protocol):
    """A natively vectorised environment: all episodes of all tasks advance in one array operation.

    ``set_tasks`` gives one task per sub-environment; episodes have a fixed horizon and may terminate early
    (``terminated``), after which their steps are masked out by the sampler.
    """

    num_envs: int

    def set_tasks(self, tasks: Sequence[dict]) -> None: ...

    def reset(self, seeds: Sequence[int]) -> np.ndarray: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]: ...


def resolve_version(family: str, versions: dict[str, dict], default: str, version: str | None) -> tuple[str, dict]:
    """(version, its parameters) for a family's ``versions`` table; None picks ``default``. Built-in families
    call this in their constructors so an unknown version fails the same way everywhere."""
    version = default if version is None else version
    if version not in versions:
        raise FamilyError(f"family {family!r} has no version {version!r}; allowed: {', '.join(versions)}")
    return version, versions[version]


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_families() -> list[str]:
    """Every registered family name: built-ins first, then those from installed entry points."""
    names = list(_BUILTINS)
    names += sorted(n for n in _entry_points() if n not in _BUILTINS)
    return names


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise FamilyError(f"family import path {target!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FamilyError(f"cannot import module {module_name!r} for family {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise FamilyError(f"module {module_name!r} has no attribute {attr!r} (family {target!r})") from None


def resolve_family_class(name: str) -> Any:
    """The class (or factory) behind a registered name or an import path."""
    if ":" in name:
        return _import_target(name)
    if name in _BUILTINS:
        return _import_target(_BUILTINS[name])
    eps = _entry_points()
    if name in eps:
        try:
            return eps[name].load()
        except Exception as exc:
            raise FamilyError(f"cannot load family entry point {name!r} ({eps[name].value}): {exc}") from exc
    raise FamilyError(f"unknown family {name!r}; registered: {', '.join(list_families())}; "
                      "or give an import path 'package.module:ClassName'")


def make_family(name: str, version: str | None = None, **kwargs: Any) -> TaskFamily:
    """Build a family by registered name or import path; ``version=None`` picks the family's default."""
    cls = resolve_family_class(name)
    versions = getattr(cls, "versions", None)
    if version is not None and versions is not None and version not in versions:
        raise FamilyError(f"family {name!r} has no version {version!r}; allowed: {', '.join(versions)}")
    try:
        family = cls(version=version, **kwargs) if version is not None else cls(**kwargs)
    except FamilyError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise FamilyError(f"family {name!r} rejected its arguments (version={version!r}, kwargs={kwargs}): "
                          f"{exc}") from exc
    missing = [a for a in ("name", "version", "horizon", "observation_space", "action_space",
                           "sample_tasks", "make_env") if not hasattr(family, a)]
    if missing:
        raise FamilyError(f"family {name!r} does not implement the TaskFamily protocol; missing: {', '.join(missing)}")
    return family
