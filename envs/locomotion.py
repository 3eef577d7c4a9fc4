"""MuJoCo locomotion task families (Finn et al. 2017; Rothfuss et al. 2019) on Gymnasium's v5 robots.

Each env subclasses the Gymnasium v5 env and replaces only ``step`` (one reward computation, no extra physics);
``set_task`` swaps the task's parameters in place, so a rollout worker builds its envs once. Velocities are the
robot's own root displacement over one control step, ``(qpos_after - qpos_before) / dt``. Observations are cast to
float32 (Gymnasium returns float64). Every episode is truncated after ``horizon`` steps; Ant versions that follow
the MAML code also terminate when the torso leaves the healthy height range (the sampler masks the rest).

HalfCheetah comes in two simulations. ``finn2017`` is the MAML authors' own (cbfinn/maml_rl, rllab's
``half_cheetah_env_rand*.py``; ``HalfCheetahCOMTaskEnv``): the same cheetah model and 0.01 s timestep as Gymnasium's,
but one physics step per env step, the 20-dim observation qpos[1:], qvel and the torso subtree's centre of mass, the
velocity of that centre of mass as v_x, and a Gaussian reset (0.01 on qpos, 0.1 on qvel). ``gym-v5`` and
``rothfuss2019`` are Gymnasium's HalfCheetah-v5 (five physics steps per env step, 17-dim observation, the root's
displacement over the control step as v_x, uniform ±0.1 reset on qpos).

Reward per family and version (a = the action as given; the rollout sampler clips it to the action box):

========================  =======================================================================================
halfcheetah-vel (all)     -|v_x - v*| - 0.05 |a|^2                             (MAML and ProMP code alike)
halfcheetah-dir (all)     d * v_x - 0.05 |a|^2
ant-vel finn2017          -|v_x - v*| + 1.0 + 0.05 - 0.005 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2
ant-dir finn2017          d * v_x + 0.05 - 0.005 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2
ant-dir angle             u . v_xy + 1.0 - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2, u = (cos t, sin t)
ant-goal finn2017         -|p_xy - g|_1 + 4.0 + 0.05 - 0.005 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2
ant-goal rothfuss2019     -|p_xy - g|_1 - 0.1 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2
========================  =======================================================================================

The finn2017 Ant constants are those of ``cbfinn/maml_rl`` (``rllab/envs/mujoco/ant_env_rand*.py``: ctrl cost
0.5e-2, contact cost 0.5e-3, survive reward 0.05, "+1.0" / "+4.0" offsets, done when the torso z leaves
[0.2, 1.0]); ``angle`` and ``rothfuss2019`` follow ProMP's ``ant_rand_direc_2d.py`` (done when z leaves [0, 1])
and ``ant_rand_goal.py`` (never done). p_xy is the torso position (the free joint's qpos[0:2]); the MAML code used
the torso's centre of mass, which differs by the legs' offset.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.spaces import Box

from metarl.families import resolve_version


def _float32_box(shape: tuple[int, ...]) -> Box:
    return Box(-np.inf, np.inf, shape=shape, dtype=np.float32)


class _InitialState:
    """Mixin for the task envs: the initial state is one function that the batched env calls too."""

    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium v5's (qpos, qvel): qpos + U[-s, s], then qvel + s N(0, 1), s = the reset noise scale."""
        scale, model = self._reset_noise_scale, self.model
        qpos = self.init_qpos + rng.uniform(low=-scale, high=scale, size=model.nq)
        qvel = self.init_qvel + scale * rng.standard_normal(model.nv)
        return qpos, qvel

    def reset_model(self):
        self.set_state(*self.initial_state(self.np_random))
        return self._get_obs()


# --------------------------------------------------------------------------------------------------- HalfCheetah


class HalfCheetahTaskEnv(_InitialState, HalfCheetahEnv):
    """HalfCheetah-v5 whose reward is set by a task: ``{"velocity": v*}`` or ``{"direction": ±1}``.

    Reward: ``-|v_x - v*| - 0.05|a|^2`` for a velocity task, ``d * v_x - 0.05|a|^2`` for a direction task.
    """

    def __init__(self, task: dict | None = None, horizon: int = 200, ctrl_cost_weight: float = 0.05,
                 **kwargs: Any):
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        utils.EzPickle.__init__(self, task, horizon, ctrl_cost_weight, **kwargs)
        self.observation_space = _float32_box(self.observation_space.shape)
        self.horizon = int(horizon)
        self._t = 0
        self._velocity: float | None = None
        self._direction = 1.0
        self.set_task(task if task is not None else {"velocity": 1.0})

    def set_task(self, task: dict) -> None:
        if "velocity" in task:
            self._velocity, self._direction = float(task["velocity"]), 0.0
        elif "direction" in task:
            self._velocity, self._direction = None, float(task["direction"])
        else:
            raise ValueError(f"HalfCheetah task needs a 'velocity' or 'direction' key, got {task!r}")

    def get_task(self) -> dict:
        return {"velocity": self._velocity} if self._velocity is not None else {"direction": self._direction}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._t = 0
        obs, info = super().reset(seed=seed, options=options)
        return obs.astype(np.float32), info

    def task_reward(self, x_velocity: float) -> float:
        return -abs(x_velocity - self._velocity) if self._velocity is not None else self._direction * x_velocity

    def step(self, action):
        x_before = self.data.qpos[0]
        self.do_simulation(action, self.frame_skip)
        x_velocity = (self.data.qpos[0] - x_before) / self.dt
        reward_run = self.task_reward(x_velocity)
        ctrl_cost = self._ctrl_cost_weight * float(np.sum(np.square(action)))
        self._t += 1
        info = {"x_velocity": x_velocity, "reward_run": reward_run, "reward_ctrl": -ctrl_cost}
        return (self._get_obs().astype(np.float32), reward_run - ctrl_cost, False, self._t >= self.horizon,
                info)


class HalfCheetahCOMTaskEnv(HalfCheetahTaskEnv):
    """The MAML authors' cheetah (rllab's ``HalfCheetahEnvRand`` / ``HalfCheetahEnvRandDirec``).

    One physics step per env step; observation qpos[1:], qvel and the centre of mass of the torso's subtree (the
    whole cheetah), 20 dims; v_x is that centre of mass's velocity after the step (rllab's ``get_body_comvel``:
    the subtree's linear momentum over its mass, at the new state, which rllab recomputes with ``model.forward()``
    after stepping); reset noise N(0, 0.01^2) on qpos and N(0, 0.1^2) on qvel.

    Each env step runs ``mj_step2`` (the rest of the step whose position/velocity stage is current) and then
    ``mj_step1`` on the new state, the split of ``mj_step`` MuJoCo documents as equal to it for the Euler
    integrator; so the new state's centre of mass costs only ``mj_subtreeVel`` rather than a second ``mj_forward``.
    """

    def __init__(self, task: dict | None = None, horizon: int = 200, ctrl_cost_weight: float = 0.05,
                 frame_skip: int = 1, **kwargs: Any):
        super().__init__(task, horizon, ctrl_cost_weight, frame_skip=frame_skip, **kwargs)
        self.torso = self.model.body("torso").id
        self.observation_space = _float32_box((self.model.nq - 1 + self.model.nv + 3,))

    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        model = self.model  # rllab's reset_mujoco: qpos noise first, then qvel noise
        qpos = self.init_qpos + rng.standard_normal(model.nq) * 0.01
        qvel = self.init_qvel + rng.standard_normal(model.nv) * 0.1
        return qpos, qvel

    def _get_obs(self) -> np.ndarray:
        data = self.data
        return np.concatenate((data.qpos[1:], data.qvel, data.subtree_com[self.torso])).astype(np.float32)

    def step(self, action):
        model, data = self.model, self.data
        data.ctrl[:] = action
        for _ in range(self.frame_skip):
            mujoco.mj_step2(model, data)
            mujoco.mj_step1(model, data)
        mujoco.mj_subtreeVel(model, data)
        x_velocity = float(data.subtree_linvel[self.torso, 0])
        reward_run = self.task_reward(x_velocity)
        ctrl_cost = self._ctrl_cost_weight * float(np.sum(np.square(action)))
        self._t += 1
        info = {"x_velocity": x_velocity, "reward_run": reward_run, "reward_ctrl": -ctrl_cost}
        return self._get_obs(), reward_run - ctrl_cost, False, self._t >= self.horizon, info


# ----------------------------------------------------------------------------------------------------------- Ant


class AntTaskEnv(_InitialState, AntEnv):
    """Ant-v5 whose reward is set by a task: ``{"velocity": v*}``, ``{"direction": ±1}``, ``{"angle": t}`` or
    ``{"goal": [x, y]}``.

    reward = task term + ``task_offset`` + ``survive_reward`` - ctrl cost - contact cost, where the task term is
    ``-|v_x - v*|``, ``u . v_xy`` (u = (d, 0) or (cos t, sin t)) or ``-|p_xy - g|_1``; see the module docstring for
    each version's constants. The survive reward is paid every step (as in the MAML code), termination is
    ``terminate_when_unhealthy`` and a torso height outside ``healthy_z_range`` (or a non-finite state).
    """

    def __init__(self, task: dict | None = None, horizon: int = 200, ctrl_cost_weight: float = 0.005,
                 contact_cost_weight: float = 5e-4, survive_reward: float = 0.05, task_offset: float = 0.0,
                 terminate_when_unhealthy: bool = True, healthy_z_range: tuple[float, float] = (0.2, 1.0),
                 exclude_current_positions_from_observation: bool = True, **kwargs: Any):
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, contact_cost_weight=contact_cost_weight,
                         healthy_reward=survive_reward, terminate_when_unhealthy=terminate_when_unhealthy,
                         healthy_z_range=tuple(healthy_z_range),
                         exclude_current_positions_from_observation=exclude_current_positions_from_observation,
                         **kwargs)
        utils.EzPickle.__init__(self, task, horizon, ctrl_cost_weight, contact_cost_weight, survive_reward,
                                task_offset, terminate_when_unhealthy, healthy_z_range,
                                exclude_current_positions_from_observation, **kwargs)
        self.observation_space = _float32_box(self.observation_space.shape)
        self.horizon = int(horizon)
        self._task_offset = float(task_offset)
        self._t = 0
        self._task: dict = {}
        self._velocity: float | None = None
        self._direction: np.ndarray | None = None
        self._goal: np.ndarray | None = None
        self.set_task(task if task is not None else {"velocity": 1.0})

    def set_task(self, task: dict) -> None:
        self._velocity = self._direction = self._goal = None
        if "velocity" in task:
            self._velocity = float(task["velocity"])
            self._task = {"velocity": self._velocity}
        elif "direction" in task:
            self._direction = np.array([float(task["direction"]), 0.0])
            self._task = {"direction": float(task["direction"])}
        elif "angle" in task:
            angle = float(task["angle"])
            self._direction = np.array([np.cos(angle), np.sin(angle)])
            self._task = {"angle": angle}
        elif "goal" in task:
            self._goal = np.asarray(task["goal"], dtype=np.float64).reshape(2)
            self._task = {"goal": self._goal.tolist()}
        else:
            raise ValueError(f"Ant task needs a 'velocity', 'direction', 'angle' or 'goal' key, got {task!r}")

    def get_task(self) -> dict:
        return dict(self._task)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._t = 0
        obs, info = super().reset(seed=seed, options=options)
        return obs.astype(np.float32), info

    def step(self, action):
        qpos = self.data.qpos
        xy_before = qpos[:2].copy()
        self.do_simulation(action, self.frame_skip)
        xy_velocity = (qpos[:2] - xy_before) / self.dt
        if self._velocity is not None:
            reward_task = -abs(xy_velocity[0] - self._velocity)
        elif self._direction is not None:  # written out, not `@`: BLAS may fuse it, and batched_locomotion matches
            reward_task = float(self._direction[0] * xy_velocity[0] + self._direction[1] * xy_velocity[1])
        else:
            reward_task = -float(np.abs(qpos[:2] - self._goal).sum())
        contact = np.clip(self.data.cfrc_ext, *self._contact_force_range)
        ctrl_cost = self._ctrl_cost_weight * float(np.sum(np.square(action)))
        contact_cost = self._contact_cost_weight * float(np.sum(np.square(contact)))
        reward = reward_task + self._task_offset + self._healthy_reward - ctrl_cost - contact_cost
        terminated = self._terminate_when_unhealthy and not self.is_healthy
        self._t += 1
        position = qpos[2:] if self._exclude_current_positions_from_observation else qpos
        if self._include_cfrc_ext_in_observation:
            obs = np.concatenate((position, self.data.qvel, contact[1:].ravel())).astype(np.float32)
        else:
            obs = np.concatenate((position, self.data.qvel)).astype(np.float32)
        info = {"x_velocity": xy_velocity[0], "y_velocity": xy_velocity[1], "reward_task": reward_task,
                "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost}
        return obs, reward, bool(terminated), self._t >= self.horizon, info


# ------------------------------------------------------------------------------------------------------ families


class _LocomotionFamily:
    """Shared family plumbing: a version table, one probe env for the spaces, and envs built on demand.

    ``versions[v]`` holds the task distribution, ``horizon``, the env class where it is not the family's
    (``env_cls``) and the env's reward constants (``env``); keyword arguments to the family override the env
    constants (e.g. ``terminate_when_unhealthy=False``).
    The sampler steps ``make_batched_env(n)`` (one MjModel, n MjData, the rest in numpy; equal to ``make_env``'s
    envs bit for bit, the authors' cheetah to rounding), at most ``max_envs`` episodes at once.
    """

    name: str
    env_cls: type
    versions: dict[str, dict[str, Any]]
    default_version = "finn2017"

    def __init__(self, version: str | None = None, horizon: int | None = None, **env_kwargs: Any):
        self.version, self.spec = resolve_version(self.name, self.versions, self.default_version, version)
        self.horizon = int(horizon if horizon is not None else self.spec["horizon"])
        self._env_kwargs = {**self.spec.get("env", {}), **env_kwargs}
        probe = self.make_env()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()

    def make_env(self, task: dict | None = None) -> AntTaskEnv | HalfCheetahTaskEnv:
        env_cls = self.spec.get("env_cls", self.env_cls)
        return env_cls(task=task if task is not None else self.default_task(), horizon=self.horizon,
                       **self._env_kwargs)

    @property
    def max_envs(self) -> int:
        """Episodes per batched env: 256 where each episode holds an MjData (an Ant's is about 0.5 MB); the authors'
        cheetah holds only a state vector per episode (one ``mujoco.rollout`` call steps them all), so a worker's
        whole share of a paper preset (e.g. 20 tasks × 27 episodes) runs as one batch."""
        return 4096 if issubclass(self.spec.get("env_cls", self.env_cls), HalfCheetahCOMTaskEnv) else 256

    def make_batched_env(self, n: int):
        """``n`` episodes stepped together; see envs/batched_locomotion.py."""
        from metarl.envs.batched_locomotion import BatchedLocomotionEnv

        return BatchedLocomotionEnv(self.make_env(), n)

    def default_task(self) -> dict:
        raise NotImplementedError

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        raise NotImplementedError

    def oracle_features(self, task: dict) -> np.ndarray:
        """The task's parameters as a vector, for the oracle baseline."""
        if "angle" in task:
            return np.array([np.cos(task["angle"]), np.sin(task["angle"])], dtype=np.float32)
        (value,) = task.values()
        return np.atleast_1d(np.asarray(value, dtype=np.float32))


class _VelocityFamily(_LocomotionFamily):
    def default_task(self) -> dict:
        return {"velocity": 1.0}

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        low, high = self.spec["velocity_range"]
        return [{"velocity": float(v)} for v in rng.uniform(low, high, size=n)]


class _DirectionFamily(_LocomotionFamily):
    def default_task(self) -> dict:
        return {"direction": 1.0}

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return [{"direction": float(d)} for d in np.where(rng.random(n) < 0.5, -1.0, 1.0)]


class HalfCheetahVelFamily(_VelocityFamily):
    """Run at a target forward velocity v*."""

    name = "halfcheetah-vel"
    env_cls = HalfCheetahTaskEnv
    versions = {
        "finn2017": {"velocity_range": (0.0, 2.0), "horizon": 200, "env_cls": HalfCheetahCOMTaskEnv,
                     "distribution": "v* ~ U[0, 2]; the MAML authors' cheetah (1 physics step, centre of mass)"},
        "gym-v5": {"velocity_range": (0.0, 2.0), "horizon": 200,
                   "distribution": "v* ~ U[0, 2]; Gymnasium's HalfCheetah-v5 (5 physics steps, root velocity)"},
        "rothfuss2019": {"velocity_range": (0.0, 3.0), "horizon": 100,
                         "distribution": "v* ~ U[0, 3]; Gymnasium's HalfCheetah-v5"},
    }


class HalfCheetahDirFamily(_DirectionFamily):
    """Run forward (d = +1) or backward (d = -1), each with probability 1/2."""

    name = "halfcheetah-dir"
    env_cls = HalfCheetahTaskEnv
    versions = {
        "finn2017": {"horizon": 200, "env_cls": HalfCheetahCOMTaskEnv,
                     "distribution": "d ~ U{-1, +1}; the MAML authors' cheetah (1 physics step, centre of mass)"},
        "gym-v5": {"horizon": 200, "distribution": "d ~ U{-1, +1}; Gymnasium's HalfCheetah-v5"},
        "rothfuss2019": {"horizon": 100, "distribution": "d ~ U{-1, +1}; Gymnasium's HalfCheetah-v5"},
    }


_MAML_ANT = {"ctrl_cost_weight": 0.005, "contact_cost_weight": 5e-4, "survive_reward": 0.05,
             "terminate_when_unhealthy": True, "healthy_z_range": (0.2, 1.0)}


class AntVelFamily(_VelocityFamily):
    """Ant runs along x at a target velocity v* (MAML's reward, including its +1.0 offset)."""

    name = "ant-vel"
    env_cls = AntTaskEnv
    versions = {
        "finn2017": {"velocity_range": (0.0, 3.0), "horizon": 200, "distribution": "v* ~ U[0, 3]",
                     "env": {**_MAML_ANT, "task_offset": 1.0}},
    }


class AntDirFamily(_LocomotionFamily):
    """Ant runs in a direction: forward/backward (finn2017) or any planar angle (angle, ProMP's 2-D variant)."""

    name = "ant-dir"
    env_cls = AntTaskEnv
    versions = {
        "finn2017": {"horizon": 200, "distribution": "d ~ U{-1, +1} (along x)", "env": dict(_MAML_ANT)},
        "angle": {"horizon": 200, "distribution": "angle ~ U[0, 2*pi)",
                  "env": {"ctrl_cost_weight": 0.5, "contact_cost_weight": 5e-4, "survive_reward": 1.0,
                          "terminate_when_unhealthy": True, "healthy_z_range": (0.0, 1.0)}},
    }

    def default_task(self) -> dict:
        return {"direction": 1.0} if self.version == "finn2017" else {"angle": 0.0}

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        if self.version == "finn2017":
            return [{"direction": float(d)} for d in np.where(rng.random(n) < 0.5, -1.0, 1.0)]
        return [{"angle": float(a)} for a in rng.uniform(0.0, 2 * np.pi, size=n)]


class AntGoalFamily(_LocomotionFamily):
    """Ant walks to a goal position: uniform in the square [-3, 3]^2 (finn2017) or the disc of radius 3."""

    name = "ant-goal"
    env_cls = AntTaskEnv
    versions = {
        "finn2017": {"horizon": 200, "distribution": "g ~ U[-3, 3]^2",
                     "env": {**_MAML_ANT, "task_offset": 4.0, "exclude_current_positions_from_observation": False}},
        "rothfuss2019": {"horizon": 200, "distribution": "g ~ U(disc of radius 3)",
                         "env": {"ctrl_cost_weight": 0.1, "contact_cost_weight": 5e-4, "survive_reward": 0.0,
                                 "terminate_when_unhealthy": False,
                                 "exclude_current_positions_from_observation": False}},
    }

    def default_task(self) -> dict:
        return {"goal": [0.0, 0.0]}

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        if self.version == "finn2017":
            goals = rng.uniform(-3.0, 3.0, size=(n, 2))
        else:  # uniform on the disc: angle uniform, radius 3 * sqrt(U) (ProMP's ant_rand_goal.py)
            angle = rng.uniform(0.0, 2 * np.pi, size=n)
            radius = 3.0 * np.sqrt(rng.random(n))
            goals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
        return [{"goal": [float(x), float(y)]} for x, y in goals]
