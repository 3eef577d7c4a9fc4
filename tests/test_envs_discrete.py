"""Bandit and tabular-MDP families: reward and transition semantics, and batched == plain env, draw for draw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metarl.families import make_family


@pytest.mark.parametrize("name,kwargs", [("bandit", {}), ("bandit", {"num_arms": 3, "horizon": 7}),
                                         ("tabular-mdp", {}), ("tabular-mdp", {"num_states": 4, "num_actions": 2})])
def test_batched_env_matches_plain_envs(name, kwargs):
    family = make_family(name, **kwargs)
    tasks = family.sample_tasks(np.random.default_rng(0), 3)
    per_env = [task for task in tasks for _ in range(2)]  # the sampler repeats each task object per episode
    seeds = [11, 12, 13, 14, 15, 11]
    steps = family.horizon + 4  # past the horizon the noise stream must keep agreeing
    actions = np.random.default_rng(1).integers(family.action_space.n, size=(steps, len(seeds)))

    batched = family.make_batched_env(len(seeds))
    batched.set_tasks(per_env)
    obs = [batched.reset(seeds)]
    rewards = []
    for t in range(steps):
        o, r, terminated, _ = batched.step(actions[t])
        obs.append(o)
        rewards.append(r)
        assert o.dtype == np.float32 and not terminated.any()
    for i, (task, seed) in enumerate(zip(per_env, seeds)):
        env = family.make_env(task)
        assert np.array_equal(env.reset(seed=seed)[0], obs[0][i])
        for t in range(steps):
            o, r, _, truncated, _ = env.step(actions[t, i])
            assert np.array_equal(o, obs[t + 1][i]) and r == rewards[t][i]
            assert truncated == (t + 1 >= family.horizon)


def test_bandit_pays_bernoulli_rewards():
    family = make_family("bandit", num_arms=3, horizon=1000)
    env = family.make_env({"probs": [0.0, 1.0, 0.3]})
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [1.0] and family.observation_space.contains(obs)
    pulls = {arm: [env.step(arm)[1] for _ in range(300)] for arm in range(3)}
    assert set(pulls[0]) == {0.0} and set(pulls[1]) == {1.0}
    assert abs(np.mean(pulls[2]) - 0.3) < 0.08


def test_bandit_tasks_are_uniform_probabilities():
    family = make_family("bandit")
    assert family.action_space.n == 5 and family.horizon == 10
    probs = np.array([t["probs"] for t in family.sample_tasks(np.random.default_rng(0), 400)])
    assert probs.shape == (400, 5) and 0 <= probs.min() and probs.max() <= 1
    assert abs(probs.mean() - 0.5) < 0.03


def _deterministic_mdp(num_states: int = 3, num_actions: int = 2) -> dict:
    """Action a moves from s to (s + a + 1) mod S; mean reward 10*s + a."""
    transitions = np.zeros((num_states, num_actions, num_states))
    for s in range(num_states):
        for a in range(num_actions):
            transitions[s, a, (s + a + 1) % num_states] = 1.0
    means = 10.0 * np.arange(num_states)[:, None] + np.arange(num_actions)[None, :]
    return {"transitions": transitions.tolist(), "reward_means": means.tolist()}


def test_tabular_mdp_follows_transitions_and_reward_means():
    family = make_family("tabular-mdp", num_states=3, num_actions=2, horizon=2000)
    env = family.make_env(_deterministic_mdp())
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [1.0, 0.0, 0.0]  # episodes start in state 0, observed one-hot
    state, noise = 0, []
    for t in range(2000):
        action = t % 2
        obs, reward, _, _, _ = env.step(action)
        noise.append(reward - (10.0 * state + action))
        state = (state + action + 1) % 3
        assert obs.argmax() == state and obs.sum() == 1.0
    assert abs(np.mean(noise)) < 0.1 and abs(np.std(noise) - 1.0) < 0.1  # r ~ N(mu(s, a), 1)


def test_tabular_mdp_task_distribution():
    family = make_family("tabular-mdp")
    assert (family.observation_space.shape, family.action_space.n, family.horizon) == ((10,), 5, 10)
    tasks = family.sample_tasks(np.random.default_rng(0), 50)
    assert json.loads(json.dumps(tasks[0])) == tasks[0]
    transitions = np.array([t["transitions"] for t in tasks])
    means = np.array([t["reward_means"] for t in tasks])
    assert transitions.shape == (50, 10, 5, 10) and np.allclose(transitions.sum(-1), 1.0)
    assert abs(means.mean() - 1.0) < 0.1 and abs(means.std() - 1.0) < 0.1
    assert family.oracle_features(tasks[0]).shape == (10 * 5 * 10 + 10 * 5,)


def test_same_seed_same_episode_and_get_task_round_trips():
    family = make_family("tabular-mdp")
    task = family.sample_tasks(np.random.default_rng(3), 1)[0]
    env = family.make_env(task)
    runs = []
    for _ in range(2):
        env.reset(seed=7)
        runs.append([env.step(a % 5)[1] for a in range(10)])
    assert runs[0] == runs[1]
    assert env.get_task() == task
