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
from metarl.config import Config
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
                           seeds_for_step: Callable[[int], list[int]],
                           inner_lr: tuple[float, ...] | None = None,
                           query_episodes: int | None = None) -> AdaptationPath:
    """Step k samples with φ_k, then adapts on everything sampled so far to get φ_{k+1} (with the learner's inner
    step sizes, or ``inner_lr`` per step where given). ``query_episodes``: episodes of φ_K if not ``episodes``."""
    path = AdaptationPath()
    params = learner.expanded_theta(len(tasks))
    for k in range(steps + 1):
        t0 = time.perf_counter()
        n_episodes = query_episodes if k == steps and query_episodes else episodes
        rollouts = pool.sample(tasks, to_numpy(params), n_episodes, seeds_for_step(k))
        t1 = time.perf_counter()
        path.rollouts.append(rollouts)
        path.batches.append(learner.batch(rollouts))
        if k < steps:
            params = learner.adapt(path.batches, inner_lr)
        path.time_sample_s += t1 - t0
        path.time_adapt_s += time.perf_counter() - t1
    return path


def evaluate(pool: RolloutPool, learner: Learner, family: TaskFamily, seed: int, num_tasks: int, steps: int,
             episodes: int, inner_lr: tuple[float, ...] | None = None,
             tasks: list[dict] | None = None) -> dict[str, Any]:
    """The eval JSON of DESIGN.md for ``num_tasks`` held-out tasks: returns after 0..K inner steps, each step
    adapting on fresh rollouts of the policy adapted so far. Test tasks come from their own seed stream (never a
    training task's), and the same seed gives the same tasks and rollouts, so results are reproducible; ``tasks``
    replaces them with a given list (e.g. a paper's own test goals, so that both score the same tasks).

    A family with a separate test split offers ``sample_test_tasks`` and meta-test draws only from it; one whose
    benchmark prescribes how many episodes of the adapted policy to score says so in ``evaluation_episodes``."""
    if tasks is None:
        sample = getattr(family, "sample_test_tasks", None) or family.sample_tasks
        tasks = sample(seeding.generator(seed, seeding.EVAL_TASKS), num_tasks)
    num_tasks = len(tasks)
    query_episodes = getattr(family, "evaluation_episodes", None) if steps > 0 else None
    path = sample_adaptation_path(pool, learner, tasks, episodes, steps,
                                  lambda k: seeding.rollout_seeds(seed, seeding.EVAL_ROLLOUTS, 0, k, num_tasks),
                                  inner_lr, query_episodes)
    returns = np.stack([r.episode_returns().mean(axis=1) for r in path.rollouts])  # [steps + 1, n]
    success = None
    if getattr(family, "reports_success", False):
        success = [float(r.success.mean()) for r in path.rollouts]
    std = returns.std(axis=1, ddof=1) if num_tasks > 1 else np.zeros(steps + 1)
    return {
        "family": family.name,
        "version": family.version,
        "num_tasks": num_tasks,
        "seed": seed,
        "episodes": episodes,
        "query_episodes": query_episodes or episodes,  # episodes of the final adapted policy
        "inner_lr": learner.step_sizes(steps, inner_lr),
        "steps": list(range(steps + 1)),
        "mean_return": returns.mean(axis=1).tolist(),
        "std_return": returns.std(axis=1).tolist(),
        "ci95_return": (1.96 * std / np.sqrt(num_tasks)).tolist(),  # normal approximation over tasks
        "per_task_return": returns.T.tolist(),
        "success_rate": success,
    }


def meta_test(pool: RolloutPool, learner: Learner, family: TaskFamily, config: Config,
              tasks: list[dict] | None = None) -> dict[str, Any]:
    """``evaluate`` with the config's ``eval:`` protocol (null episodes / inner_lr: the training values)."""
    protocol = config.eval
    inner_lr = protocol.inner_lr
    if inner_lr is not None and not isinstance(inner_lr, tuple):
        inner_lr = (inner_lr,)
    return evaluate(pool, learner, family, config.seed, protocol.num_tasks, protocol.steps,
                    protocol.episodes or config.sampler.episodes_per_task, inner_lr, tasks)
