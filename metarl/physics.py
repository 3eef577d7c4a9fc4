"""The physical limit of sampling: bare ``mujoco.mj_step`` on a family's own model, no Python env in between.

``metarl perf sampler`` divides the sampler's env-steps/s by this rate (``physics_ratio``), so that the figure says
how much of a rollout worker's time goes to the simulator itself rather than to observation and reward assembly,
wrappers and the policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def mujoco_parts(env) -> tuple | None:
    """(model, frame_skip) of a MuJoCo env behind any wrappers, or None for an env without MuJoCo physics."""
    inner = getattr(env, "unwrapped", env)
    model, frame_skip = getattr(inner, "model", None), getattr(inner, "frame_skip", None)
    if model is None or frame_skip is None or type(model).__name__ != "MjModel":
        return None
    return model, int(frame_skip)


def physics_step_rate(env, steps: int = 5000, seed: int = 0, horizon: int = 200,
                      clock: Callable[[], float] = time.perf_counter) -> float | None:
    """Env steps/s of bare ``mj_step(model, data, nstep=frame_skip)`` with random controls in the actuators'
    range, on a fresh ``MjData`` of ``env``'s model reset every ``horizon`` steps; None if ``env`` has no MuJoCo
    model. Setting the controls is the only work besides the physics (controls are drawn before timing);
    ``clock`` is wall time unless a caller asks for CPU time (scripts/sampler_cpu_ratio.py)."""
    parts = mujoco_parts(env)
    if parts is None:
        return None
    import mujoco

    model, frame_skip = parts
    data = mujoco.MjData(model)
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    controls = np.random.default_rng(seed).uniform(low, high, size=(steps, model.nu))
    ctrl, step = data.ctrl, mujoco.mj_step
    t0 = clock()
    for t in range(steps):
        if t % horizon == 0:
            mujoco.mj_resetData(model, data)
        ctrl[:] = controls[t]
        step(model, data, frame_skip)
    return steps / (clock() - t0)
