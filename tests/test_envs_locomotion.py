"""Locomotion families: rewards recomputed from the env's own state, task distributions, horizons, registration."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from metarl.families import FamilyError, make_family


def _actions(env: gym.Env, n: int, seed: int = 0) -> list[np.ndarray]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def _contact_cost(env: gym.Env, weight: float = 5e-4) -> float:
    return weight * float(np.sum(np.square(np.clip(env.unwrapped.data.cfrc_ext, -1.0, 1.0))))


def _step_with_x_velocity(env: gym.Env, action) -> tuple[float, bool, float]:
    """(reward, terminated, v_x) of one step, v_x from the root's x displacement over the control step."""
    data = env.unwrapped.data
    x_before = float(data.qpos[0])
    _, reward, terminated, _, _ = env.step(action)
    return reward, terminated, (data.qpos[0] - x_before) / env.unwrapped.dt


@pytest.mark.parametrize("version", ["gym-v5", "rothfuss2019"])
def test_halfcheetah_vel_reward_is_velocity_error_minus_control_cost(version):
    env = make_family("halfcheetah-vel", version).make_env({"velocity": 1.5})
    env.reset(seed=0)
    for action in _actions(env, 20):
        reward, terminated, v = _step_with_x_velocity(env, action)
        assert reward == pytest.approx(-abs(v - 1.5) - 0.05 * float(np.sum(action.astype(np.float64) ** 2)))
        assert not terminated


def test_halfcheetah_dir_reward_flips_with_direction():
    family = make_family("halfcheetah-dir", "gym-v5")
    rewards = {}
    for d in (-1.0, 1.0):
        env = family.make_env({"direction": d})
        env.reset(seed=3)
        rewards[d] = []
        for action in _actions(env, 10):
            reward, _, v = _step_with_x_velocity(env, action)
            assert reward == pytest.approx(d * v - 0.05 * float(np.sum(action.astype(np.float64) ** 2)))
            rewards[d].append(reward)
    # Same physics, so forward + backward reward = -2 * control cost.
    costs = [0.05 * float(np.sum(a.astype(np.float64) ** 2)) for a in _actions(env, 10)]
    assert np.allclose(np.add(rewards[-1.0], rewards[1.0]), -2 * np.asarray(costs))


def _rllab_com_velocity(model, data, body: int) -> np.ndarray:
    """rllab's ``get_body_comvel`` (mujoco_py's ``_compute_subtree``): the subtree's linear momentum over its mass,
    from each body's velocity at its centre of mass (``mj_objectVelocity`` of mjOBJ_BODY, world frame)."""
    velocity = np.zeros(6)
    momentum = np.zeros((model.nbody, 3))
    mass = model.body_mass.copy()
    for i in range(model.nbody):
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, i, velocity, 0)
        momentum[i] = velocity[3:] * mass[i]
    for i in range(model.nbody - 1, 0, -1):
        parent = model.body_parentid[i]
        momentum[parent] += momentum[i]
        mass[parent] += mass[i]
    return momentum[body] / mass[body]


@pytest.mark.parametrize("name,task", [("halfcheetah-vel", {"velocity": 1.5}),
                                       ("halfcheetah-dir", {"direction": -1.0})])
def test_finn2017_cheetah_is_the_authors_simulation(name, task):
    """The authors' rllab cheetah, rebuilt here from plain MuJoCo calls: one ``mj_step`` and then ``mj_forward`` per
    env step (rllab's ``forward_dynamics``), observation qpos[1:], qvel, torso subtree COM, reward on the COM
    velocity from each body's velocity (rllab's formula). The env computes it differently (the mj_step2/mj_step1
    split and ``subtree_linvel``), so this checks that both are the same physics and the same velocity."""
    family = make_family(name, "finn2017")
    assert family.observation_space.shape == (20,) and family.horizon == 200
    env = family.make_env(task)
    obs, _ = env.reset(seed=7)
    sim = env.unwrapped
    model, torso = sim.model, sim.model.body("torso").id
    assert sim.frame_skip == 1 and model.opt.timestep == 0.01
    data = copy.copy(sim.data)  # the whole state, the solver's warm start included
    assert np.array_equal(obs, np.concatenate((data.qpos[1:], data.qvel, data.subtree_com[torso])).astype(np.float32))
    for action in _actions(env, 50, seed=3):
        obs, reward, terminated, _, _ = env.step(action)
        data.ctrl[:] = action
        mujoco.mj_step(model, data)
        probe = copy.copy(data)  # rllab's model.forward() after the step, kept off the solver's warm start
        mujoco.mj_forward(model, probe)
        expected_obs = np.concatenate((probe.qpos[1:], probe.qvel, probe.subtree_com[torso]))
        assert np.array_equal(obs, expected_obs.astype(np.float32))
        vx = _rllab_com_velocity(model, probe, torso)[0]
        run = -abs(vx - task["velocity"]) if "velocity" in task else task["direction"] * vx
        assert reward == pytest.approx(run - 0.05 * float(np.sum(np.square(action))), rel=1e-12)
        assert not terminated


def test_finn2017_cheetah_resets_with_rllabs_gaussian_noise():
    env = make_family("halfcheetah-vel").make_env()
    sim = env.unwrapped
    qpos = np.array([(env.reset(seed=s)[0], sim.data.qpos.copy())[1] for s in range(400)])
    noise = qpos - sim.init_qpos
    assert np.abs(noise).max() > 0.025  # U[-0.1, 0.1] would not reach a std of 0.01; N(0, 0.01^2) does exceed 2.5 std
    assert noise.std() == pytest.approx(0.01, rel=0.1)


def test_ant_vel_reward_matches_maml_form():
    env = make_family("ant-vel").make_env({"velocity": 2.0})
    env.reset(seed=1)
    for action in _actions(env, 15):
        reward, terminated, v = _step_with_x_velocity(env, action)
        ctrl = 0.005 * float(np.sum(action.astype(np.float64) ** 2))
        assert reward == pytest.approx(-abs(v - 2.0) + 1.0 + 0.05 - ctrl - _contact_cost(env))
        if terminated:
            break


@pytest.mark.parametrize("version,offset,ctrl_weight,survive", [("finn2017", 4.0, 0.005, 0.05),
                                                                  ("rothfuss2019", 0.0, 0.1, 0.0)])
def test_ant_goal_reward_uses_l1_distance_to_goal(version, offset, ctrl_weight, survive):
    goal = np.array([1.5, -2.0])
    env = make_family("ant-goal", version).make_env({"goal": goal.tolist()})
    obs, _ = env.reset(seed=2)
    data = env.unwrapped.data
    assert np.allclose(obs[:2], data.qpos[:2])  # the position is observed: the goal is reachable
    for action in _actions(env, 15):
        obs, reward, terminated, _, _ = env.step(action)
        distance = float(np.abs(data.qpos[:2] - goal).sum())
        ctrl = ctrl_weight * float(np.sum(action.astype(np.float64) ** 2))
        assert reward == pytest.approx(-distance + offset + survive - ctrl - _contact_cost(env))
        if terminated:
            break


def test_ant_dir_angle_rewards_projected_velocity():
    angle = 2.0
    env = make_family("ant-dir", "angle").make_env({"angle": angle})
    env.reset(seed=4)
    data, dt = env.unwrapped.data, env.unwrapped.dt
    for action in _actions(env, 10):
        xy_before = data.qpos[:2].copy()
        _, reward, _, _, _ = env.step(action)
        v = (data.qpos[:2] - xy_before) / dt
        ctrl = 0.5 * float(np.sum(action.astype(np.float64) ** 2))
        expected = np.cos(angle) * v[0] + np.sin(angle) * v[1] + 1.0 - ctrl - _contact_cost(env)
        assert reward == pytest.approx(expected)


def test_task_distributions_per_version():
    rng = np.random.default_rng(0)
    vel = [t["velocity"] for t in make_family("halfcheetah-vel").sample_tasks(rng, 500)]
    assert 0 <= min(vel) and max(vel) <= 2 and max(vel) > 1.9
    vel = [t["velocity"] for t in make_family("halfcheetah-vel", "rothfuss2019").sample_tasks(rng, 500)]
    assert max(vel) <= 3 and max(vel) > 2.9
    dirs = {t["direction"] for t in make_family("halfcheetah-dir").sample_tasks(rng, 50)}
    assert dirs == {-1.0, 1.0}
    angles = [t["angle"] for t in make_family("ant-dir", "angle").sample_tasks(rng, 200)]
    assert 0 <= min(angles) and max(angles) < 2 * np.pi
    square = np.array([t["goal"] for t in make_family("ant-goal").sample_tasks(rng, 500)])
    assert np.abs(square).max() <= 3 and np.linalg.norm(square, axis=1).max() > 3  # corners are reachable
    disc = np.array([t["goal"] for t in make_family("ant-goal", "rothfuss2019").sample_tasks(rng, 500)])
    assert np.linalg.norm(disc, axis=1).max() <= 3


@pytest.mark.parametrize("name,version,horizon", [("halfcheetah-vel", "finn2017", 200),
                                                  ("halfcheetah-vel", "gym-v5", 200),
                                                  ("halfcheetah-vel", "rothfuss2019", 100),
                                                  ("halfcheetah-dir", "rothfuss2019", 100),
                                                  ("ant-goal", "rothfuss2019", 200)])
def test_episode_truncates_at_the_versions_horizon(name, version, horizon):
    family = make_family(name, version)
    assert family.horizon == horizon
    env = family.make_env()
    env.reset(seed=0)
    zero = np.zeros(family.action_space.shape, dtype=np.float32)
    for t in range(1, horizon + 1):
        obs, _, terminated, truncated, _ = env.step(zero)
        assert obs.dtype == np.float32 and not terminated
        assert truncated == (t == horizon)


@pytest.mark.parametrize("name", ["halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir", "ant-goal"])
def test_tasks_round_trip_through_json_and_get_task(name):
    family = make_family(name)
    env = family.make_env()
    for task in family.sample_tasks(np.random.default_rng(5), 3):
        restored = json.loads(json.dumps(task))
        assert restored == task
        env.set_task(restored)
        assert env.get_task() == task
        assert family.oracle_features(task).dtype == np.float32


def test_set_task_switches_the_reward_in_place():
    env = make_family("halfcheetah-vel").make_env({"velocity": 0.0})
    model = env.unwrapped.model
    actions = _actions(env, 5)
    runs = []
    for v in (0.0, 2.0):
        env.set_task({"velocity": v})
        env.reset(seed=0)
        runs.append([env.step(a)[1] for a in actions])
    assert env.unwrapped.model is model
    assert not np.allclose(runs[0], runs[1])


def test_ant_termination_can_be_switched_off():
    family = make_family("ant-vel", terminate_when_unhealthy=False)
    env = family.make_env()
    env.reset(seed=0)
    for action in _actions(env, 200):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
    assert truncated


def test_unknown_version_is_a_family_error():
    with pytest.raises(FamilyError, match="allowed: finn2017, gym-v5, rothfuss2019"):
        make_family("halfcheetah-vel", "nope")


def test_gymnasium_ids_make_task_envs():
    import metarl.envs  # noqa: F401  (registers the metarl/ ids)

    env = gym.make("metarl/HalfCheetahVel-v0", version="rothfuss2019", task={"velocity": 2.5})
    assert env.get_wrapper_attr("get_task")() == {"velocity": 2.5}
    assert env.unwrapped.horizon == 100
    env.get_wrapper_attr("set_task")({"velocity": 1.0})
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[0].dtype == np.float32
    assert "metarl/AntGoal-v0" in gym.registry and "metarl/TabularMDP-v0" in gym.registry


def test_importing_envs_does_not_load_mujoco():
    code = ("import sys, metarl.envs; assert 'mujoco' not in sys.modules; "
            "assert 'metarl.envs.locomotion' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
