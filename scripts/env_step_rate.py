"""Sanity check of the task-env overhead: single-env step rate of a family's env vs the raw Gymnasium env.

    python scripts/env_step_rate.py                       # halfcheetah-vel vs HalfCheetah-v5, 5000 steps
    python scripts/env_step_rate.py --family ant-vel hopper-rand-params --steps 3000 --json

Both envs get the same pre-drawn random actions (so action sampling is not timed) and are reset whenever an
episode ends and at least every ``horizon`` steps. The raw env is timed unwrapped (the same layer the family env
subclasses) and through ``gymnasium.make`` (with its TimeLimit / checker / order wrappers). ``overhead`` is
raw-unwrapped steps/s ÷ family steps/s (1.0 = no overhead). Not a test: timings belong in benchmarks.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

from metarl.families import make_family

RAW_IDS = {"halfcheetah-vel": "HalfCheetah-v5", "halfcheetah-dir": "HalfCheetah-v5", "ant-vel": "Ant-v5",
           "ant-dir": "Ant-v5", "ant-goal": "Ant-v5", "hopper-rand-params": "Hopper-v5",
           "walker2d-rand-params": "Walker2d-v5"}


def steps_per_second(env: gym.Env, actions: np.ndarray, horizon: int, repeats: int) -> float:
    """Best of ``repeats`` timed passes over ``actions``."""
    best = 0.0
    for r in range(repeats):
        env.reset(seed=r)
        t_episode = 0
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            t_episode += 1
            if terminated or truncated or t_episode >= horizon:
                env.reset()
                t_episode = 0
        best = max(best, len(actions) / (time.perf_counter() - start))
    return best


def measure(name: str, steps: int, repeats: int) -> dict:
    family = make_family(name)
    actions = np.random.default_rng(0).uniform(family.action_space.low, family.action_space.high,
                                               size=(steps, *family.action_space.shape)).astype(np.float32)
    task_env = family.make_env(family.sample_tasks(np.random.default_rng(0), 1)[0])
    wrapped = gym.make(RAW_IDS[name])
    raw = steps_per_second(wrapped.unwrapped, actions, family.horizon, repeats)
    return {"family": name, "raw_id": RAW_IDS[name], "steps": steps,
            "raw_unwrapped_steps_per_s": raw,
            "raw_gym_make_steps_per_s": steps_per_second(wrapped, actions, family.horizon, repeats),
            "family_steps_per_s": (fam := steps_per_second(task_env, actions, family.horizon, repeats)),
            "overhead": raw / fam}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["halfcheetah-vel"], choices=sorted(RAW_IDS))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object per family")
    args = parser.parse_args()
    for name in args.family:
        result = measure(name, args.steps, args.repeats)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{name:22s} raw {result['raw_id']} unwrapped {result['raw_unwrapped_steps_per_s']:8.0f}/s, "
                  f"gym.make {result['raw_gym_make_steps_per_s']:8.0f}/s | family {result['family_steps_per_s']:8.0f}/s"
                  f" | overhead x{result['overhead']:.3f}")


if __name__ == "__main__":
    main()
