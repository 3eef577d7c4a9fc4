"""Rand-params families: tasks scale the compiled model, switching tasks restores the saved originals exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metarl.envs.rand_params import LOG_SCALE_LIMIT, RAND_PARAMS

from metarl.families import make_family

NAMES = ["hopper-rand-params", "walker2d-rand-params"]


def _model_arrays(env) -> dict[str, np.ndarray]:
    """Every numpy array of the compiled model (the randomised ones and everything derived from them)."""
    model = env.unwrapped.model
    arrays = {}
    for key in dir(model):
        if key.startswith("_"):
            continue
        value = getattr(model, key, None)
        if isinstance(value, np.ndarray):
            arrays[key] = value.copy()
    return arrays


def _rollout(env, seed: int = 0, steps: int = 15) -> np.ndarray:
    obs = [env.reset(seed=seed)[0]]
    env.action_space.seed(seed)
    for _ in range(steps):
        obs.append(env.step(env.action_space.sample())[0])
    return np.stack(obs)


@pytest.mark.parametrize("name", NAMES)
def test_switching_tasks_back_restores_the_model_exactly(name):
    family = make_family(name)
    env = family.make_env()
    original = _model_arrays(env)
    task_a, task_b = family.sample_tasks(np.random.default_rng(0), 2)
    env.set_task(task_a)
    after_a = _model_arrays(env)
    for key in RAND_PARAMS:
        assert np.array_equal(after_a[key], original[key] * np.asarray(task_a[key]))
    env.set_task(task_b)
    env.set_task(task_a)
    after_aba = _model_arrays(env)
    assert all(np.array_equal(after_a[k], after_aba[k]) for k in original)
    env.set_task({})  # the default task: every multiplier 1
    restored = _model_arrays(env)
    assert [k for k in original if not np.array_equal(original[k], restored[k])] == []


@pytest.mark.parametrize("name", NAMES)
def test_set_task_changes_the_dynamics(name):
    family = make_family(name)
    env = family.make_env()
    task_a, task_b = family.sample_tasks(np.random.default_rng(1), 2)
    env.set_task(task_a)
    run_a = _rollout(env)
    env.set_task(task_b)
    run_b = _rollout(env)
    assert not np.allclose(run_a, run_b)
    env.set_task(task_a)
    assert np.array_equal(run_a, _rollout(env))
    assert np.array_equal(run_a, _rollout(family.make_env(task_a)))


@pytest.mark.parametrize("name", NAMES)
def test_tasks_are_json_multipliers_in_range(name):
    family = make_family(name)
    env = family.make_env()
    model = env.unwrapped.model
    for task in family.sample_tasks(np.random.default_rng(2), 5):
        assert json.loads(json.dumps(task)) == task
        assert set(task) == set(RAND_PARAMS)
        for key, base in RAND_PARAMS.items():
            mult = np.asarray(task[key])
            assert mult.shape == getattr(model, key).shape
            assert mult.min() >= base ** -LOG_SCALE_LIMIT and mult.max() <= base ** LOG_SCALE_LIMIT
        env.set_task(task)
        assert env.get_task() == task
        assert family.oracle_features(task).shape == (sum(np.asarray(task[k]).size for k in RAND_PARAMS),)


def test_default_task_is_the_unmodified_model():
    family = make_family("hopper-rand-params")
    plain = family.make_env()
    assert np.array_equal(_rollout(plain), _rollout(family.make_env({k: 1.0 for k in RAND_PARAMS})))
    assert family.horizon == 200
    assert plain.observation_space.dtype == np.float32


def test_wrong_shapes_and_keys_are_rejected():
    env = make_family("hopper-rand-params").make_env()
    with pytest.raises(ValueError, match="shape"):
        env.set_task({"body_mass": [1.0, 2.0]})
    with pytest.raises(ValueError, match="unknown"):
        env.set_task({"gravity": 2.0})
