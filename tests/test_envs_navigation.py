"""envs/navigation.py: the 2D-navigation family's dynamics, reward and versions."""

from __future__ import annotations

import numpy as np
import pytest

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
        obs, rewards, _, _ = batched.step(actions[t])
        for i, env in enumerate(envs):
            o, r, *_ = env.step(actions[t, i])
            np.testing.assert_allclose(obs[i], o, atol=1e-6)
            assert rewards[i] == pytest.approx(r, abs=1e-6)


def test_goals_are_uniform_in_the_square_and_json_serialisable():
    import json

    tasks = make_family("2d-navigation").sample_tasks(np.random.default_rng(3), 500)
    goals = np.asarray([t["goal"] for t in tasks])
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and goals.std() > 0.25
    assert json.loads(json.dumps(tasks)) == tasks
