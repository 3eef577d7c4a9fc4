"""The locomotion families' natively batched env: one MjModel, one MjData per episode, everything else in numpy.

A Gymnasium MuJoCo env spends a large share of each step outside the physics (attribute lookups, the observation
and reward assembled per env, wrapper calls); for HalfCheetah that is about 40% of the step. Here the Python work
per env and step is only the physics call and two or three array copies; observations, velocities, rewards and
terminations are computed once for all episodes.

It reproduces the family's Gymnasium env (``HalfCheetahTaskEnv`` / ``AntTaskEnv`` in locomotion.py) exactly: the
same model, frame skip and constants (read from a reference env built by the family, so family kwargs apply), the
same reset (Gymnasium's seeding of ``np_random`` from each episode's seed, ``mj_resetData``, the env's own
``initial_state`` draw, ``mj_forward``), ``mj_rnePostConstraint`` after each step where the contact forces are used
(Ant), and the same floating-point operations in the same order. An episode that terminated is not stepped again
(its reward is 0 and ``terminated`` stays set), as in the sampler's Gymnasium path.

The MAML authors' cheetah (``HalfCheetahCOMTaskEnv``: one physics step per env step, so per-env Python work would
cost as much as the physics) is the exception: all its episodes take one ``mujoco.rollout`` call per step (states
in, states out, no Python per episode), and the centre of mass and its velocity come from planar_kinematics.py
instead of an MjData. Two things differ from its Gymnasium env, both at rounding level: the constraint solver starts
each step without the previous step's accelerations as warm start (rollout takes states, which do not hold them),
and the centre of mass is summed in another order. Observations and rewards agree to about 1e-10
(tests/test_envs_batched_locomotion.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import mujoco.rollout
import numpy as np
from gymnasium.utils.seeding import np_random
from metarl.envs.locomotion import AntTaskEnv, HalfCheetahCOMTaskEnv, HalfCheetahTaskEnv
from metarl.envs.planar_kinematics import PlanarSubtreeCOM


class BatchedLocomotionEnv:
    """``num_envs`` episodes of one locomotion family's env (the BatchedEnv protocol of metarl.families).

    ``step`` returns (obs float32 [n, d], rewards float64 [n], terminated bool [n], {"truncated": bool [n]});
    truncation comes at the family's horizon, as in the Gymnasium env.
    """

    def __init__(self, reference: HalfCheetahTaskEnv | AntTaskEnv, num_envs: int):
        self._ref = ref = reference.unwrapped
        self._ant = isinstance(ref, AntTaskEnv)
        self._com = isinstance(ref, HalfCheetahCOMTaskEnv)
        if not self._ant and not isinstance(ref, HalfCheetahTaskEnv):
            raise TypeError(f"BatchedLocomotionEnv needs a HalfCheetahTaskEnv or an AntTaskEnv, got {type(ref)!r}")
        self.num_envs = n = int(num_envs)
        self.model = model = ref.model
        self._frame_skip, self._dt, self._horizon = int(ref.frame_skip), ref.dt, int(ref.horizon)
        self._ctrl_weight = ref._ctrl_cost_weight
        if self._com:  # the physics state of every episode: MuJoCo's mjSTATE_FULLPHYSICS, rolled out together
            self._rollout = mujoco.rollout.Rollout(nthread=0)
            self._rollout_models, self._rollout_data = [model] * n, [mujoco.MjData(model)]
            self._state = np.zeros((n, mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
            # mjSTATE_FULLPHYSICS is time, qpos, qvel (the cheetah has no activations or plugin state): qpos and qvel
            # are views of the state, not copies
            nq, nv = model.nq, model.nv
            self._qpos, self._qvel = self._state[:, 1:1 + nq], self._state[:, 1 + nq:1 + nq + nv]
            self._next = np.zeros((n, self._frame_skip, self._state.shape[1]))  # the state after each physics step
            self._no_warmstart = np.zeros((n, model.nv))
            self._no_sensors = np.zeros((n, self._frame_skip, model.nsensordata))
            self._kinematics = PlanarSubtreeCOM(model, ref.torso)
        else:
            self._datas = [mujoco.MjData(model) for _ in range(n)]
            # Views into each MjData (valid for its lifetime): no attribute lookups in the step loop.
            self._ctrl = [d.ctrl for d in self._datas]
            self._qpos_of = [d.qpos for d in self._datas]
            self._qvel_of = [d.qvel for d in self._datas]
            self._cfrc_of = [d.cfrc_ext for d in self._datas]
            self._qpos = np.zeros((n, model.nq))
            self._qvel = np.zeros((n, model.nv))
        self._cfrc = np.zeros((n, model.nbody, 6))
        self._done = np.zeros(n, dtype=bool)
        self._live: list[int] = []
        self._t = 0
        # Per-episode task parameters; a task sets one of them (mode 0: velocity, 1: direction, 2: goal).
        self._mode = np.zeros(n, dtype=np.int64)
        self._velocity = np.zeros(n)
        self._direction = np.zeros((n, 2))
        self._goal = np.zeros((n, 2))

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        """Parse each task with the reference env's own ``set_task`` (same validation and errors)."""
        ref = self._ref
        for i, task in enumerate(tasks):
            ref.set_task(task)
            self._velocity[i], self._direction[i], self._goal[i] = 0.0, 0.0, 0.0
            if ref._velocity is not None:
                self._mode[i], self._velocity[i] = 0, ref._velocity
            elif self._ant and ref._direction is not None:
                self._mode[i], self._direction[i] = 1, ref._direction
            elif self._ant:
                self._mode[i], self._goal[i] = 2, ref._goal
            else:
                self._mode[i], self._direction[i, 0] = 1, ref._direction

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        model = self.model
        if self._com:
            self._state[:] = 0.0
            for i, seed in enumerate(seeds):
                self._qpos[i], self._qvel[i] = self._ref.initial_state(np_random(int(seed))[0])
            self._com_pos, self._com_vel = self._kinematics(self._qpos, self._qvel)
        else:
            for i, (data, seed) in enumerate(zip(self._datas, seeds)):
                mujoco.mj_resetData(model, data)
                data.qpos[:], data.qvel[:] = self._ref.initial_state(np_random(int(seed))[0])
                mujoco.mj_forward(model, data)
                self._gather(i)
        self._done[:] = False
        self._live = list(range(self.num_envs))
        self._t = 0
        return self._observe()

    def _gather(self, i: int) -> None:
        self._qpos[i] = self._qpos_of[i]
        self._qvel[i] = self._qvel_of[i]
        if self._ant:
            self._cfrc[i] = self._cfrc_of[i]

    def step(self, actions: np.ndarray):
        """Step every live episode by one control step with ``actions[i]`` (as given: the sampler clips them)."""
        actions = np.asarray(actions)
        if self._com:
            self._roll(actions)
            velocity = self._com_vel[:, :2]
        else:
            before = self._qpos[:, :2].copy()
            self._step_each(actions)
            velocity = (self._qpos[:, :2] - before) / self._dt
        self._t += 1
        stepped = np.zeros(self.num_envs, dtype=bool)
        stepped[self._live] = True
        # float(np.sum(np.square(action))) per env in the action's own dtype, then the weight in float64.
        ctrl_cost = self._ctrl_weight * np.square(actions).sum(axis=1).astype(np.float64)
        rewards, terminated = self._ant_step(velocity, ctrl_cost) if self._ant else self._cheetah_step(velocity,
                                                                                                        ctrl_cost)
        rewards[~stepped] = 0.0
        self._done |= terminated & stepped
        if self._done[self._live].any():
            self._live = [i for i in self._live if not self._done[i]]
        truncated = np.full(self.num_envs, self._t >= self._horizon) & stepped
        return self._observe(), rewards, self._done.copy(), {"truncated": truncated}

    def _step_each(self, actions: np.ndarray) -> None:
        """One MjData per live episode, stepped in turn."""
        model, frame_skip, step = self.model, self._frame_skip, mujoco.mj_step
        datas, ctrl, qpos_of, qvel_of, cfrc_of = self._datas, self._ctrl, self._qpos_of, self._qvel_of, self._cfrc_of
        qpos, qvel, cfrc = self._qpos, self._qvel, self._cfrc
        if self._ant:
            post = mujoco.mj_rnePostConstraint  # the contact forces (cfrc_ext) the Ant reward and observation use
            for i in self._live:
                ctrl[i][:] = actions[i]
                step(model, datas[i], frame_skip)
                post(model, datas[i])
                qpos[i] = qpos_of[i]
                qvel[i] = qvel_of[i]
                cfrc[i] = cfrc_of[i]
        else:
            for i in self._live:
                ctrl[i][:] = actions[i]
                step(model, datas[i], frame_skip)
                qpos[i] = qpos_of[i]
                qvel[i] = qvel_of[i]

    def _roll(self, actions: np.ndarray) -> None:
        """The authors' cheetah: one rollout of ``frame_skip`` physics steps for every episode (none terminates), then
        the centre of mass."""
        frame_skip = self._frame_skip
        controls = np.repeat(np.asarray(actions, dtype=np.float64)[:, None, :], frame_skip, axis=1)
        self._rollout.rollout(self._rollout_models, self._rollout_data, self._state, controls, skip_checks=True,
                              nstep=frame_skip, initial_warmstart=self._no_warmstart, state=self._next,
                              sensordata=self._no_sensors)
        self._state[:] = self._next[:, -1]
        self._com_pos, self._com_vel = self._kinematics(self._qpos, self._qvel)

    def _cheetah_step(self, velocity: np.ndarray, ctrl_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vx = velocity[:, 0]
        run = np.where(self._mode == 0, -np.abs(vx - self._velocity), self._direction[:, 0] * vx)
        return run - ctrl_cost, np.zeros(self.num_envs, dtype=bool)

    def _ant_step(self, velocity: np.ndarray, ctrl_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ref, qpos = self._ref, self._qpos
        velocity_term = -np.abs(velocity[:, 0] - self._velocity)
        direction_term = self._direction[:, 0] * velocity[:, 0] + self._direction[:, 1] * velocity[:, 1]
        goal_term = -np.abs(qpos[:, :2] - self._goal).sum(axis=1)
        task = np.where(self._mode == 0, velocity_term, np.where(self._mode == 1, direction_term, goal_term))
        contact = np.clip(self._cfrc, *ref._contact_force_range)
        contact_cost = ref._contact_cost_weight * np.square(contact).reshape(self.num_envs, -1).sum(axis=1)
        rewards = task + ref._task_offset + ref._healthy_reward - ctrl_cost - contact_cost
        if not ref._terminate_when_unhealthy:
            return rewards, np.zeros(self.num_envs, dtype=bool)
        low, high = ref._healthy_z_range
        finite = np.isfinite(qpos).all(axis=1) & np.isfinite(self._qvel).all(axis=1)
        healthy = finite & (low <= qpos[:, 2]) & (qpos[:, 2] <= high)
        return rewards, ~healthy

    def _observe(self) -> np.ndarray:
        ref, n = self._ref, self.num_envs
        if self._ant:
            position = self._qpos[:, 2:] if ref._exclude_current_positions_from_observation else self._qpos
            parts = [position, self._qvel]
            if ref._include_cfrc_ext_in_observation:
                contact = np.clip(self._cfrc, *ref._contact_force_range)
                parts.append(contact[:, 1:].reshape(n, -1))
        elif self._com:
            parts = [self._qpos[:, 1:], self._qvel, self._com_pos]
        else:
            position = self._qpos[:, 1:] if ref._exclude_current_positions_from_observation else self._qpos
            parts = [position, self._qvel]
        return np.concatenate(parts, axis=1).astype(np.float32)
