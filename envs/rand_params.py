"""Random-dynamics task families (Rothfuss et al. 2019, after Clavera's ``rand_param_envs``): Hopper and Walker2d.

A task is a set of element-wise multipliers on the compiled MuJoCo model: ``1.5 ** U[-3, 3]`` on every entry of
``body_mass``, ``body_inertia`` and ``geom_friction``, ``1.3 ** U[-3, 3]`` on every entry of ``dof_damping``.
Tasks store the multipliers (dicts of nested lists, JSON-ready), not absolute values, so they do not depend on the
model file. ``set_task`` always writes ``original * multiplier`` from copies saved at construction, so switching
tasks never accumulates rounding and the all-ones task restores the model exactly. After writing, it calls
``mujoco.mj_setConst`` (on a scratch ``MjData``) so the derived constants (subtree masses, the constraint
solver's inverse weights) match the new masses; on an unchanged model this reproduces the compiled values
bit for bit. The reward, observation and termination are Gymnasium v5's Hopper / Walker2d (forward velocity
+ 1 healthy reward - 1e-3 |a|^2; terminate when unhealthy), which match the ``rand_param_envs`` ones.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.spaces import Box

from metarl.families import resolve_version

# Model array -> base of the multiplier (multiplier = base ** U[-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT]).
RAND_PARAMS: dict[str, float] = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}
LOG_SCALE_LIMIT = 3.0


class _RandParamsMixin:
    """set_task/get_task over the model arrays in RAND_PARAMS, float32 observations and a step horizon."""

    model: mujoco.MjModel

    def _init_rand_params(self, task: dict | None, horizon: int) -> None:
        self.observation_space = Box(-np.inf, np.inf, shape=self.observation_space.shape, dtype=np.float32)
        self.horizon = int(horizon)
        self._t = 0
        self._original = {key: getattr(self.model, key).copy() for key in RAND_PARAMS}
        self._scratch = mujoco.MjData(self.model)
        self._multipliers: dict[str, np.ndarray] = {}
        self.set_task(task if task is not None else {})

    def set_task(self, task: dict) -> None:
        """Apply ``original * multiplier`` for every array; a missing key means multiplier 1 (the original)."""
        unknown = set(task) - set(RAND_PARAMS)
        if unknown:
            raise ValueError(f"unknown rand-params keys {sorted(unknown)}; allowed: {sorted(RAND_PARAMS)}")
        multipliers = {}
        for key, original in self._original.items():
            mult = np.asarray(task.get(key, 1.0), dtype=np.float64)
            if mult.shape not in ((), original.shape):
                raise ValueError(f"task[{key!r}] has shape {mult.shape}, the model needs {original.shape}")
            multipliers[key] = np.broadcast_to(mult, original.shape).copy()
            getattr(self.model, key)[:] = original * multipliers[key]
        self._multipliers = multipliers
        mujoco.mj_setConst(self.model, self._scratch)

    def get_task(self) -> dict:
        return {key: mult.tolist() for key, mult in self._multipliers.items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._t = 0
        obs, info = super().reset(seed=seed, options=options)
        return obs.astype(np.float32), info

    def step(self, action):
        obs, reward, terminated, _, info = super().step(action)
        self._t += 1
        return obs.astype(np.float32), reward, terminated, self._t >= self.horizon, info


class HopperRandParamsEnv(_RandParamsMixin, HopperEnv):
    """Hopper-v5 whose masses, inertias, damping and friction are scaled by the task's multipliers."""

    def __init__(self, task: dict | None = None, horizon: int = 200, **kwargs: Any):
        HopperEnv.__init__(self, **kwargs)
        utils.EzPickle.__init__(self, task, horizon, **kwargs)
        self._init_rand_params(task, horizon)


class Walker2dRandParamsEnv(_RandParamsMixin, Walker2dEnv):
    """Walker2d-v5 whose masses, inertias, damping and friction are scaled by the task's multipliers."""

    def __init__(self, task: dict | None = None, horizon: int = 200, **kwargs: Any):
        Walker2dEnv.__init__(self, **kwargs)
        utils.EzPickle.__init__(self, task, horizon, **kwargs)
        self._init_rand_params(task, horizon)


class _RandParamsFamily:
    """Tasks are independent multipliers per array entry; one probe env supplies the spaces and array shapes."""

    name: str
    env_cls: type
    default_version = "rothfuss2019"
    versions: dict[str, dict[str, Any]] = {
        "rothfuss2019": {"horizon": 200, "distribution": "1.5^U[-3,3] on mass, inertia, friction; "
                                                         "1.3^U[-3,3] on damping (per entry)"},
    }

    def __init__(self, version: str | None = None, horizon: int | None = None, **env_kwargs: Any):
        self.version, spec = resolve_version(self.name, self.versions, self.default_version, version)
        self.horizon = int(horizon if horizon is not None else spec["horizon"])
        self._env_kwargs = env_kwargs
        probe = self.make_env()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        self._shapes = {key: getattr(probe.model, key).shape for key in RAND_PARAMS}
        probe.close()

    def make_env(self, task: dict | None = None) -> HopperRandParamsEnv | Walker2dRandParamsEnv:
        return self.env_cls(task=task, horizon=self.horizon, **self._env_kwargs)

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Per task, draw the arrays in RAND_PARAMS order (mass, inertia, damping, friction)."""
        return [{key: (base ** rng.uniform(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT, size=self._shapes[key])).tolist()
                 for key, base in RAND_PARAMS.items()} for _ in range(n)]

    def oracle_features(self, task: dict) -> np.ndarray:
        """Natural logs of all multipliers, flattened (missing keys count as multiplier 1)."""
        return np.concatenate([np.log(np.broadcast_to(np.asarray(task.get(key, 1.0), dtype=np.float64),
                                                      self._shapes[key])).ravel()
                               for key in RAND_PARAMS]).astype(np.float32)


class HopperRandParamsFamily(_RandParamsFamily):
    """Hop forward under randomised body mass, inertia, joint damping and friction."""

    name = "hopper-rand-params"
    env_cls = HopperRandParamsEnv


class Walker2dRandParamsFamily(_RandParamsFamily):
    """Walk forward under randomised body mass, inertia, joint damping and friction."""

    name = "walker2d-rand-params"
    env_cls = Walker2dRandParamsEnv
