"""One root seed -> independent, named seed streams (numpy SeedSequence spawn keys).

Seeds are pure functions of (root seed, purpose, indices), so a task's rollouts get the same randomness
whichever worker samples them and however many workers there are.
"""

from __future__ import annotations

import numpy as np

# Stream identifiers: the first entry of every spawn key.
TASKS, LEARNER, ROLLOUTS, EVAL_TASKS, EVAL_ROLLOUTS = range(5)


def seed_sequence(root: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=root, spawn_key=tuple(int(k) for k in key))


def generator(root: int, *key: int) -> np.random.Generator:
    """A numpy Generator for one purpose, e.g. ``generator(seed, TASKS)`` for the training-task sequence."""
    return np.random.default_rng(seed_sequence(root, *key))


def derive_seed(root: int, *key: int) -> int:
    """A 31-bit integer seed for one purpose (torch generators, env resets)."""
    return int(seed_sequence(root, *key).generate_state(1)[0] & 0x7FFFFFFF)


def rollout_seeds(root: int, stream: int, iteration: int, step: int, num_tasks: int) -> list[int]:
    """One seed per task for the rollouts of inner step ``step`` of meta-iteration ``iteration``."""
    return [derive_seed(root, stream, iteration, step, i) for i in range(num_tasks)]
