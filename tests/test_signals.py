"""SIGINT / SIGTERM to a real `metarl train` process: the last completed iteration is saved, the exit code is
130 / 143, stderr names the `--resume` command, and resuming finishes the run with every iteration exactly once;
a second SIGINT stops at once and leaves no half-written file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import descendants

from metarl.checkpoint import checkpoint_files, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/maml_trpo/2d_navigation.yaml"
TINY = ["train.iterations=1000", "train.meta_batch_size=4", "sampler.episodes_per_task=5", "log.progress=false",
        "train.checkpoint_every=1000"]


def start(log_dir: Path, *overrides: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    sets = [f"--set={s}" for s in (*TINY, f"log.dir={log_dir}", *overrides)]
    return subprocess.Popen([sys.executable, "-m", "metarl", "train", CONFIG, *sets], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def iterations(log_dir: Path) -> list[int]:
    files = list(log_dir.glob("*/metrics.jsonl"))
    if not files:
        return []
    return [json.loads(line)["iteration"] for line in files[0].read_text().splitlines() if line.endswith("}")]


def wait_for_iterations(proc: subprocess.Popen, log_dir: Path, n: int) -> None:
    """Poll until the run has logged ``n`` iterations (the run, not the clock, decides when)."""
    while len(iterations(log_dir)) < n:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,workers", [(signal.SIGINT, 130, 0), (signal.SIGTERM, 143, 1)],
                         ids=["sigint-driver-sampling", "sigterm-ray-workers"])
def test_signal_saves_the_last_completed_iteration_and_resume_finishes(tmp_path, signum, code, workers):
    log_dir = tmp_path / "runs"
    proc = start(log_dir, f"sampler.num_workers={workers}", "ray.num_cpus=1")
    wait_for_iterations(proc, log_dir, 2)
    ray_processes = descendants(proc.pid)
    assert len(ray_processes) >= workers
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    run_dir = next(log_dir.iterdir())
    assert f"metarl train --resume {run_dir}" in stderr
    files = checkpoint_files(run_dir)
    assert len(files) == 1, files  # checkpoint_every=1000: this one was written because of the signal
    saved = load_checkpoint(files[0])
    logged = iterations(log_dir)
    # A signal while the logger is still writing an iteration (its metrics.jsonl line already out, TensorBoard not
    # yet) saves the iteration before; the resume then logs that iteration again, once.
    assert saved["iteration"] >= 1 and saved["iteration"] in (logged[-1], logged[-1] - 1), (saved["iteration"],
                                                                                         logged)
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    for pid in ray_processes:  # Ray was shut down with the run: none of its processes outlives it
        for _ in range(300):
            if not alive(pid):
                break
            time.sleep(0.1)
        assert not alive(pid), f"process {pid} outlived the run"

    target = saved["iteration"] + 1
    resumed = subprocess.run([sys.executable, "-m", "metarl", "train", "--resume", str(run_dir),
                              f"--set=train.iterations={target}", "--set=sampler.num_workers=0"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert iterations(log_dir) == list(range(1, target + 1))


@pytest.mark.slow
def test_second_sigint_stops_at_once_without_half_written_files(tmp_path):
    log_dir = tmp_path / "runs"
    proc = start(log_dir, "sampler.num_workers=0")
    wait_for_iterations(proc, log_dir, 1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    run_dir = next(log_dir.iterdir())
    leftovers = [p.name for p in (run_dir / "checkpoints").glob("*")] if (run_dir / "checkpoints").exists() else []
    assert not [name for name in leftovers if name.endswith(".tmp")], leftovers
    for path in checkpoint_files(run_dir):  # whatever was written is whole
        assert load_checkpoint(path)["iteration"] >= 1
