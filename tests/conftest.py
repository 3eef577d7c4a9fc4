"""Shared fixtures: one local Ray session for the whole test run, and a tiny 2D-navigation rollout batch."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray (2 CPUs, no dashboard) shared by every test that needs it; shut down at session end."""
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def nav_rollouts():
    """A tiny batch of 2D-navigation rollouts (3 tasks × 4 episodes × horizon 10) from the in-process worker."""
    import torch

    from metarl.policies import expand, to_numpy
    from metarl.rollout import RolloutWorker

    family_spec = {"name": "2d-navigation", "version": "finn2017", "kwargs": {"horizon": 10}}
    policy_spec = {"hidden_sizes": (8,), "activation": "tanh", "init_log_std": 0.0}
    worker = RolloutWorker(family_spec, policy_spec)
    tasks = worker.family.sample_tasks(np.random.default_rng(0), 3)
    theta = worker.policy.init_params(torch.Generator().manual_seed(0))
    rollouts = worker.sample(tasks, to_numpy(expand(theta, 3)), episodes=4, seeds=[11, 12, 13])
    return {"worker": worker, "policy": worker.policy, "tasks": tasks, "theta": theta, "rollouts": rollouts,
            "family_spec": family_spec, "policy_spec": policy_spec}
