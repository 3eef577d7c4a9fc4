"""rollout.py: the in-process RolloutWorker and the Ray RolloutPool sample each task with its own parameters in
its own task, deterministically whatever the number of workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metarl.envs.navigation import BatchedNavigation2D, Navigation2DFamily, velocity

from metarl.policies import expand, to_numpy
from metarl.rollout import RolloutPool, Rollouts, RolloutWorker

HORIZON = 12
FAMILY = {"name": "2d-navigation", "version": "finn2017", "kwargs": {"horizon": HORIZON}}
POLICY = {"hidden_sizes": (4,), "activation": "tanh", "init_log_std": 0.0}
GOALS = [[0.3, -0.2], [-0.4, 0.1], [0.05, 0.45], [-0.25, -0.35], [0.2, 0.2]]
# Task 4's mean is outside the [-1, 1] action box: the recorded action is the sampled one, the env moves by the clip.
BIASES = np.array([[0.18, -0.15], [0.36, -0.3], [-0.54, 0.45], [0.72, 0.6], [2.5, -3.0]], dtype=np.float32)
TASKS = [{"goal": g} for g in GOALS]
SEEDS = [101, 102, 103, 104, 105]


def constant_params(worker_or_policy) -> dict[str, np.ndarray]:
    """Per-task parameters whose Gaussian has mean BIASES[i] everywhere and (numerically) no noise."""
    policy = getattr(worker_or_policy, "policy", worker_or_policy)
    theta = policy.init_params(torch.Generator().manual_seed(0))
    params = {k: np.zeros((len(TASKS), *v.shape), dtype=np.float32) for k, v in theta.items()}
    params["layer1.bias"][:] = BIASES
    params["log_std"][:] = -30.0
    return params


def expected_nav(bias: np.ndarray, goal, T: int):
    """Observations and rewards of a 2D-nav episode that applies the same action every step."""
    step = velocity(bias, 1.0)  # finn2017: actions in [-1, 1] are scaled to velocities of at most 0.1
    pos = np.zeros(2)
    obs, rewards = [], []
    for _ in range(T):
        obs.append(pos.copy())
        pos = pos + step
        rewards.append(-np.linalg.norm(pos - np.asarray(goal)))
    return np.asarray(obs), np.asarray(rewards)


def check_constant_rollouts(r: Rollouts, episodes: int) -> None:
    n = len(TASKS)
    assert r.obs.shape == (n, episodes, HORIZON, 2)
    assert r.actions.shape == (n, episodes, HORIZON, 2)
    assert r.rewards.shape == r.mask.shape == (n, episodes, HORIZON)
    assert np.all(r.mask == 1) and r.env_steps == n * episodes * HORIZON
    for i in range(n):
        obs, rewards = expected_nav(BIASES[i], GOALS[i], HORIZON)
        np.testing.assert_allclose(r.actions[i], np.broadcast_to(BIASES[i], (episodes, HORIZON, 2)), atol=1e-7)
        np.testing.assert_allclose(r.obs[i], np.broadcast_to(obs, (episodes, HORIZON, 2)), atol=1e-6)
        np.testing.assert_allclose(r.rewards[i], np.broadcast_to(rewards, (episodes, HORIZON)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.episode_returns()[i], rewards.sum(), rtol=1e-5)


def test_worker_uses_each_tasks_parameters_and_task():
    worker = RolloutWorker(FAMILY, POLICY)
    check_constant_rollouts(worker.sample(TASKS, constant_params(worker), episodes=3, seeds=SEEDS), 3)


def test_worker_chunks_tasks_when_more_envs_than_max_envs():
    worker = RolloutWorker(FAMILY, POLICY, max_envs=4)  # 2 tasks × 2 episodes per chunk -> 3 chunks
    check_constant_rollouts(worker.sample(TASKS, constant_params(worker), episodes=2, seeds=SEEDS), 2)


@pytest.mark.parametrize("version, whole", [("finn2017", True), ("gym-v5", False)])
def test_authors_cheetah_samples_a_workers_paper_share_as_one_batch(version, whole):
    """20 tasks × 27 episodes (the Dir preset's share per worker with the authors' batch) in one chunk where the
    episodes are rollout states, in chunks where each holds an MjData."""
    worker = RolloutWorker({"name": "halfcheetah-vel", "version": version, "kwargs": {}}, POLICY)
    assert (worker.max_envs >= 20 * 27) == whole


def test_gymnasium_env_path_matches_batched_env():
    params = to_numpy(expand(RolloutWorker(FAMILY, POLICY).policy.init_params(torch.Generator().manual_seed(3)),
                             len(TASKS)))
    batched = RolloutWorker(FAMILY, POLICY).sample(TASKS, params, episodes=3, seeds=SEEDS)
    gym_worker = RolloutWorker(FAMILY, POLICY)
    gym_worker.family.make_batched_env = None  # force the GymBatchedEnv over Navigation2DEnv instances
    via_gym = gym_worker.sample(TASKS, params, episodes=3, seeds=SEEDS)
    assert type(gym_worker._env(15)).__name__ == "GymBatchedEnv"
    for name in ("obs", "actions", "rewards", "mask"):
        np.testing.assert_allclose(getattr(via_gym, name), getattr(batched, name), atol=1e-6, err_msg=name)


def test_seeds_control_noise_per_task():
    worker = RolloutWorker(FAMILY, POLICY)
    params = to_numpy(expand(worker.policy.init_params(torch.Generator().manual_seed(1)), len(TASKS)))
    a = worker.sample(TASKS, params, 4, SEEDS)
    b = worker.sample(TASKS, params, 4, SEEDS)
    c = worker.sample(TASKS, params, 4, SEEDS[:2] + [999] + SEEDS[3:])
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.actions[2], c.actions[2])
    for i in (0, 1, 3, 4):  # other tasks are unaffected by task 2's seed
        assert np.array_equal(a.actions[i], c.actions[i])
    # episodes within a task get different noise
    assert not np.array_equal(a.actions[0, 0], a.actions[0, 1])
    # a task's episodes do not depend on which other tasks are sampled with it
    alone = worker.sample(TASKS[3:4], {k: v[3:4] for k, v in params.items()}, 4, SEEDS[3:4])
    assert np.array_equal(alone.actions[0], a.actions[3]) and np.array_equal(alone.rewards[0], a.rewards[3])


class _TerminatingBatchedNav(BatchedNavigation2D):
    """Sub-env j terminates after 2 + j % 4 steps."""

    def reset(self, seeds):
        self._t = 0
        return super().reset(seeds)

    def step(self, actions):
        obs, rewards, _, info = super().step(actions)
        self._t += 1
        return obs, rewards, self._t >= 2 + np.arange(self.num_envs) % 4, info


class TerminatingNavigation(Navigation2DFamily):
    def make_batched_env(self, n):
        return _TerminatingBatchedNav(n)


def test_early_termination_is_masked():
    spec = {"name": f"{__name__}:TerminatingNavigation", "version": "finn2017", "kwargs": {"horizon": 10}}
    worker = RolloutWorker(spec, POLICY)
    n, E = 3, 3
    params = to_numpy(expand(worker.policy.init_params(torch.Generator().manual_seed(0)), n))
    r = worker.sample(TASKS[:n], params, E, SEEDS[:n])
    assert r.mask.shape == (n, E, 10)
    lengths = 2 + (np.arange(n * E) % 4).reshape(n, E)
    np.testing.assert_array_equal(r.mask, (np.arange(10) < lengths[..., None]).astype(np.float32))
    assert np.all(r.rewards[r.mask == 0] == 0) and np.all(r.rewards[r.mask == 1] < 0)
    assert r.env_steps == lengths.sum()
    np.testing.assert_allclose(r.episode_returns(), r.rewards.sum(-1))


def test_rollouts_concat():
    worker = RolloutWorker(FAMILY, POLICY)
    params = constant_params(worker)
    a = worker.sample(TASKS[:2], {k: v[:2] for k, v in params.items()}, 2, SEEDS[:2])
    b = worker.sample(TASKS[2:], {k: v[2:] for k, v in params.items()}, 2, SEEDS[2:])
    check_constant_rollouts(Rollouts.concat([a, b]), 2)


# ------------------------------------------------------------------------------------------------- Ray pool


def _sample(pool, params, episodes=3):
    return pool.sample(TASKS, params, episodes, SEEDS)


def test_ray_pool_workers_use_each_tasks_parameters_and_task(ray_session):
    pool = RolloutPool(FAMILY, POLICY, num_workers=2)
    try:
        r = _sample(pool, constant_params(RolloutWorker(FAMILY, POLICY)))
        assert pool.worker_restarts == 0
    finally:
        pool.close()
    check_constant_rollouts(r, 3)


@pytest.mark.slow
def test_pool_results_do_not_depend_on_worker_count(ray_session):
    params = to_numpy(expand(RolloutWorker(FAMILY, POLICY).policy.init_params(torch.Generator().manual_seed(5)),
                             len(TASKS)))
    results = {}
    for workers in (0, 1, 2):  # one pool at a time: the session has 2 CPUs and each actor holds one
        pool = RolloutPool(FAMILY, POLICY, num_workers=workers)
        try:
            results[workers] = _sample(pool, params)
        finally:
            if workers:
                pool.close()
    ref = results[0]
    assert ref.obs.shape == (5, 3, HORIZON, 2) and ref.env_steps == 5 * 3 * HORIZON
    assert np.abs(ref.actions).max() > 0.2  # real noise, not a constant policy
    for workers in (1, 2):
        for name in ("obs", "actions", "rewards", "mask", "success"):
            assert np.array_equal(getattr(results[workers], name), getattr(ref, name)), (workers, name)


def test_pool_restarts_a_dead_worker_and_resubmits_its_share(ray_session):
    import ray

    pool = RolloutPool(FAMILY, POLICY, num_workers=2)
    try:
        params = constant_params(RolloutWorker(FAMILY, POLICY))
        _sample(pool, params)
        ray.kill(pool._actors[0])  # a worker dies between two calls (node loss, OOM kill, ...)
        r = _sample(pool, params)
        assert pool.worker_restarts == 1
    finally:
        pool.close()
    check_constant_rollouts(r, 3)


def test_mujoco_envs_are_built_once_and_reused_across_chunks():
    """Plain gymnasium envs (MuJoCo) are expensive: one set, grown to the largest chunk, serves every chunk, and
    chunking does not change what is sampled. (The locomotion families' own batched env is switched off here, so
    that the Gymnasium path a user family takes is what is tested.)"""
    spec = {"name": "halfcheetah-vel", "version": "rothfuss2019", "kwargs": {}}
    chunked, whole = RolloutWorker(spec, POLICY, max_envs=4), RolloutWorker(spec, POLICY, max_envs=128)
    for worker in (chunked, whole):
        worker.family.make_batched_env = None
    tasks = chunked.family.sample_tasks(np.random.default_rng(0), 5)
    params = to_numpy(expand(chunked.policy.init_params(torch.Generator().manual_seed(0)), 5))
    a, b = chunked.sample(tasks, params, 2, SEEDS), whole.sample(tasks, params, 2, SEEDS)
    assert a.obs.shape == (5, 2, 100, 17)
    for name in ("obs", "actions", "rewards", "mask"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert len(chunked._envs) == 1 and len(chunked._envs[0].envs) == 4  # 3 chunks (4, 4, 2 envs), one env set
