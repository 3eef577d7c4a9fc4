"""Checkpoint files: atomic writes, keep-the-newest-N, weights-only loading, and hostile files (truncated, corrupt,
pickled code, another version's) refused with one line naming the file while nothing in the run is touched."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metarl.checkpoint import (
    FORMAT,
    CheckpointError,
    checkpoint_files,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/maml_trpo/2d_navigation.yaml"
TINY = ["train.iterations=2", "train.meta_batch_size=4", "sampler.episodes_per_task=5", "sampler.num_workers=0",
        "log.progress=false", "train.checkpoint_every=1"]


def state(iteration: int = 1) -> dict:
    return {"iteration": iteration, "env_steps": 10, "theta": {"w": torch.arange(6.0).reshape(2, 3)},
            "optimizer": None, "skipped_updates": 0, "rng": {"tasks": {"state": {"state": 2**100 + 7}}},
            "config": {"seed": 0}}


def metarl(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "metarl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def test_round_trip_is_weights_only(tmp_path):
    path = tmp_path / "checkpoints" / "iter_1.pt"
    save_checkpoint(path, state())
    loaded = load_checkpoint(path)
    assert loaded["format"] == FORMAT and loaded["rng"]["tasks"]["state"]["state"] == 2**100 + 7
    assert torch.equal(loaded["theta"]["w"], state()["theta"]["w"])
    assert torch.load(path, weights_only=True)["iteration"] == 1  # nothing in it needs the full unpickler
    assert [p.name for p in path.parent.iterdir()] == ["iter_1.pt"]  # no temp file left


def test_a_failed_save_leaves_the_previous_file_and_no_temp_file(tmp_path):
    path = tmp_path / "iter_1.pt"
    save_checkpoint(path, state())
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, {**state(), "bad": lambda: None})  # cannot be pickled: fails mid-write
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["iter_1.pt"]


def test_prune_keeps_the_newest(tmp_path):
    for it in (1, 2, 3, 10, 11):
        save_checkpoint(tmp_path / "checkpoints" / f"iter_{it}.pt", state(it))
    (tmp_path / "checkpoints" / "iter_x.pt").write_text("not ours")
    prune_checkpoints(tmp_path, 3)
    assert [p.name for p in checkpoint_files(tmp_path)] == ["iter_3.pt", "iter_10.pt", "iter_11.pt"]
    assert latest_checkpoint(tmp_path).name == "iter_11.pt"
    assert (tmp_path / "checkpoints" / "iter_x.pt").exists()
    prune_checkpoints(tmp_path, 0)  # 0 = keep every one
    assert len(checkpoint_files(tmp_path)) == 3


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickled-code", "old-format", "not-a-dict"])
def test_unusable_files_are_refused_by_name(tmp_path, damage):
    path = tmp_path / "iter_1.pt"
    save_checkpoint(path, state())
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickled-code":
        torch.save({"format": FORMAT, "x": Evil()}, path, pickle_module=pickle)
    elif damage == "old-format":
        torch.save({k: v for k, v in state().items()}, path)  # what metarl wrote before checkpoints had a format
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if damage == "old-format":
        assert "incompatible" in message
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("runs")
    proc = metarl("train", CONFIG, *[f"--set={s}" for s in (*TINY, f"log.dir={log_dir}")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(log_dir.iterdir())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["truncated-checkpoint", "old-checkpoint", "foreign-config", "policy-changed"])
def test_resume_refuses_a_hostile_run_dir_with_one_line_and_touches_nothing(run_dir, tmp_path, damage):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    latest = copy / "checkpoints" / "iter_2.pt"
    args: list[str] = []
    if damage == "truncated-checkpoint":
        latest.write_bytes(latest.read_bytes()[:1000])
        named = latest
    elif damage == "old-checkpoint":
        old = {k: v for k, v in torch.load(latest, weights_only=True).items() if k != "format"}
        torch.save(old, latest)
        named = latest
    elif damage == "foreign-config":
        (copy / "config.yaml").write_text((copy / "config.yaml").read_text() + "future_section: {x: 1}\n")
        named = copy / "config.yaml"
    else:
        args = ["--set", "policy.hidden_sizes=[32]"]
        named = latest
    before = snapshot(copy)
    proc = metarl("train", "--resume", str(copy), *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metarl: error:"), proc.stderr
    assert str(named.relative_to(copy)) in lines[0] and str(copy) in lines[0], lines[0]
    assert snapshot(copy) == before  # metrics.jsonl, checkpoints, events: all as they were
