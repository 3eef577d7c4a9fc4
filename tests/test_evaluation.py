"""evaluation.py: the meta-test protocol — held-out tasks, determinism, per-step inner step sizes, the eval JSON —
and the periodic meta-test's TensorBoard output during training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from processes import ROOT
from test_cli import CONFIG, TINY, metarl, read_metrics

from metarl import seeding
from metarl.components import build
from metarl.config import from_dict
from metarl.evaluation import evaluate, meta_test

NAV = {"family": {"name": "2d-navigation", "kwargs": {"horizon": 20}}, "sampler": {"num_workers": 0},
       "policy": {"hidden_sizes": [16]}, "seed": 3}


@pytest.fixture(scope="module")
def parts():
    parts = build(from_dict(NAV))
    yield parts
    parts.close()


def test_test_tasks_never_equal_training_tasks(parts):
    """Test tasks come from their own seed stream: none of 40 equals any of 100 iterations of training tasks."""
    train_rng = seeding.generator(3, seeding.TASKS)
    training = {json.dumps(t, sort_keys=True) for _ in range(100) for t in parts.family.sample_tasks(train_rng, 20)}
    test = parts.family.sample_tasks(seeding.generator(3, seeding.EVAL_TASKS), 40)
    assert not training & {json.dumps(t, sort_keys=True) for t in test}


def test_evaluation_is_deterministic_for_a_seed(parts):
    a = evaluate(parts.pool, parts.learner, parts.family, 3, 5, 2, 4)
    b = evaluate(parts.pool, parts.learner, parts.family, 3, 5, 2, 4)
    c = evaluate(parts.pool, parts.learner, parts.family, 4, 5, 2, 4)
    assert a == b
    assert a["per_task_return"] != c["per_task_return"]


def test_given_tasks_replace_the_seeds_test_tasks(parts):
    """``tasks``: the seed's own tasks given explicitly score the same; other tasks score differently."""
    own = parts.family.sample_tasks(seeding.generator(3, seeding.EVAL_TASKS), 5)
    default = evaluate(parts.pool, parts.learner, parts.family, 3, 5, 1, 4)
    assert evaluate(parts.pool, parts.learner, parts.family, 3, 99, 1, 4, tasks=own) == default
    goals = json.loads((ROOT / "configs" / "paper" / "test_tasks" / "maml_2d_navigation.json").read_text())
    paper = evaluate(parts.pool, parts.learner, parts.family, 3, 5, 1, 4, tasks=goals)
    assert paper["num_tasks"] == len(goals) == 40 and len(paper["per_task_return"]) == 40
    assert paper["per_task_return"][:5] != default["per_task_return"]


def test_per_step_inner_lr_uses_the_first_value_then_the_second(parts):
    """Eval with 0.5, 0.25 equals a learner trained with inner_lr [0.5, 0.25], and differs from 0.5, 0.5."""
    ours = evaluate(parts.pool, parts.learner, parts.family, 3, 4, 2, 4, inner_lr=(0.5, 0.25))
    other = build(from_dict({**NAV, "algo": {"inner_lr": [0.5, 0.25], "inner_steps": 2}}))
    reference = evaluate(other.pool, other.learner, other.family, 3, 4, 2, 4)
    same_lr = evaluate(parts.pool, parts.learner, parts.family, 3, 4, 2, 4, inner_lr=(0.5,))
    assert ours["inner_lr"] == [0.5, 0.25] and same_lr["inner_lr"] == [0.5, 0.5]
    assert ours["per_task_return"] == reference["per_task_return"]
    assert [row[:2] for row in ours["per_task_return"]] == [row[:2] for row in same_lr["per_task_return"]]
    assert [row[2] for row in ours["per_task_return"]] != [row[2] for row in same_lr["per_task_return"]]


def test_eval_json_statistics_and_config_protocol(parts):
    config = from_dict({**NAV, "eval": {"num_tasks": 6, "steps": 1, "episodes": 3, "inner_lr": 0.3}})
    result = meta_test(parts.pool, parts.learner, parts.family, config)
    assert (result["num_tasks"], result["steps"], result["episodes"], result["inner_lr"]) == (6, [0, 1], 3, [0.3])
    per_task = np.array(result["per_task_return"])
    assert per_task.shape == (6, 2)
    np.testing.assert_allclose(result["mean_return"], per_task.mean(0), rtol=1e-6)
    np.testing.assert_allclose(result["ci95_return"], 1.96 * per_task.std(0, ddof=1) / math.sqrt(6), rtol=1e-6)


@pytest.mark.slow
def test_periodic_meta_test_writes_metrics_histograms_image_and_layout(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sets = [f"--set={s}" for s in (*TINY, f"log.dir={tmp_path}", "train.eval_every=1", "eval.num_tasks=3",
                                   "eval.steps=2", "eval.episodes=2")]
    proc = metarl("train", CONFIG, *sets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    records = read_metrics(run_dir)
    assert all({"meta_test_return_step_0", "meta_test_return_step_2"} <= set(r) for r in records)
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.value for e in acc.Scalars("meta_test/return_step_2")] == \
        pytest.approx([r["meta_test_return_step_2"] for r in records])
    assert {f"meta_test/per_task_return_step_{k}" for k in range(3)} <= set(tags["histograms"])
    assert "meta_test/adaptation_curve" in tags["images"]
    assert len(acc.Images("meta_test/adaptation_curve")) == 2
    assert "custom_scalars__config__" in tags["tensors"]
    layout = acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    assert b"meta_test/return_step_2" in layout and b"adaptation/return_step_1" in layout
    # `metarl eval` on the same run: the protocol flags, the JSON file and the adaptation-curve PNG
    out, png = tmp_path / "eval.json", tmp_path / "curve.png"
    proc = metarl("eval", str(run_dir), "--checkpoint", str(run_dir / "checkpoints" / "iter_2.pt"), "--num-tasks",
                  "3", "--steps", "2", "--episodes", "2", "--inner-lr", "0.5,0.25", "--out", str(out),
                  "--plot", str(png))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["episodes"], result["inner_lr"], result["steps"]) == (2, [0.5, 0.25], [0, 1, 2])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --tasks: exactly the given tasks, in their order (the 2D-navigation paper goals' first three)
    goals = json.loads((ROOT / "configs" / "paper" / "test_tasks" / "maml_2d_navigation.json").read_text())[:3]
    (tmp_path / "goals.json").write_text(json.dumps(goals))
    proc = metarl("eval", str(run_dir), "--tasks", str(tmp_path / "goals.json"), "--steps", "1", "--episodes", "2",
                  "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    given = json.loads(out.read_text())
    assert given["num_tasks"] == 3 and len(given["per_task_return"]) == 3
    assert given["tasks_file"] == str(tmp_path / "goals.json") and "tasks_file" not in result
    assert [r[0] for r in given["per_task_return"]] != [r[0] for r in result["per_task_return"][:3]]  # other tasks
    (tmp_path / "wrong.json").write_text(json.dumps([{"velocity": 1.0}]))
    for bad in (["--inner-lr", "0.5,-1"], ["--episodes", "0"], ["--checkpoint", str(tmp_path / "nope.pt")],
                ["--tasks", str(tmp_path / "wrong.json")], ["--tasks", str(tmp_path / "none.json")],
                ["--tasks", str(tmp_path / "goals.json"), "--num-tasks", "3"]):
        proc = metarl("eval", str(run_dir), *bad)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (bad, proc.stderr)
