"""The sampler's physics_ratio in CPU time, for a machine too loaded for wall-clock ratios.

    python scripts/sampler_cpu_ratio.py --family halfcheetah-vel ant-vel

`metarl perf sampler` divides wall-clock rates; when other processes keep the cores oversubscribed, what a process
gets of a core changes within a second and those ratios scatter (0.67-0.87 between runs of the same code here).
This runs a rollout worker in this process (no Ray, torch on one thread, the `perf sampler` load of 10 tasks × 20
episodes × the family's horizon) and bare ``mj_step`` (metarl.physics, for the same number of steps) in turns,
and divides steps per CPU-second of this process (``time.process_time``), which others' load does not enter
(except through shared caches). Prints one JSON object per family: medians over ``--repeats`` turns.
``--gymnasium-path`` samples through plain Gymnasium envs instead (what families without make_batched_env get).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from metarl.physics import physics_step_rate
from metarl.policies import expand, to_numpy
from metarl.rollout import RolloutWorker


def _cpu_rate(fn) -> float:
    t0 = time.process_time()
    steps = fn()
    return steps / (time.process_time() - t0)


def measure(name: str, repeats: int, gymnasium_path: bool = False, tasks: int = 10, episodes: int = 20) -> dict:
    spec = {"hidden_sizes": (64, 64), "activation": "tanh", "init_log_std": 0.0}
    worker = RolloutWorker({"name": name, "version": None, "kwargs": {}}, spec)
    family = worker.family
    if gymnasium_path:  # as a family with only make_env: plain Gymnasium envs stepped one by one
        family.make_batched_env = None
    task_list = family.sample_tasks(np.random.default_rng(0), tasks)
    params = to_numpy({k: v.contiguous() for k, v in
                       expand(worker.policy.init_params(torch.Generator().manual_seed(0)), tasks).items()})
    seeds = list(range(tasks))
    worker.sample(task_list, params, episodes, seeds)  # warm-up: envs are built
    env = family.make_env()
    rows = []
    for r in range(repeats):
        sampled = _cpu_rate(lambda: worker.sample(task_list, params, episodes, seeds).env_steps)
        steps = tasks * episodes * family.horizon
        bare = physics_step_rate(env, steps, r, family.horizon, clock=time.process_time)
        rows.append((sampled, bare))
    return {"family": name, "env_steps_per_cpu_s": statistics.median(r[0] for r in rows),
            "physics_steps_per_cpu_s": statistics.median(r[1] for r in rows),
            "physics_ratio_cpu": statistics.median(r[0] / r[1] for r in rows), "repeats": repeats,
            "sampler_backend": type(worker._env(tasks * episodes)).__name__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["halfcheetah-vel"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gymnasium-path", action="store_true", help="sample through GymBatchedEnv (the old path)")
    args = parser.parse_args()
    for name in args.family:
        print(json.dumps(measure(name, args.repeats, args.gymnasium_path)), flush=True)


if __name__ == "__main__":
    main()
