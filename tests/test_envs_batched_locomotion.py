"""envs/batched_locomotion.py: the locomotion families' batched MuJoCo env equals their Gymnasium env.

From the same reset seeds (so the same initial states) and the same actions, every step's observation, reward,
termination and truncation must be exactly equal (np.array_equal, no tolerance) to the family's own Gymnasium env
stepped one at a time, and a rollout worker's batched samples must equal its Gymnasium path's. The MAML authors'
cheetah (finn2017), whose batched path is MuJoCo's rollout without warm start plus planar kinematics, must agree to
rounding: rewards to 1e-9, float32 observations to 1e-6 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metarl.envs.locomotion import HalfCheetahCOMTaskEnv

from metarl.families import make_family
from metarl.policies import expand, to_numpy
from metarl.rollout import RolloutWorker

# (family, version, kwargs): every task kind; the narrow healthy range makes Ant episodes terminate at different steps.
CASES = [("halfcheetah-vel", "finn2017", {}), ("halfcheetah-dir", "finn2017", {}), ("halfcheetah-vel", "gym-v5", {}),
         ("halfcheetah-vel", "finn2017", {"frame_skip": 2}),
         ("halfcheetah-dir", "rothfuss2019", {}),
         ("ant-vel", "finn2017", {"healthy_z_range": (0.45, 1.0)}), ("ant-dir", "finn2017", {}),
         ("ant-dir", "angle", {}), ("ant-goal", "finn2017", {}), ("ant-goal", "rothfuss2019", {})]


def _exact(family) -> bool:
    """False for the authors' cheetah, whose batched path agrees with its Gymnasium env to rounding only."""
    return not isinstance(family.make_env().unwrapped, HalfCheetahCOMTaskEnv)


def _assert_equal(actual, expected, exact: bool, rtol: float, message=None):
    if exact:
        assert np.array_equal(actual, expected), message
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol, err_msg=str(message))


def _step_gym_envs(family, tasks, seeds, actions):
    """Per env: obs after reset and after each step, rewards, terminated, truncated; stops an env when it ends."""
    out = []
    for i, (task, seed) in enumerate(zip(tasks, seeds)):
        env = family.make_env(task)
        obs = [env.reset(seed=seed)[0]]
        rewards, terminated, truncated = [], [], []
        for a in actions[:, i]:
            o, r, term, trunc, _ = env.step(a)
            obs.append(o)
            rewards.append(r)
            terminated.append(term)
            truncated.append(trunc)
            if term or trunc:
                break
        out.append((np.asarray(obs), np.asarray(rewards), np.asarray(terminated), np.asarray(truncated)))
    return out


@pytest.mark.parametrize("name,version,kwargs", CASES)
def test_batched_env_equals_gymnasium_env_step_for_step(name, version, kwargs):
    family = make_family(name, version, horizon=40, **kwargs)
    n = 4
    tasks = family.sample_tasks(np.random.default_rng(1), n)
    seeds = [11, 12, 13, 14]
    space = family.action_space
    actions = np.random.default_rng(2).uniform(space.low, space.high, (family.horizon, n, *space.shape))
    actions = actions.astype(np.float32)
    expected = _step_gym_envs(family, tasks, seeds, actions)
    exact = _exact(family)

    env = family.make_batched_env(n)
    env.set_tasks(tasks)
    obs = env.reset(seeds)
    assert obs.dtype == np.float32 and obs.shape == (n, *family.observation_space.shape)
    for i in range(n):
        _assert_equal(obs[i], expected[i][0][0], exact, 1e-6)
    for t in range(family.horizon):
        obs, rewards, terminated, info = env.step(actions[t])
        for i, (e_obs, e_rew, e_term, e_trunc) in enumerate(expected):
            if t >= len(e_rew):  # ended before: not stepped any more
                assert rewards[i] == 0.0 and terminated[i] == e_term[-1]
                continue
            _assert_equal(obs[i], e_obs[t + 1], exact, 1e-6, (t, i))
            _assert_equal(rewards[i], e_rew[t], exact, 1e-9, (t, i))
            assert terminated[i] == e_term[t] and info["truncated"][i] == e_trunc[t], (t, i)
    if name == "ant-vel":  # the case is built so that termination is exercised, at different steps
        lengths = [len(e[1]) for e in expected]
        assert min(lengths) < family.horizon and len(set(lengths)) > 1, lengths


@pytest.mark.parametrize("name", ["halfcheetah-vel", "ant-goal"])
def test_worker_samples_the_same_through_batched_and_gymnasium_envs(name):
    spec = {"name": name, "version": None, "kwargs": {"horizon": 25}}
    policy = {"hidden_sizes": (8,), "activation": "tanh", "init_log_std": 0.0}
    batched_worker = RolloutWorker(spec, policy)
    tasks = batched_worker.family.sample_tasks(np.random.default_rng(3), 3)
    params = to_numpy(expand(batched_worker.policy.init_params(torch.Generator().manual_seed(0)), len(tasks)))
    batched = batched_worker.sample(tasks, params, episodes=2, seeds=[5, 6, 7])
    assert type(batched_worker._env(6)).__name__ == "BatchedLocomotionEnv"
    gym_worker = RolloutWorker(spec, policy)
    gym_worker.family.make_batched_env = None  # a family with only make_env: the GymBatchedEnv path
    via_gym = gym_worker.sample(tasks, params, episodes=2, seeds=[5, 6, 7])
    assert type(gym_worker._env(6)).__name__ == "GymBatchedEnv"
    exact = _exact(batched_worker.family)
    for field in ("obs", "actions", "rewards", "mask"):
        _assert_equal(getattr(batched, field), getattr(via_gym, field), exact, 1e-6, field)
