"""learner.placement: actor runs the learner in a Ray actor (num_gpus 0 here: no GPU on this machine) and trains
exactly as the learner in the driver does: same metrics, same θ and Adam state in the checkpoints, and resume
works through the actor too."""

from __future__ import annotations

import pytest
import torch
from processes import metarl, metrics

CONFIG = "configs/promp/2d_navigation.yaml"
TINY = ["train.meta_batch_size=4", "sampler.episodes_per_task=5", "sampler.num_workers=0", "ray.num_cpus=1",
        "log.progress=false", "train.checkpoint_every=1"]


@pytest.mark.slow
def test_learner_actor_trains_and_resumes_like_the_driver_learner(tmp_path):
    runs = {}
    for placement, iterations in (("driver", 3), ("actor", 2)):
        log_dir = tmp_path / placement
        sets = [f"--set={s}" for s in (*TINY, f"log.dir={log_dir}", f"train.iterations={iterations}",
                                       f"learner.placement={placement}")]
        proc = metarl("train", CONFIG, *sets)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[placement] = next(log_dir.iterdir())
    proc = metarl("train", "--resume", str(runs["actor"]), "--set=train.iterations=3")  # 2 + 1 on the actor = 3
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert [r["iteration"] for r in metrics(runs["actor"])] == [1, 2, 3]
    assert metrics(runs["actor"]) == metrics(runs["driver"])
    states = [torch.load(runs[p] / "checkpoints" / "iter_3.pt", weights_only=True) for p in ("driver", "actor")]
    assert states[1]["optimizer"]["state"]  # Adam's moments came back from the actor
    for key in ("theta", "optimizer"):
        a, b = states[0][key], states[1][key]
        flat_a = [v for v in torch.utils._pytree.tree_leaves(a) if isinstance(v, torch.Tensor)]
        flat_b = [v for v in torch.utils._pytree.tree_leaves(b) if isinstance(v, torch.Tensor)]
        assert len(flat_a) == len(flat_b) > 0 and all(torch.equal(x, y) for x, y in zip(flat_a, flat_b)), key


def test_unknown_placement_is_one_config_error(tmp_path):
    proc = metarl("train", CONFIG, f"--set=log.dir={tmp_path}", "--set=learner.placement=gpu")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "learner.placement" in lines[0] and "driver or actor" in lines[0]
    assert not any(tmp_path.iterdir())
