"""The MAML paper's baselines, so that a benchmark shows whether meta-learning helped. Each is evaluated with the
same meta-test protocol (config ``eval:``, the same held-out tasks) as the algorithms:

- ``random``: a freshly initialised policy, adapted with the same inner steps;
- ``pretrained``: one policy trained on the whole task distribution without adaptation (MAML-TRPO's outer step on
  the pre-update loss, ``algo.inner_steps: 0``), then adapted with the same inner steps;
- ``oracle``: RLlib's PPO on observations with the task's parameters appended (``family.oracle_features``),
  evaluated without adaptation (a flat line: the same return after every step).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl import seeding
from metarl.components import build
from metarl.config import PRETRAINABLE, Config, resolve_algo
from metarl.evaluation import meta_test
from metarl.families import TaskFamily, make_family

BASELINES = ("random", "pretrained", "oracle")
ORACLE_ENV = "metarl-oracle"


def run_baseline(name: str, config: Config, run_dir: Path) -> dict[str, Any]:
    """Train (where the baseline trains) and meta-test one baseline; writes run_dir/eval.json and returns
    ``{"eval": eval JSON, "env_steps": ..., "seconds": ...}``."""
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    if name == "random":
        parts = build(config)
        try:
            result, env_steps = meta_test(parts.pool, parts.learner, parts.family, config), 0
        finally:
            parts.close()
    elif name == "pretrained":
        from metarl.trainer import Trainer

        config = pretrained_config(config)
        trainer = Trainer(config, run_dir)
        trainer.train()
        parts = build(config, theta=trainer.learner.policy_theta())
        try:
            result, env_steps = meta_test(parts.pool, parts.learner, parts.family, config), trainer.env_steps
        finally:
            parts.close()
    elif name == "oracle":
        result, env_steps = oracle(config, run_dir)
    else:
        raise ValueError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)}")
    (run_dir / "eval.json").write_text(json.dumps(result) + "\n")
    return {"eval": result, "env_steps": env_steps, "seconds": time.perf_counter() - start}


def pretrained_config(config: Config) -> Config:
    """The config's outer step on the pre-update loss, no adaptation in training (the step sizes stay for the
    meta-test's adaptation): MAML-VPG's Adam step where the config names maml-vpg (the MAML paper's pretrained
    2D-navigation policy: Adam at 1e-3), else MAML-TRPO's trust-region step with the config's trust region."""
    name = config.algo.name if config.algo.name in PRETRAINABLE else "maml-trpo"
    return replace(config, algo=resolve_algo(replace(config.algo, name=name, inner_steps=0, first_order=False)))


# ---- oracle ------------------------------------------------------------------------------------------------------


class OracleEnv(gym.Env):
    """A family's env whose observation carries the task's parameters. Training draws a new training task at
    every reset; ``set_task`` pins one (evaluation)."""

    metadata = {"render_modes": []}

    def __init__(self, env_config: dict[str, Any]):
        spec = env_config["family"]
        self.family: TaskFamily = make_family(spec["name"], spec.get("version"), **spec.get("kwargs", {}))
        worker = getattr(env_config, "worker_index", 0) * 1000 + getattr(env_config, "vector_index", 0)
        self._rng = seeding.generator(int(env_config.get("seed", 0)), seeding.TASKS, 7919, worker)
        self._env = self.family.make_env()
        self._pinned: dict | None = None
        self._task = self.family.sample_tasks(self._rng, 1)[0]
        obs_dim = self.family.observation_space.shape[0] + len(self.family.oracle_features(self._task))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = self.family.action_space

    def set_task(self, task: dict) -> None:
        self._pinned = task

    def _observe(self, obs: Any) -> np.ndarray:
        features = np.asarray(self.family.oracle_features(self._task), dtype=np.float32)
        return np.concatenate([np.asarray(obs, dtype=np.float32).reshape(-1), features])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._task = self._pinned if self._pinned is not None else self.family.sample_tasks(self._rng, 1)[0]
        self._env.get_wrapper_attr("set_task")(self._task)
        if seed is None:
            seed = int(self._rng.integers(2**31))
        obs, info = self._env.reset(seed=seed)
        return self._observe(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self._env.step(action)
        return self._observe(obs), float(reward), terminated, truncated, info


def oracle(config: Config, run_dir: Path) -> tuple[dict[str, Any], int]:
    """Train RLlib's PPO on the task-augmented observation for ``train.iterations`` iterations of
    ``sampler.episodes_per_task`` episodes, then score it on the meta-test tasks (mean action, no adaptation)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    from metarl.rollout import init_ray

    init_ray(config.ray.address, config.ray.num_cpus)
    register_env(ORACLE_ENV, OracleEnv)
    env_config = {"family": config.family.spec(), "seed": config.seed}
    horizon = make_family(config.family.name, config.family.version, **config.family.kwargs).horizon
    batch = config.sampler.episodes_per_task * horizon
    ppo = (PPOConfig()
           .environment(ORACLE_ENV, env_config=env_config)
           .env_runners(num_env_runners=0)
           .training(train_batch_size_per_learner=batch, minibatch_size=min(batch, 256), num_epochs=10, lr=3e-4)
           .debugging(seed=config.seed)
           .build_algo())
    try:
        env_steps = 0
        with (run_dir / "oracle_progress.jsonl").open("w") as log:
            for it in range(1, config.train.iterations + 1):
                result = ppo.train()
                env_steps = int(result.get("num_env_steps_sampled_lifetime", env_steps + batch))
                ret = result.get("env_runners", {}).get("episode_return_mean")
                log.write(json.dumps({"iteration": it, "env_steps": env_steps, "episode_return_mean": ret}) + "\n")
                log.flush()
        module = ppo.get_module()
        evaluation = _score_oracle(module, env_config, config)
    finally:
        ppo.stop()
    return evaluation, env_steps


def _score_oracle(module: Any, env_config: dict, config: Config) -> dict[str, Any]:
    """Returns of the oracle's mean action on the meta-test tasks, all (task, episode) envs stepped together."""
    family = make_family(config.family.name, config.family.version, **config.family.kwargs)
    protocol = config.eval
    episodes = protocol.episodes or config.sampler.episodes_per_task
    sample = getattr(family, "sample_test_tasks", None) or family.sample_tasks
    tasks = sample(seeding.generator(config.seed, seeding.EVAL_TASKS), protocol.num_tasks)
    seeds = seeding.rollout_seeds(config.seed, seeding.EVAL_ROLLOUTS, 0, 0, protocol.num_tasks)
    envs, obs = [], []
    for task, seed in zip(tasks, seeds):
        for e in range(episodes):
            env = OracleEnv(env_config)
            env.set_task(task)
            obs.append(env.reset(seed=seed + e)[0])
            envs.append(env)
    returns = np.zeros(len(envs))
    alive = np.ones(len(envs), dtype=bool)
    discrete = isinstance(family.action_space, gym.spaces.Discrete)
    while alive.any():
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(np.stack(obs))})["action_dist_inputs"].numpy()
        actions = out.argmax(-1) if discrete else out[:, : out.shape[1] // 2]  # mean action (no exploration)
        for i in np.flatnonzero(alive):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += reward
            alive[i] = not (terminated or truncated)
    per_task = returns.reshape(len(tasks), episodes).mean(1)
    steps = protocol.steps
    std = per_task.std(ddof=1) if len(tasks) > 1 else 0.0
    return {
        "family": family.name, "version": family.version, "num_tasks": len(tasks), "seed": config.seed,
        "episodes": episodes, "inner_lr": [], "steps": list(range(steps + 1)),
        "mean_return": [float(per_task.mean())] * (steps + 1), "std_return": [float(per_task.std())] * (steps + 1),
        "ci95_return": [float(1.96 * std / np.sqrt(len(tasks)))] * (steps + 1),
        "per_task_return": [[float(r)] * (steps + 1) for r in per_task], "success_rate": None,
    }
