"""perf.py: the JSON contracts of `metarl perf`, on tiny loads (speed itself is measured, never asserted)."""

from __future__ import annotations

import json

import pytest

from metarl import perf


@pytest.mark.parametrize("family", ["halfcheetah-vel", "bandit"])
def test_perf_update_reports_all_three_paths(family):
    result = perf.perf_update(family, tasks=4, episodes=2, horizon=10, repeats=1)
    assert set(result) == {"batched_s", "autograd_batched_s", "per_task_loop_s", "speedup", "device", "task_chunk",
                           "family"}
    assert all(result[k] > 0 for k in ("batched_s", "autograd_batched_s", "per_task_loop_s", "speedup"))
    assert result["device"] in ("cpu", "cuda") and result["task_chunk"] >= 0
    json.dumps(result)


def test_perf_sampler_in_process():
    result = perf.perf_sampler("2d-navigation", workers=0, repeats=1, tasks_per_worker=2, episodes=3)
    assert set(result) == {"env_steps_per_s", "raw_env_steps_per_s", "workers", "ratio", "physics_steps_per_s",
                           "physics_ratio", "family", "version"}
    assert result["physics_steps_per_s"] is None and result["physics_ratio"] is None  # not a MuJoCo family
    assert result["env_steps_per_s"] > 0 and result["raw_env_steps_per_s"] > 0 and result["ratio"] > 0
    assert result["workers"] == 0 and result["family"] == "2d-navigation"


def test_physics_step_rate_is_for_mujoco_families_only():
    from metarl.families import make_family
    from metarl.physics import physics_step_rate

    assert physics_step_rate(make_family("halfcheetah-vel").make_env(), steps=20, horizon=10) > 0
    assert physics_step_rate(make_family("2d-navigation").make_env(), steps=20) is None


def test_perf_iteration_in_process_on_the_named_device():
    result = perf.perf_iteration(workers=0, repeats=1, device="cpu")
    assert set(result) == {"median_s", "sample_s", "adapt_s", "update_s", "workers", "device"}
    assert result["device"] == "cpu" and result["workers"] == 0
    assert all(result[k] > 0 for k in ("sample_s", "adapt_s", "update_s"))
    assert result["median_s"] >= result["update_s"]


def test_perf_device_is_for_iteration_only():
    from processes import metarl

    proc = metarl("perf", "update", "--device", "cpu")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--device is for iteration" in proc.stderr
