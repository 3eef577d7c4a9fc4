"""envs/navigation.py: the 2D-navigation family's dynamics, reward and versions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.families import make_family


@pytest.mark.parametrize("version, action, move", [
    ("finn2017", [2.0, -0.5], [0.1, -0.05]),        # actions in [-1, 1], scaled by 0.1 (rllab's normalize)
    ("raw-velocity", [2.0, -0.05], [0.1, -0.05]),   # actions are velocities, clipped to ±0.1
])
def test_action_to_velocity_and_reward(version, action, move):
    family = make_family("2d-navigation", version)
    goal = [0.3, -0.4]
    env = family.make_env({"goal": goal})
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs, [0.0, 0.0])
    obs, reward, terminated, truncated, _ = env.step(np.asarray(action, dtype=np.float32))
    np.testing.assert_allclose(obs, move, atol=1e-7)
    assert reward == pytest.approx(-np.linalg.norm(np.asarray(move) - goal))
    assert not terminated and not truncated
    assert family.action_space.high[0] == (1.0 if version == "finn2017" else pytest.approx(0.1))


@pytest.mark.parametrize("version", ["finn2017", "raw-velocity"])
def test_batched_env_matches_plain_env(version):
    family = make_family("2d-navigation", version)
    tasks = family.sample_tasks(np.random.default_rng(0), 3)
    actions = np.random.default_rng(1).normal(0, 1, size=(family.horizon, 3, 2))
    batched = family.make_batched_env(3)
    batched.set_tasks(tasks)
    batched.reset([0, 1, 2])
    envs = [family.make_env(t) for t in tasks]
    for env in envs:
        env.reset(seed=0)
    for t in range(family.horizon):
        obs, rewards, dones, _ = batched.step(actions[t])
        for i, env in enumerate(envs):
            o, r, terminated, *_ = env.step(actions[t, i])
            np.testing.assert_allclose(obs[i], o, atol=1e-6)
            assert rewards[i] == pytest.approx(r, abs=1e-6)
            assert dones[i] == terminated


@pytest.mark.parametrize("version, scale", [("finn2017", 10.0), ("raw-velocity", 1.0)])
def test_episode_ends_within_goal_tolerance_on_both_axes(version, scale):
    family = make_family("2d-navigation", version)
    env = family.make_env({"goal": [0.1, 0.0]})
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.asarray([0.095, 0.011], dtype=np.float32) * scale)  # y is 0.011 off
    assert not terminated
    _, reward, terminated, _, _ = env.step(np.asarray([0.0, -0.002], dtype=np.float32) * scale)
    assert terminated and reward == pytest.approx(-np.hypot(0.005, 0.009), abs=1e-6)
    never = make_family("2d-navigation", version, goal_tolerance=0.0).make_env({"goal": [0.0, 0.0]})
    never.reset(seed=0)
    assert not never.step(np.zeros(2, dtype=np.float32))[2]


def test_sampler_masks_the_steps_after_the_goal_is_reached():
    from metarl.rollout import RolloutWorker

    # A policy whose mean is 0 with a tiny std never leaves the origin: a goal at the origin ends every episode
    # on its first step, and a goal far away never ends one.
    worker = RolloutWorker({"name": "2d-navigation"}, {"hidden_sizes": [8], "init_log_std": -20.0})
    theta = worker.policy.init_params(torch.Generator().manual_seed(0))
    params = {k: np.zeros((2, *v.shape), dtype=np.float32) for k, v in theta.items()}
    params["log_std"][:] = -20.0
    out = worker.sample([{"goal": [0.0, 0.0]}, {"goal": [0.4, 0.4]}], params, episodes=3, seeds=[0, 1])
    assert out.mask[0].sum(-1).tolist() == [1.0, 1.0, 1.0]
    assert out.mask[1].sum(-1).tolist() == [100.0, 100.0, 100.0]
    assert out.episode_returns()[0] == pytest.approx(np.zeros(3), abs=1e-6)


def test_goals_are_uniform_in_the_square_and_json_serialisable():
    import json

    tasks = make_family("2d-navigation").sample_tasks(np.random.default_rng(3), 500)
    goals = np.asarray([t["goal"] for t in tasks])
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and goals.std() > 0.25
    assert json.loads(json.dumps(tasks)) == tasks


def test_negative_goal_tolerance_is_refused():
    from metarl.families import FamilyError

    with pytest.raises(FamilyError, match="goal_tolerance >= 0"):
        make_family("2d-navigation", goal_tolerance=-0.1)
