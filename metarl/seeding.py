"""One root seed -> independent, named seed streams (numpy SeedSequence spawn keys).

Seeds are pure functions of (root seed, purpose, indices), so a task's rollouts get the same randomness
whichever worker samples them and however many workers there are.
"""

from __future__ import annotations

import numpy as np

# Stream identifiers: the first entry of every spawn key.
TASKS, LEARNER, ROLLOUTS, EVAL_TASKS, EVAL_ROLLOUTS, GLOBALS = range(6)


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


def seed_globals(root: int) -> None:
    """Seed the process-wide torch / numpy / ``random`` generators from the root seed, so that code drawing from
    them (a user's, never metarl's own) repeats too, and a checkpoint's copy of their state means something."""
    import random

    import torch

    seed = derive_seed(root, GLOBALS)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state(task_rng: np.random.Generator) -> dict:
    """Every RNG state a driver holds, in types ``torch.load(weights_only=True)`` accepts: the task stream, and
    the global torch / CUDA / numpy / ``random`` generators (metarl draws from none of these, a user's code may)."""
    import random

    import torch

    legacy = np.random.get_state(legacy=False)
    state = {
        "tasks": task_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "numpy": {**legacy, "state": {"key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)),
                                      "pos": int(legacy["state"]["pos"])}},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(task_rng: np.random.Generator, state: dict) -> None:
    """Inverse of ``capture_rng_state``."""
    import random

    import torch

    task_rng.bit_generator.state = state["tasks"]
    torch.set_rng_state(state["torch"])
    legacy = state["numpy"]
    np.random.set_state({**legacy, "state": {"key": legacy["state"]["key"].numpy().astype(np.uint32),
                                             "pos": legacy["state"]["pos"]}})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
