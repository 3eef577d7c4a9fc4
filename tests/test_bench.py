"""bench.py and baselines.py: a tiny grid through real Ray Tune trials writes its four outputs and resumes
without redoing a finished trial; the baselines train and evaluate as claimed; the oracle sees the task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from processes import ROOT, metarl

from metarl.baselines import OracleEnv, pretrained_config, run_baseline
from metarl.bench import BenchSpec, _markdown, validate, write_outputs
from metarl.components import build
from metarl.config import ConfigError, from_dict

TINY = ["train.meta_batch_size=2", "sampler.episodes_per_task=2", "eval.num_tasks=2", "eval.steps=1",
        "train.eval_every=0", "family.kwargs.horizon=10"]
NAV = {"family": {"name": "2d-navigation", "kwargs": {"horizon": 10}}, "sampler": {"num_workers": 0,
       "episodes_per_task": 2}, "train": {"meta_batch_size": 2, "iterations": 2, "eval_every": 0},
       "eval": {"num_tasks": 3, "steps": 1}, "log": {"progress": False}}


def test_oracle_observation_carries_the_task_features():
    env = OracleEnv({"family": {"name": "2d-navigation"}, "seed": 0})
    env.set_task({"goal": [0.25, -0.4]})
    obs, _ = env.reset(seed=1)
    assert env.observation_space.shape == (4,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[2:], [0.25, -0.4])
    obs, *_ = env.step(np.zeros(2, dtype=np.float32))
    np.testing.assert_allclose(obs[2:], [0.25, -0.4])
    free = OracleEnv({"family": {"name": "2d-navigation"}, "seed": 0})  # training: a new task at each reset
    goals = {tuple(free.reset()[0][2:]) for _ in range(3)}
    assert len(goals) == 3


@pytest.mark.parametrize("algo,outer", [({}, "maml-trpo"), ({"name": "promp"}, "maml-trpo"),
                                        ({"name": "maml-vpg", "outer_lr": 0.001}, "maml-vpg")])
def test_pretrained_baseline_trains_without_adaptation_then_adapts_in_the_meta_test(tmp_path, algo, outer):
    """TRPO's step, or Adam's where the config names maml-vpg (the MAML paper's pretrained 2D policy)."""
    config = from_dict({**NAV, "algo": algo})
    assert pretrained_config(config).algo.inner_steps == 0 and pretrained_config(config).algo.name == outer
    result = run_baseline("pretrained", config, tmp_path / "pre")
    records = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    assert all("return_step_0" in r and "return_step_1" not in r for r in records)
    assert result["env_steps"] == records[-1]["env_steps"] > 0
    assert result["eval"]["steps"] == [0, 1] and len(result["eval"]["per_task_return"]) == 3
    trained = torch.load(tmp_path / "pre" / "checkpoints" / "iter_2.pt", weights_only=False)["theta"]
    parts = build(pretrained_config(config))
    fresh = parts.learner.theta
    parts.close()
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh)  # the outer step moved θ
    if algo:
        return
    random = run_baseline("random", config, tmp_path / "random")
    assert random["env_steps"] == 0 and json.loads((tmp_path / "random" / "eval.json").read_text()) == random["eval"]


@pytest.mark.parametrize("changes,needle", [
    ({"algos": ("maml-sac",)}, "bench --algos: unknown maml-sac"),
    ({"baselines": ("expert",)}, "bench --baselines: unknown expert"),
    ({"seeds": 0}, "--seeds"),
    ({"overrides": ("train.iterations=oops",)}, "train.iterations"),
])
def test_bad_bench_input_is_one_line(changes, needle):
    spec = BenchSpec(family="2d-navigation", version=None, algos=("maml-trpo",), baselines=(), seeds=1,
                     iterations=1)
    with pytest.raises(ConfigError, match=needle):
        validate(BenchSpec(**{**spec.__dict__, **changes}))


def test_bench_config_starts_every_trial_from_the_preset():
    """`--config configs/paper/...`: the paper's family version, step sizes and protocol in every trial; the
    preset's own algorithm keeps its settings, another algorithm takes its own preset's."""
    spec = BenchSpec(family="2d-navigation", version=None, algos=("maml-trpo", "promp"), baselines=("pretrained",),
                     seeds=1, iterations=3, preset=str(ROOT / "configs" / "paper" / "maml_2d_navigation.yaml"))
    validate(spec)
    maml, promp, pretrained = (spec.config(t) for t in spec.trials())
    for config in (maml, promp, pretrained):
        assert config.family.version == "finn2017" and config.policy.hidden_sizes == (100, 100)
        assert config.eval.inner_lr == (0.5, 0.25) and config.eval.episodes == 40 and config.train.iterations == 3
    assert maml.algo.inner_lr == pretrained.algo.inner_lr == 0.5 and promp.algo.name == "promp"
    assert maml.eval.reference() == ("MAML paper", (-40.4, -11.7, -3.3, -3.2))  # the preset's published row
    assert promp.algo.inner_lr != 0.5


@pytest.mark.parametrize("algos, baselines, says", [
    ((), ("random",), "no training (random policies)"),
    ((), ("random", "pretrained"), "7 training iterations per trial"),
    (("maml-trpo",), ("random",), "7 training iterations per trial")])
def test_bench_table_says_whether_its_trials_trained(algos, baselines, says):
    spec = BenchSpec(family="2d-navigation", version=None, algos=algos, baselines=baselines, seeds=1, iterations=7)
    assert says in _markdown(spec, [])


@pytest.mark.parametrize("baselines, learning", [(("random",), False), (("random", "pretrained"), True)])
def test_learning_figure_only_where_a_trial_trained(tmp_path, baselines, learning):
    spec = BenchSpec(family="2d-navigation", version=None, algos=(), baselines=baselines, seeds=1, iterations=2)
    for trial in spec.trials():  # what _trial leaves in each run directory
        run_dir = tmp_path / "runs" / trial["label"]
        run_dir.mkdir(parents=True)
        evaluation = {"steps": [0, 1], "mean_return": [-40.0, -20.0], "ci95_return": [1.0, 1.0],
                      "version": "finn2017"}
        (run_dir / "trial.json").write_text(json.dumps({**trial, "env_steps": 800, "seconds": 1.0,
                                                        "eval": evaluation, "run_dir": f"runs/{trial['label']}"}))
        if trial["name"] == "pretrained":
            (run_dir / "metrics.jsonl").write_text("".join(
                json.dumps({"iteration": i, "env_steps": 400 * i, "return_step_0": -50.0 + i}) + "\n" for i in (1, 2)))
    write_outputs(spec, tmp_path)
    assert (tmp_path / "adaptation.png").is_file() and (tmp_path / "bench.md").is_file()
    assert (tmp_path / "learning.png").is_file() == learning


def test_bench_table_shows_the_reference_curve_over_its_own_steps():
    spec = BenchSpec(family="2d-navigation", version=None, algos=("maml-trpo",), baselines=(), seeds=1, iterations=7)
    row = {"name": "maml-trpo", "kind": "algo", "steps": [0, 1], "mean_return": [-40.0, -12.0],
           "std_return": [1.0, 0.5], "env_steps": 100.0, "minutes": 0.5}
    table = _markdown(spec, [row], ("MAML paper", (-40.4, -11.7, -3.3, -3.2)))
    assert "| maml-trpo | -40.0 ± 1.0 | -12.0 ± 0.5 |" in table
    assert "| MAML paper (reference) | -40.4 | -11.7 | | |" in table and "-3.3" not in table
    assert "reference" not in _markdown(spec, [row])


def test_bench_config_errors_are_one_line(tmp_path):
    missing = metarl("bench", "--config", str(tmp_path / "nope.yaml"), "--baselines", "random")
    assert missing.returncode == 2 and "bench --config" in missing.stderr and "no such file" in missing.stderr
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    listed = metarl("bench", "--config", str(tmp_path / "list.yaml"), "--baselines", "random")
    assert listed.returncode == 2 and "a YAML mapping" in listed.stderr
    assert len(missing.stderr.strip().splitlines()) == len(listed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_writes_its_outputs_and_resume_keeps_finished_trials(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--family", "2d-navigation", "--algos", "maml-trpo", "--baselines", "random,pretrained",
            "--seeds", "1", "--iterations", "1", "--out", str(out), *[f"--set={s}" for s in TINY]]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Interrupt the first attempt (the whole process group) once the first trial has finished and Tune has
    # recorded it; then --resume must run only what is left.
    proc = subprocess.Popen([sys.executable, "-m", "metarl", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = out / "runs" / "maml-trpo__s1" / "trial.json"
    try:
        while not first.exists() and proc.poll() is None:
            time.sleep(0.5)
        assert first.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else ""
        while proc.poll() is None and not any(p.stat().st_mtime > first.stat().st_mtime
                                              for p in (out / "tune").glob("experiment_state-*.json")):
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = first.read_text()
    before = first.stat().st_mtime_ns
    resumed = metarl("bench", "--resume", str(out), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert first.stat().st_mtime_ns == before and first.read_text() == finished  # not run again
    for name in ("bench.json", "bench.md", "adaptation.png", "learning.png"):
        assert (out / name).is_file(), name
    trials = json.loads((out / "bench.json").read_text())["trials"]
    assert sorted(t["label"] for t in trials) == ["maml-trpo__s1", "pretrained__s1", "random__s1"]
    table = (out / "bench.md").read_text()
    assert "| maml-trpo |" in table and "| random (baseline) |" in table and "step 1" in table
    assert (out / "adaptation.png").read_bytes()[:4] == b"\x89PNG"
    # each trial's run directory sits under DIR, so one TensorBoard compares them all
    assert list((out / "runs" / "maml-trpo__s1").glob("events.out.tfevents.*"))
