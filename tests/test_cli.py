"""The `metarl` command end to end with tiny budgets: run directory layout, metrics, TensorBoard tags,
determinism, bad input (exit 2, one stderr line, nothing written), --resume and eval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from processes import metarl, read_metrics, without_times

CONFIG = "configs/maml_trpo/2d_navigation.yaml"
TINY = ["train.iterations=2", "train.meta_batch_size=4", "sampler.episodes_per_task=5", "sampler.num_workers=0",
        "log.progress=false"]
REQUIRED_METRICS = {"iteration", "env_steps", "return_step_0", "return_step_1", "time_iteration_s",
                    "time_sample_s", "time_update_s"}
REQUIRED_TAGS = {"adaptation/return_step_0", "adaptation/return_step_1", "outer/kl", "outer/loss_before",
                 "outer/loss_after", "outer/line_search_steps", "outer/grad_norm", "inner/lr_mean",
                 "perf/env_steps_per_s", "perf/time_sample_s", "perf/time_update_s", "faults/worker_restarts",
                 "faults/skipped_updates"}


def train(log_dir: Path, *overrides: str) -> Path:
    sets = [f"--set={s}" for s in (*TINY, f"log.dir={log_dir}", *overrides)]
    proc = metarl("train", CONFIG, *sets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(log_dir.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("runs"))


def test_run_directory_layout(run_dir):
    assert run_dir.name.startswith("2d_navigation__s0__")
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "iter_2.pt").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert not list((run_dir / "checkpoints").glob("*.tmp"))

    from metarl.config import load_config

    resolved = load_config(run_dir / "config.yaml")  # the resolved config is itself a valid preset
    assert resolved.train.iterations == 2 and resolved.train.meta_batch_size == 4
    assert resolved.sampler.episodes_per_task == 5 and resolved.log.progress is False


def test_metrics_jsonl(run_dir):
    records = read_metrics(run_dir)
    assert [r["iteration"] for r in records] == [1, 2]
    for r in records:
        assert REQUIRED_METRICS <= set(r), REQUIRED_METRICS - set(r)
        assert all(isinstance(r[k], (int, float)) for k in REQUIRED_METRICS)
        assert r["time_iteration_s"] >= r["time_update_s"] > 0 and r["time_sample_s"] > 0
        assert r["return_step_0"] < 0 and r["return_step_1"] < 0  # 2D navigation rewards are distances
    most = 4 * 5 * 100 * 2  # tasks × episodes × horizon × (K + 1) batches; an episode that reaches its goal ends
    first, second = (r["env_steps"] for r in records)
    assert 0.9 * most < first <= most and 0.9 * most < second - first <= most


def test_tensorboard_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert REQUIRED_TAGS <= tags, REQUIRED_TAGS - tags
    records = read_metrics(run_dir)
    events = acc.Scalars("adaptation/return_step_1")
    assert [e.step for e in events] == [1, 2]
    for e, r in zip(events, records):
        assert e.value == pytest.approx(r["return_step_1"], rel=1e-5)
    assert [e.value for e in acc.Scalars("faults/skipped_updates")] == [0, 0]
    assert all(e.value > 0 for e in acc.Scalars("perf/env_steps_per_s"))
    assert all(0 <= e.value <= 0.01 * 1.001 for e in acc.Scalars("outer/kl"))


def test_same_seed_same_metrics(run_dir, tmp_path):
    other = train(tmp_path)
    assert other != run_dir
    assert without_times(read_metrics(other)) == without_times(read_metrics(run_dir))


@pytest.mark.slow  # starts an embedded Ray in the subprocess (~10-20 s on 2 cores)
def test_same_seed_same_metrics_with_ray_worker(run_dir, tmp_path):
    """Same config and seed -> identical metrics (apart from timings), here sampled by one Ray actor instead
    of in the driver: results do not depend on where or how parallel the sampling runs."""
    other = train(tmp_path, "sampler.num_workers=1", "ray.num_cpus=1")
    assert without_times(read_metrics(other)) == without_times(read_metrics(run_dir))


def test_different_seed_different_metrics(run_dir, tmp_path):
    other = train(tmp_path, "seed=1", "train.iterations=1")
    assert other.name.startswith("2d_navigation__s1__")
    assert read_metrics(other)[0]["return_step_0"] != read_metrics(run_dir)[0]["return_step_0"]


@pytest.mark.parametrize("args,expect", [
    (["--set", "train.iteratons=3"], ["train.iteratons", "iterations"]),
    (["--set", "train.iterations=abc"], ["train.iterations", "integer"]),
    (["--set", "family.name=no-such-family"], ["no-such-family", "2d-navigation", "halfcheetah-vel", "bandit"]),
    (["--set", "algo.gamma=2"], ["algo.gamma", "(0, 1]"]),
    (["--set", "sampler.num_workers=1", "--address", "127.0.0.1:1"], ["127.0.0.1:1", "Ray"]),
    pytest.param(["--set", "sampler.num_workers=1", "--set", "learner.device=cuda"], ["learner.device", "auto", "cpu"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
], ids=["unknown-key", "wrong-type", "unknown-family", "out-of-range", "no-cluster-at-address", "cuda-without-gpu"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, expect):
    log_dir = tmp_path / "runs"
    proc = metarl("train", CONFIG, f"--set=log.dir={log_dir}", "--set=sampler.num_workers=0", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in expect:
        assert word in lines[0], (word, lines[0])
    assert not log_dir.exists() or not any(log_dir.iterdir())


def test_missing_config_file_exits_2(tmp_path):
    proc = metarl("train", str(tmp_path / "nope.yaml"), f"--set=log.dir={tmp_path / 'runs'}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.yaml" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_resume_continues_from_last_checkpoint(run_dir, tmp_path):
    resumed = tmp_path / run_dir.name
    shutil.copytree(run_dir, resumed)
    proc = metarl("train", "--resume", str(resumed), "--set", "train.iterations=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (resumed / "checkpoints" / "iter_3.pt").is_file()
    records = read_metrics(resumed)
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert without_times(records[:2]) == without_times(read_metrics(run_dir))
    assert records[2]["env_steps"] > records[1]["env_steps"]  # the counter continues from the checkpoint
    # resuming reproduces an uninterrupted 3-iteration run exactly
    straight = train(tmp_path / "straight", "train.iterations=3")
    assert without_times(records) == without_times(read_metrics(straight))


def test_resume_bad_run_dir_exits_2(tmp_path):
    proc = metarl("train", "--resume", str(tmp_path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_eval_writes_design_json(run_dir, tmp_path):
    out = tmp_path / "f.json"
    proc = metarl("eval", str(run_dir), "--num-tasks", "3", "--steps", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result) == {"family", "version", "num_tasks", "seed", "steps", "mean_return", "std_return",
                           "per_task_return", "success_rate", "episodes", "inner_lr", "ci95_return",
                           "query_episodes"}
    assert result["family"] == "2d-navigation" and result["version"] == "finn2017"
    assert result["num_tasks"] == 3 and result["seed"] == 0 and result["steps"] == [0, 1]
    assert len(result["mean_return"]) == len(result["std_return"]) == 2
    per_task = result["per_task_return"]
    assert len(per_task) == 3 and all(len(row) == 2 for row in per_task)
    for k in range(2):
        assert result["mean_return"][k] == pytest.approx(sum(row[k] for row in per_task) / 3)
        assert result["std_return"][k] >= 0
    assert result["success_rate"] is None
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result
    # deterministic: the same evaluation again gives the same numbers
    again = metarl("eval", str(run_dir), "--num-tasks", "3", "--steps", "1")
    assert json.loads(again.stdout.strip().splitlines()[-1]) == result
