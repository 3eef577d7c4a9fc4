"""Meta-World families on the real benchmark (metaworld 3.1.1, MuJoCo): train and test splits never mix, a
meta-batch mixing classes runs every task in its own class, success is reported end to end, and a missing extra
is a one-line error. Everything but the last test skips when the extra is not installed."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ML1_PRESET = "configs/maml_trpo/metaworld_ml1_reach.yaml"


def _metaworld():
    return pytest.importorskip("metaworld")


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ml10():
    """One ML10 family per module: building the benchmark's task lists takes seconds per class."""
    _metaworld()
    from metarl.families import make_family

    family = make_family("metaworld-ml10", horizon=5)
    family.sample_tasks(np.random.default_rng(0), 1)  # builds the benchmark once
    return family


def _rand_vecs(tasks: list[dict]) -> set[tuple[str, tuple[float, ...]]]:
    return {(t["env_name"], tuple(t["rand_vec"])) for t in tasks}


def test_ml1_trains_on_train_goals_and_meta_tests_on_held_out_goals():
    _metaworld()
    from metarl.envs.meta_world import benchmark_tasks

    from metarl.families import make_family

    family = make_family("metaworld-ml1", env_name="reach-v3")
    train = family.sample_tasks(np.random.default_rng(0), 200)
    test = family.sample_test_tasks(np.random.default_rng(0), 200)
    assert {t["env_name"] for t in train} == {t["env_name"] for t in test} == {"reach-v3"}
    assert {t["split"] for t in train} == {"train"} and {t["split"] for t in test} == {"test"}
    lists = benchmark_tasks("ML1", "reach-v3", family.benchmark_seed)
    assert len(lists["train"]["reach-v3"]) == len(lists["test"]["reach-v3"]) == 50
    assert _rand_vecs(train) == _rand_vecs(lists["train"]["reach-v3"])  # 200 draws cover all 50 train goals
    assert not _rand_vecs(lists["train"]["reach-v3"]) & _rand_vecs(lists["test"]["reach-v3"])
    assert json.loads(json.dumps(train)) == train  # tasks are plain JSON


@pytest.mark.slow
def test_ml10_train_and_test_classes_are_disjoint(ml10):
    assert set(ml10.train_classes).isdisjoint(ml10.test_classes)
    assert len(ml10.train_classes) == 10 and len(ml10.test_classes) == 5
    batch = ml10.sample_tasks(np.random.default_rng(1), 20)
    assert {t["split"] for t in batch} == {"train"}
    assert sorted(t["env_name"] for t in batch) == sorted(ml10.train_classes * 2)  # two of each, as the benchmark
    test = ml10.sample_test_tasks(np.random.default_rng(1), 40)
    assert {t["split"] for t in test} == {"test"}
    assert {t["env_name"] for t in test} == set(ml10.test_classes)


def _reference_episode(task: dict, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observations and rewards of ``actions`` in a fresh env of the task's own class, built from metaworld
    alone (no metarl code), set to the task's benchmark data."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.types import Task

    cls = ALL_V3_ENVIRONMENTS[task["env_name"]]
    env = cls()
    env.set_task(Task(env_name=task["env_name"], data=pickle.dumps(
        {"rand_vec": np.asarray(task["rand_vec"]), "env_cls": cls, "partially_observable": True})))
    obs = [env.reset()[0]]
    rewards = []
    for a in actions:
        o, r, *_ = env.step(np.clip(a, -1, 1))
        obs.append(o)
        rewards.append(r)
    env.close()
    return np.asarray(obs[:-1], dtype=np.float32), np.asarray(rewards, dtype=np.float32)


@pytest.mark.slow
def test_a_meta_batch_mixing_classes_samples_each_task_in_its_own_class(ml10):
    """One worker, one set of envs: a mixed meta-batch, then the same tasks in another order (every env switches
    class in place); each task's episode matches a fresh env of its own class step for step."""
    import torch

    from metarl.policies import expand, to_numpy
    from metarl.rollout import RolloutWorker

    worker = RolloutWorker({"name": "metaworld-ml10", "version": None, "kwargs": {"horizon": 5}},
                           {"hidden_sizes": (8,), "activation": "tanh", "init_log_std": 0.0})
    tasks = ml10.sample_tasks(np.random.default_rng(2), 10)  # one of each train class
    assert len({t["env_name"] for t in tasks}) == 10
    params = to_numpy(expand(worker.policy.init_params(torch.Generator().manual_seed(0)), len(tasks)))
    for order in (tasks, tasks[::-1]):
        rollouts = worker.sample(order, params, episodes=2, seeds=list(range(len(order))))
        assert rollouts.obs.shape == (10, 2, 5, 39) and rollouts.success.shape == (10, 2)
        for i in (0, 4, 9):
            for e in range(2):
                obs, rewards = _reference_episode(order[i], rollouts.actions[i, e])
                np.testing.assert_allclose(rollouts.obs[i, e], obs, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(rollouts.rewards[i, e], rewards, rtol=1e-4, atol=1e-5)
    envs = worker._envs[0].envs
    assert len(envs) == 20 and {env.get_task()["env_name"] for env in envs} == set(ml10.train_classes)


def test_success_flag_is_the_benchmarks():
    """Driving the hand to reach-v3's goal sets info["success"], and only near the goal."""
    _metaworld()
    from metarl.families import make_family

    family = make_family("metaworld-ml1", env_name="reach-v3")
    env = family.make_env(family.sample_tasks(np.random.default_rng(0), 1)[0])
    obs, _ = env.reset(seed=0)
    target = env.unwrapped._sub._target_pos
    flags = []
    for _ in range(150):
        action = np.append(np.clip((target - obs[:3]) * 10.0, -1, 1), 0.0).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        flags.append((info["success"], float(np.linalg.norm(obs[:3] - target))))
        assert not terminated and not truncated
    assert flags[0][0] is False and any(success for success, _ in flags)
    assert not any(success for success, distance in flags if distance > 0.1)


@pytest.mark.slow
def test_train_reports_success_and_eval_follows_the_benchmark_protocol(tmp_path):
    """A tiny `metarl train` on ML1 (one Ray worker: tasks cross Ray as JSON) logs success_step_k, and
    `metarl eval` scores held-out goals with the benchmark's 3 evaluation episodes after adaptation."""
    _metaworld()
    sets = ["train.iterations=2", "train.meta_batch_size=2", "sampler.episodes_per_task=2", "sampler.num_workers=1",
            "family.kwargs={env_name: reach-v3, horizon: 10}", "train.eval_every=0", "log.progress=false",
            f"log.dir={tmp_path}", "ray.num_cpus=1"]
    proc = _run("-m", "metarl", "train", ML1_PRESET, *[f"--set={s}" for s in sets])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert 0.0 <= record["success_step_0"] <= 1.0 and 0.0 <= record["success_step_1"] <= 1.0
    proc = _run("-m", "metarl", "eval", str(run_dir), "--num-tasks", "2", "--steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["family"] == "metaworld-ml1" and result["steps"] == [0, 1]
    assert len(result["success_rate"]) == 2 and result["query_episodes"] == 3


def test_meta_test_samples_only_test_tasks():
    """evaluate() draws from sample_test_tasks when a family has one (here: ML1's held-out goals)."""
    _metaworld()
    from metarl.components import build
    from metarl.config import load_config
    from metarl.evaluation import evaluate
    from metarl.rollout import RolloutPool

    config = load_config(ROOT / ML1_PRESET, ["sampler.num_workers=0", "family.kwargs={env_name: reach-v3, horizon: 3}",
                                             "policy.hidden_sizes=[8]"])
    parts = build(config)
    seen: list[dict] = []

    class Recording(RolloutPool):
        def sample(self, tasks, params, episodes, seeds):
            seen.extend(tasks)
            return super().sample(tasks, params, episodes, seeds)

    pool = Recording(config.family.spec(), config.policy.spec(), 0)
    result = evaluate(pool, parts.learner, parts.family, seed=0, num_tasks=3, steps=1, episodes=2)
    assert seen and {t["split"] for t in seen} == {"test"}
    assert result["success_rate"] is not None and len(result["success_rate"]) == 2


BLOCK_METAWORLD = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "metaworld" or name.startswith("metaworld."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Blocker())
for name in [m for m in sys.modules if m == "metaworld" or m.startswith("metaworld.")]:
    del sys.modules[name]
from metarl.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("args", [["train", ML1_PRESET, "--set=log.dir=/nonexistent/never-written"],
                                  ["check-family", "metaworld-ml10"]], ids=["train", "check-family"])
def test_missing_extra_is_a_one_line_error_naming_it(args):
    """Without metaworld importable, naming a Meta-World family ends with exit 2 and one stderr line."""
    proc = _run("-c", BLOCK_METAWORLD, *args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install -e '.[metaworld]'" in lines[0] and "metaworld" in lines[0]


def test_families_are_listed_without_the_extra():
    proc = _run("-c", BLOCK_METAWORLD, "envs", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in ("metaworld-ml1", "metaworld-ml10", "metaworld-ml45"):
        assert rows[name]["default_version"] == "reward-v2" and rows[name]["horizons"]["reward-v2"] == 500
