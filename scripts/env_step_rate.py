"""Sanity check of the task-env overhead: single-env step rate of a family's env vs the raw Gymnasium env.

    python scripts/env_step_rate.py                       # halfcheetah-vel vs HalfCheetah-v5, 5000 steps
    python scripts/env_step_rate.py --family ant-vel hopper-rand-params --json

The raw env and the family env (with its default task, so rand-params episodes match the raw model's) get the
same pre-drawn random actions (action sampling is not timed) and are reset when an episode ends and at least every
``horizon`` steps. The raw env is timed unwrapped (the layer the family env subclasses) and through
``gymnasium.make`` (with its TimeLimit / checker / order wrappers); the envs take turns, best of ``--repeats``.
``overhead`` = raw-unwrapped steps/s / family steps/s (1.0 = none). Not a test: timings belong in benchmarks.
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


def _pass(env: gym.Env, actions: np.ndarray, horizon: int, seed: int) -> float:
    """Steps per second of one timed pass over ``actions``."""
    env.reset(seed=seed)
    t_episode = 0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        t_episode += 1
        if terminated or truncated or t_episode >= horizon:
            env.reset()
            t_episode = 0
    return len(actions) / (time.perf_counter() - start)


def measure(name: str, steps: int, repeats: int) -> dict:
    """Best of ``repeats`` passes per env; the envs take turns so that machine-load drift hits all of them."""
    family = make_family(name)
    actions = np.random.default_rng(0).uniform(family.action_space.low, family.action_space.high,
                                               size=(steps, *family.action_space.shape)).astype(np.float32)
    wrapped = gym.make(RAW_IDS[name])
    envs = {"raw_unwrapped": wrapped.unwrapped, "raw_gym_make": wrapped,
            "family": family.make_env()}  # default task: for rand-params the unmodified model, so episodes match
    best = dict.fromkeys(envs, 0.0)
    for r in range(repeats):
        for key, env in envs.items():
            best[key] = max(best[key], _pass(env, actions, family.horizon, r))
    return {"family": name, "raw_id": RAW_IDS[name], "steps": steps,
            "raw_unwrapped_steps_per_s": best["raw_unwrapped"], "raw_gym_make_steps_per_s": best["raw_gym_make"],
            "family_steps_per_s": best["family"], "overhead": best["raw_unwrapped"] / best["family"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=["halfcheetah-vel"], choices=sorted(RAW_IDS))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
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
