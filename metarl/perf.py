"""``metarl perf``: speed as ratios measured in one process, so that drift of a shared machine cancels out.

- sampler: env-steps/s of the rollout pool with policy inference ÷ (raw step rate of the same env × workers), and
  for MuJoCo families ÷ (bare ``mj_step`` rate of the family's model × workers): the physical limit.
- update: the learner's batched meta-update (TRPO) vs the per-task-loop reference on the same data.
- iteration: one meta-iteration of the 2D-navigation paper config, with its sample / adapt / update breakdown.
Every figure is the median of ``repeats`` runs after one warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl import seeding
from metarl.adaptation import InnerLoop, PolicyBatch
from metarl.algorithms.curvature import MetaCurvature
from metarl.algorithms.outer_objectives import MetaObjective
from metarl.algorithms.trust_region import trpo_step
from metarl.components import build
from metarl.config import load_config
from metarl.evaluation import sample_adaptation_path
from metarl.families import make_family
from metarl.learner import Learner, auto_task_chunk, resolve_device
from metarl.policies import Policy, expand, make_policy, to_numpy
from metarl.rollout import RolloutPool, init_ray

PRESET = Path(__file__).resolve().parent.parent / "configs" / "maml_trpo" / "2d_navigation.yaml"


def perf_sampler(family_name: str = "halfcheetah-vel", workers: int = 1, repeats: int = 5,
                 tasks_per_worker: int = 10, episodes: int = 20, version: str | None = None) -> dict[str, Any]:
    """A paper-sized load per worker (10 tasks × 20 episodes × the family's horizon).

    Each repeat times one pool call and then the raw env and the bare physics in the same worker processes right
    after it, and the ratios are taken per repeat, so that both sides of every ratio see the same core and the same
    machine speed (on a shared VM it drifts by ±15% within minutes).
    """
    family = make_family(family_name, version)
    spec = {"hidden_sizes": (64, 64), "activation": "tanh", "init_log_std": 0.0}
    policy = make_policy(family.observation_space, family.action_space, **spec)
    n = tasks_per_worker * max(workers, 1)
    tasks = family.sample_tasks(np.random.default_rng(0), n)
    params = to_numpy({k: v.contiguous() for k, v in expand(policy.init_params(torch.Generator().manual_seed(0)),
                                                             n).items()})
    if workers > 0:
        init_ray(None, max(workers, 1))
    pool = RolloutPool({"name": family_name, "version": family.version, "kwargs": {}}, spec, workers)
    rates, raws, physics = [], [], []
    try:
        pool.sample(tasks, params, episodes, list(range(n)))  # warm-up: actors start, envs are built
        for i in range(repeats):
            t0 = time.perf_counter()
            steps = pool.sample(tasks, params, episodes, list(range(n))).env_steps
            rates.append(steps / (time.perf_counter() - t0))
            raws.append(statistics.mean(pool.raw_step_rates(seed=i)))
            bare = pool.physics_step_rates(seed=i)
            physics.append(None if None in bare else statistics.mean(bare))
    finally:
        if workers > 0:
            pool.close()
    ratios = [rate / (raw * max(workers, 1)) for rate, raw in zip(rates, raws)]
    mujoco = None not in physics
    physics_ratios = [rate / (bare * max(workers, 1)) for rate, bare in zip(rates, physics)] if mujoco else []
    return {"env_steps_per_s": statistics.median(rates), "raw_env_steps_per_s": statistics.median(raws),
            "workers": workers, "ratio": statistics.median(ratios),
            "physics_steps_per_s": statistics.median(physics) if mujoco else None,
            "physics_ratio": statistics.median(physics_ratios) if mujoco else None, "family": family_name,
            "version": family.version}


def _synthetic_batch(policy: Policy, n: int, episodes: int, horizon: int, generator: torch.Generator,
                     device: torch.device) -> PolicyBatch:
    """Random data shaped like a real meta-batch (the update's cost does not depend on the values)."""
    B = episodes * horizon
    actions = (torch.randint(0, policy.out_dim, (n, B), generator=generator) if policy.discrete
               else torch.randn(n, B, policy.out_dim, generator=generator))
    return PolicyBatch(obs=torch.randn(n, B, policy.obs_dim, generator=generator).to(device),
                       actions=actions.to(device),
                       advantages=torch.randn(n, B, generator=generator).to(device),
                       mask=torch.ones(n, B).to(device))


def perf_update(family_name: str = "halfcheetah-vel", tasks: int = 40, episodes: int = 20, horizon: int = 100,
                repeats: int = 3, device: str = "auto") -> dict[str, Any]:
    """TRPO meta-update of a 64×64 tanh policy sized for the family (HalfCheetah-Vel finn2017: obs 20, actions 6)
    on random data, 40 tasks × 20 episodes × H=100 by default.

    ``batched_s`` is the learner's path (hand-derived curvature, task blocks sized for the device, see
    learner.auto_task_chunk), ``autograd_batched_s`` the same blocks with autograd's Hessian-vector products, and
    ``per_task_loop_s`` the per-task autograd reference."""
    dev = resolve_device(device)
    family = make_family(family_name)
    policy = make_policy(family.observation_space, family.action_space, (64, 64), "tanh")
    g = torch.Generator().manual_seed(0)
    theta = {k: v.to(dev) for k, v in policy.init_params(g).items()}
    support = _synthetic_batch(policy, tasks, episodes, horizon, g, dev)
    query = _synthetic_batch(policy, tasks, episodes, horizon, g, dev)
    settings = Learner(policy, theta, load_config(PRESET).algo, dev).trpo
    chunk = auto_task_chunk(dev, episodes * horizon, 64)

    def update(batched: bool, analytic: bool) -> Callable[[], None]:
        def run() -> None:
            objective = (MetaCurvature(policy, theta, [support], query, 0.1, task_chunk=chunk) if analytic
                         else MetaObjective(policy, [support], query, InnerLoop((0.1,)), batched=batched,
                                            task_chunk=chunk))
            trpo_step(objective, theta, settings)
            if dev.type == "cuda":
                torch.cuda.synchronize()
        return run

    # The three paths take turns within every repeat and the speedup is taken per repeat, so that drift of a shared
    # machine (±30% within minutes here) cancels out of the ratio.
    paths = {"batched_s": update(True, True), "autograd_batched_s": update(True, False),
             "per_task_loop_s": update(False, False)}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for rep in range(repeats + 1):
        for key, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            if rep > 0:  # the first round is the warm-up
                times[key].append(time.perf_counter() - t0)
    speedups = [loop / fast for loop, fast in zip(times["per_task_loop_s"], times["batched_s"])]
    return {**{k: statistics.median(v) for k, v in times.items()}, "speedup": statistics.median(speedups),
            "device": str(dev), "task_chunk": chunk, "family": family_name}


def perf_iteration(workers: int | None = None, repeats: int = 5, device: str | None = None) -> dict[str, Any]:
    """The 2D-navigation paper config (20 tasks × 20 episodes × H=100, K=1); ``workers`` and the learner's
    ``device`` default to the preset's (auto: CUDA where there is one)."""
    cfg = load_config(PRESET)
    workers = cfg.sampler.num_workers if workers is None else workers
    learner_cfg = cfg.learner if device is None else replace(cfg.learner, device=device)
    parts = build(replace(cfg, seed=0, sampler=replace(cfg.sampler, num_workers=workers), learner=learner_cfg,
                          ray=replace(cfg.ray, address=None, num_cpus=max(workers, 1))))
    family, learner, pool = parts.family, parts.learner, parts.pool
    rng = seeding.generator(0, seeding.TASKS)
    n, E = cfg.train.meta_batch_size, cfg.sampler.episodes_per_task
    rows: list[tuple[float, float, float, float]] = []
    try:
        for it in range(repeats + 1):
            t0 = time.perf_counter()
            tasks = family.sample_tasks(rng, n)
            path = sample_adaptation_path(pool, learner, tasks, E, cfg.algo.inner_steps,
                                          lambda k, it=it: seeding.rollout_seeds(0, seeding.ROLLOUTS, it, k, n))
            t1 = time.perf_counter()
            learner.meta_update(path.supports, path.query)
            t2 = time.perf_counter()
            if it > 0:  # the first iteration is the warm-up
                rows.append((t2 - t0, path.time_sample_s, path.time_adapt_s, t2 - t1))
    finally:
        parts.close()
    med = [statistics.median(col) for col in zip(*rows)]
    return {"median_s": med[0], "sample_s": med[1], "adapt_s": med[2], "update_s": med[3], "workers": workers,
            "device": str(learner.device)}


def run(what: str, family: str | None = None, workers: int | None = None, repeats: int = 5,
        version: str | None = None, device: str | None = None) -> dict[str, Any]:
    if what == "sampler":
        return perf_sampler(family or "halfcheetah-vel", 1 if workers is None else workers, repeats, version=version)
    if what == "update":
        # The CPU figures always; on a machine with a GPU the same measurement on CUDA too, under "cuda".
        result = perf_update(family or "halfcheetah-vel", repeats=repeats, device="cpu")
        if torch.cuda.is_available():
            result["cuda"] = perf_update(family or "halfcheetah-vel", repeats=repeats, device="cuda")
        return result
    return perf_iteration(workers=workers, repeats=repeats, device=device)


def format_result(what: str, result: dict[str, Any]) -> str:
    return "\n".join(f"{k:>20s}: {v:.4g}" if isinstance(v, float) else f"{k:>20s}: {v}" for k, v in result.items())
