"""`metarl train --resume` is bit-identical to a run that was never interrupted: 2 iterations, then resume to 4,
equal 4 straight — θ, the outer optimiser (Adam's moments), learned step sizes, every RNG state, every non-timing
metric and the TensorBoard curves — for the trust-region algorithm and for Adam-based ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from processes import metarl, metrics

TINY = ["train.meta_batch_size=4", "sampler.episodes_per_task=5", "sampler.num_workers=0", "log.progress=false",
        "train.checkpoint_every=1", "train.keep_checkpoints=2"]


def equal(a, b) -> bool:
    """Exact equality of nested checkpoint contents (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a == b


def curve(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["maml-trpo", "promp", "meta-sgd"])
def test_two_then_resume_to_four_equals_four_straight(algo, tmp_path):
    config = f"configs/{algo.replace('-', '_')}/2d_navigation.yaml"

    def train(log_dir: Path, iterations: int) -> Path:
        sets = [f"--set={s}" for s in (*TINY, f"log.dir={log_dir}", f"train.iterations={iterations}")]
        proc = metarl("train", config, *sets)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return next(log_dir.iterdir())

    straight = train(tmp_path / "straight", 4)
    part = train(tmp_path / "part", 2)
    proc = metarl("train", "--resume", str(part), "--set", "train.iterations=4")
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert [r["iteration"] for r in metrics(part)] == [1, 2, 3, 4]
    assert metrics(part) == metrics(straight)
    for run in (part, straight):  # train.keep_checkpoints=2
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_3.pt", "iter_4.pt"]
    final = [torch.load(run / "checkpoints" / "iter_4.pt", weights_only=True) for run in (part, straight)]
    for key in ("theta", "optimizer", "rng", "iteration", "env_steps", "skipped_updates"):
        assert equal(final[0][key], final[1][key]), key
    if algo == "promp":
        assert final[0]["optimizer"]["state"], "Adam's moments are missing from the checkpoint"
    if algo == "meta-sgd":
        assert any(k.startswith("inner_lr.") for k in final[0]["theta"])
    # The resumed run continues the same TensorBoard curve: one point per iteration, equal to the straight run's.
    tag = "adaptation/return_step_1"
    assert [s for s, _ in curve(part, tag)] == [1, 2, 3, 4]
    assert curve(part, tag) == curve(straight, tag)
