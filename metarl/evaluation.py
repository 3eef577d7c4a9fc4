"""Sampling along the adaptation path (θ → φ_1 → … → φ_K), shared by training and meta-test, and the
meta-test itself: K-step adaptation curves on held-out tasks drawn from their own seed stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metarl import seeding
from metarl.adaptation import PolicyBatch
from metarl.families import TaskFamily
from metarl.learner import Learner
from metarl.policies import to_numpy
from metarl.rollout import RolloutPool, Rollouts


@dataclass
class AdaptationPath:
    """Rollouts sampled with φ_0 = θ, φ_1, …, φ_K and their learner batches; the last one is the query set."""

    rollouts: list[Rollouts] = field(default_factory=list)
    batches: list[PolicyBatch] = field(default_factory=list)
    time_sample_s: float = 0.0
    time_adapt_s: float = 0.0

    @property
    def supports(self) -> list[PolicyBatch]:
        return self.batches[:-1]

    @property
    def query(self) -> PolicyBatch:
        return self.batches[-1]


def sample_adaptation_path(pool: RolloutPool, learner: Learner, tasks: list[dict], episodes: int, steps: int,
                           seeds_for_step: Callable[[int], list[int]]) -> AdaptationPath:
    """Step k samples with φ_k, then adapts on everything sampled so far to get φ_{k+1}."""
    path = AdaptationPath()
    params = learner.expanded_theta(len(tasks))
    for k in range(steps + 1):
        t0 = time.perf_counter()
        rollouts = pool.sample(tasks, to_numpy(params), episodes, seeds_for_step(k))
        t1 = time.perf_counter()
        path.rollouts.append(rollouts)
        path.batches.append(learner.batch(rollouts))
        if k < steps:
            params = learner.adapt(path.batches)
        path.time_sample_s += t1 - t0
        path.time_adapt_s += time.perf_counter() - t1
    return path


def evaluate(pool: RolloutPool, learner: Learner, family: TaskFamily, seed: int, num_tasks: int, steps: int,
             episodes: int) -> dict[str, Any]:
    """The eval JSON of DESIGN.md for ``num_tasks`` held-out tasks."""
    tasks = family.sample_tasks(seeding.generator(seed, seeding.EVAL_TASKS), num_tasks)
    path = sample_adaptation_path(pool, learner, tasks, episodes, steps,
                                  lambda k: seeding.rollout_seeds(seed, seeding.EVAL_ROLLOUTS, 0, k, num_tasks))
    returns = np.stack([r.episode_returns().mean(axis=1) for r in path.rollouts])  # [steps + 1, n]
    success = None
    if getattr(family, "reports_success", False):
        success = [float(r.success.mean()) for r in path.rollouts]
    return {
        "family": family.name,
        "version": family.version,
        "num_tasks": num_tasks,
        "seed": seed,
        "steps": list(range(steps + 1)),
        "mean_return": returns.mean(axis=1).tolist(),
        "std_return": returns.std(axis=1).tolist(),
        "per_task_return": returns.T.tolist(),
        "success_rate": success,
    }
