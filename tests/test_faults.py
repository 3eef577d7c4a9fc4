"""Worker faults in real runs: a rollout actor SIGKILLed mid-sampling is replaced and its share sampled again from
the same seeds (metrics equal a clean run's, faults/worker_restarts counts it); an env that raises stops the run
with a short error naming the family, the task and the worker's traceback, the last checkpoint intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import descendants, metrics

from metarl.checkpoint import checkpoint_files, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/maml_trpo/2d_navigation.yaml"
RUN = ["train.iterations=3", "train.meta_batch_size=6", "sampler.episodes_per_task=10", "log.progress=false"]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "families"), out.get("PYTHONPATH", "")]).rstrip(":")
    return out


def train_args(config: str, log_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "metarl", "train", config,
            *[f"--set={s}" for s in (f"log.dir={log_dir}", *overrides)]]


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@pytest.mark.slow
def test_worker_killed_mid_sampling_is_replaced_and_metrics_equal_a_clean_run(tmp_path):
    clean = subprocess.run(train_args(CONFIG, tmp_path / "clean", *RUN, "sampler.num_workers=0"), cwd=ROOT,
                           env=env(), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-3000:]

    proc = subprocess.Popen(train_args(CONFIG, tmp_path / "faulty", *RUN, "sampler.num_workers=2", "ray.num_cpus=2"),
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    while killed is None and proc.poll() is None:  # Ray titles a busy actor process "ray::Class.method"
        for pid in descendants(proc.pid):
            if title(pid).startswith("ray::RolloutWorker.sample_slice"):
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.005)
    _, stderr = proc.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker was caught sampling"
    assert proc.returncode == 0, stderr[-3000:]
    restarts = [line for line in stderr.splitlines() if "rollout worker" in line and "replaced it" in line]
    assert len(restarts) == 1, stderr[-3000:]

    run_dir = next((tmp_path / "faulty").iterdir())
    assert metrics(run_dir) == metrics(next((tmp_path / "clean").iterdir()))  # every episode, none twice

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    assert acc.Scalars("faults/worker_restarts")[-1].value == 1
    print(restarts[0])


@pytest.mark.slow
def test_env_that_raises_stops_the_run_with_family_task_and_traceback(tmp_path):
    config = tmp_path / "faulty.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "family": {"name": "faulty_line:FaultyLineFamily", "kwargs": {"fail_after_steps": 200}},
        "train": {"iterations": 10, "meta_batch_size": 2, "checkpoint_every": 1},
        "sampler": {"num_workers": 1, "episodes_per_task": 2},
        "policy": {"hidden_sizes": [8]},
        "ray": {"num_cpus": 1},
        "log": {"progress": False},
    }))
    proc = subprocess.run(train_args(str(config), tmp_path / "runs"), cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("metarl: error:"))
    error = lines[first:]
    assert "rollout worker 0" in error[0] and "'faulty-line'" in error[0] and "RuntimeError" in error[0]
    assert 'on task {"goal": ' in error[0]
    assert any("faulty_line.py" in line for line in error) and any("raise RuntimeError" in line for line in error)
    assert len(error) <= 25 and "Traceback" not in proc.stderr[: proc.stderr.index("metarl: error:")]

    # 80 env steps per iteration in the worker: iterations 1 and 2 completed, the third failed
    run_dir = next((tmp_path / "runs").iterdir())
    assert [r["iteration"] for r in metrics(run_dir)] == [1, 2]
    assert [p.name for p in checkpoint_files(run_dir)] == ["iter_1.pt", "iter_2.pt"]
    assert load_checkpoint(run_dir / "checkpoints" / "iter_2.pt")["iteration"] == 2
    assert f"last checkpoint: {run_dir / 'checkpoints' / 'iter_2.pt'}" in error[-1]
    print("\n".join(error))
