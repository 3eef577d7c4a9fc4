"""The plug-in API end to end with the worked example in examples/custom_family: check-family and train through the
import-path form, entry-point registration without changing metarl, the README's copy of the example, `metarl
envs --json`, and the errors for unknown families."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from metarl.families import FamilyError, list_families, make_family

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_family"
BUILTIN_VERSIONS = {
    "2d-navigation": ["finn2017", "raw-velocity"],
    "halfcheetah-vel": ["finn2017", "gym-v5", "rothfuss2019"],
    "halfcheetah-dir": ["finn2017", "gym-v5", "rothfuss2019"],
    "ant-vel": ["finn2017"],
    "ant-dir": ["finn2017", "angle"],
    "ant-goal": ["finn2017", "rothfuss2019"],
    "hopper-rand-params": ["rothfuss2019"],
    "walker2d-rand-params": ["rothfuss2019"],
    "bandit": ["duan2016"],
    "tabular-mdp": ["duan2016"],
}


def metarl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m metarl ...`` from the repository root with the example folder on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLE), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "metarl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def example_on_path(monkeypatch):
    """examples/custom_family importable in this process; ``line_family`` is forgotten again afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield
    sys.modules.pop("line_family", None)


def test_check_family_passes_on_the_example():
    proc = metarl("check-family", "line_family:LineFamily")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    checks = [line for line in lines[:-1] if line.startswith(("PASS", "FAIL"))]
    assert len(checks) >= 10 and all(line.startswith("PASS") for line in checks), proc.stdout
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]


def test_train_through_the_import_path(tmp_path):
    proc = metarl("train", "examples/custom_family/line.yaml", "--set", "train.iterations=2",
                  "--set", f"log.dir={tmp_path}", "--set", "sampler.num_workers=0", "--set", "log.progress=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("line__s0__")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert all(m["return_step_0"] <= 0 and m["return_step_1"] <= 0 for m in metrics)  # reward is -|x - g|
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["family"]["name"] == "line_family:LineFamily"
    assert saved["family"]["version"] == "v1"
    assert saved["family"]["kwargs"] == {"goal_range": 1.0}


def test_entry_point_registration(tmp_path, monkeypatch, example_on_path):
    """A fake installed distribution declaring the entry point, found through sys.path; metarl is unchanged."""
    dist_info = tmp_path / "line_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: line_plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[metarl.families]\nline = line_family:LineFamily\n")
    assert "line" not in list_families()
    monkeypatch.syspath_prepend(str(tmp_path))

    names = list_families()
    assert "line" in names
    assert names[:len(BUILTIN_VERSIONS)] == list(BUILTIN_VERSIONS)  # built-ins first, plug-ins after
    family = make_family("line", goal_range=0.5)
    assert (family.name, family.version, family.horizon) == ("line", "v1", 20)
    tasks = family.sample_tasks(np.random.default_rng(0), 16)
    assert all(-0.5 <= t["goal"] <= 0.5 for t in tasks)

    from metarl.check import check_family
    results = check_family("line")
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_example_family_matches_the_spec(example_on_path):
    family = make_family("line_family:LineFamily")
    assert family.observation_space.shape == (1,) and family.action_space.shape == (1,)
    (task,) = family.sample_tasks(np.random.default_rng(0), 1)
    env = family.make_env(task)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0]
    obs, reward, terminated, truncated, _ = env.step(np.array([5.0], dtype=np.float32))  # clipped to +0.1
    assert obs[0] == pytest.approx(0.1) and reward == pytest.approx(-abs(0.1 - task["goal"]))
    steps = 1
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
        assert not terminated
    assert steps == 20
    with pytest.raises(FamilyError, match="no version 'v9'; allowed: v1"):
        make_family("line_family:LineFamily", "v9")


def test_readme_holds_the_example_code():
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## .*$", readme, flags=re.M)
    assert "## Add your own environment family" in headings
    assert headings[headings.index("## Add your own environment family") - 1] == "## Task families"
    section = readme.split("## Add your own environment family\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.M | re.S)
    assert blocks, "no ```python block in the README section"
    assert blocks[0] == (EXAMPLE / "line_family.py").read_text()
    for text in ("PYTHONPATH=examples/custom_family metarl check-family line_family:LineFamily",
                 "PYTHONPATH=examples/custom_family metarl train examples/custom_family/line.yaml",
                 "family.kwargs", '[project.entry-points."metarl.families"]', 'line = "line_family:LineFamily"'):
        assert text in section, text


def test_example_preset_is_commented_and_complete():
    from test_presets import REFERENCE, preset_keys, uncommented_keys

    path = EXAMPLE / "line.yaml"
    assert uncommented_keys(path) == []
    assert preset_keys(path) == preset_keys(REFERENCE)
    assert yaml.safe_load(path.read_text())["family"]["name"] == "line_family:LineFamily"


def test_envs_json_lists_builtin_families():
    proc = metarl("envs", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name, versions in BUILTIN_VERSIONS.items():
        row = rows[name]
        assert "error" not in row, row
        assert row["versions"] == versions
        assert row["default_version"] == versions[0]
        assert set(row["horizons"]) == set(versions)


def test_unknown_family_lists_the_registered_ones():
    with pytest.raises(FamilyError) as info:
        make_family("nope")
    message = str(info.value)
    assert "'nope'" in message and "\n" not in message
    for name in BUILTIN_VERSIONS:
        assert name in message
    assert "package.module:ClassName" in message


def test_train_with_an_unknown_family_exits_2(tmp_path):
    proc = metarl("train", "configs/maml_trpo/2d_navigation.yaml", "--set", "family.name=nope",
                  "--set", f"log.dir={tmp_path}", "--set", "sampler.num_workers=0", "--set", "log.progress=false")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("metarl: error: ") and "'nope'" in lines[0]
    for name in BUILTIN_VERSIONS:
        assert name in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_a_family_around_gymnasium_reacher_passes_check_and_trains(tmp_path):
    """examples/custom_family/reacher_family.py wraps the unmodified Gymnasium Reacher-v5 (float64 observations
    behind TimeLimit and other wrappers): check-family passes and a tiny run trains on real MuJoCo."""
    proc = metarl("check-family", "reacher_family:ReacherGoalFamily")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = metarl("train", str(EXAMPLE / "line.yaml"), "--set", "family.name=reacher_family:ReacherGoalFamily",
                  "--set", "family.version=v5", "--set", "family.kwargs={}", "--set", "train.iterations=2",
                  "--set", "train.meta_batch_size=2", "--set", "sampler.episodes_per_task=2",
                  "--set", "sampler.num_workers=0", "--set", f"log.dir={tmp_path}", "--set", "log.progress=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in next(tmp_path.iterdir()).joinpath("metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    assert all(np.isfinite(r["return_step_1"]) and r["env_steps"] > 0 for r in records)
