"""Meta-training, one meta-iteration after another:
tasks → support rollouts with θ → adapt → … → query rollouts with φ_K → outer step → log → checkpoint."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from metarl import seeding
from metarl.checkpoint import CheckpointError, load_checkpoint, prune_checkpoints, save_checkpoint
from metarl.components import build
from metarl.config import Config, caveats, save_config, to_dict
from metarl.evaluation import meta_test, sample_adaptation_path
from metarl.logging import RunLogger
from metarl.signals import Aborted


class Trainer:
    """Holds the run's resources (family, learner, Ray pool, logger); ``train()`` is the loop."""

    def __init__(self, config: Config, run_dir: Path, resume_from: Path | None = None):
        state = load_checkpoint(resume_from) if resume_from is not None else None
        parts = build(config, theta=state["theta"] if state else None,  # starts Ray before anything is written
                      theta_source=resume_from)
        if state is not None:
            try:
                parts.learner.load_optimizer_state(state["optimizer"])
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                parts.close()
                raise CheckpointError(f"checkpoint {resume_from}: its optimiser state does not fit algo.name "
                                      f"{config.algo.name!r} ({str(exc).splitlines()[0]})") from None
        self._parts = parts
        self.config, self.family, self.policy = parts.config, parts.family, parts.policy
        self.learner, self.pool = parts.learner, parts.pool
        self.run_dir = run_dir
        self.task_rng = seeding.generator(config.seed, seeding.TASKS)
        self.start_iteration, self.env_steps = 0, 0
        seeding.seed_globals(config.seed)
        if state is not None:
            seeding.restore_rng_state(self.task_rng, state["rng"])
            self.start_iteration, self.env_steps = state["iteration"], state["env_steps"]
            self.learner.skipped_updates = state["skipped_updates"]
        # The state after the last completed iteration, and the iteration of the newest checkpoint on disk: what a
        # signal or a failing worker mid-iteration saves (a half-done outer step must never reach a checkpoint).
        self.completed: dict[str, Any] | None = None
        self.saved_iteration = self.start_iteration
        run_dir.mkdir(parents=True, exist_ok=True)
        if state is not None:
            _cut_metrics(run_dir / "metrics.jsonl", self.start_iteration)
        save_config(self.config, run_dir / "config.yaml")
        self.logger = RunLogger(run_dir, to_dict(self.config), config.train.iterations,
                                config.algo.inner_steps, self.start_iteration, config.log.progress)
        for line in caveats(self.config):
            self.logger.print(f"warning: {line}")

    def train(self) -> Path:
        cfg = self.config
        K, n, E = cfg.algo.inner_steps, cfg.train.meta_batch_size, cfg.sampler.episodes_per_task
        try:
            for it in range(self.start_iteration + 1, cfg.train.iterations + 1):
                t_start = time.perf_counter()
                tasks = self.family.sample_tasks(self.task_rng, n)
                path = sample_adaptation_path(
                    self.pool, self.learner, tasks, E, K,
                    lambda k, it=it: seeding.rollout_seeds(cfg.seed, seeding.ROLLOUTS, it, k, n))
                t_update = time.perf_counter()
                stats = self.learner.meta_update(path.supports, path.query)
                time_update = time.perf_counter() - t_update
                time_iteration = time.perf_counter() - t_start

                steps_now = sum(r.env_steps for r in path.rollouts)
                self.env_steps += steps_now
                tested = None
                if cfg.train.eval_every and it % cfg.train.eval_every == 0:
                    tested = meta_test(self.pool, self.learner, self.family, cfg)
                # Copied before logging: a signal after the metrics line then only finds the iteration before if it
                # comes while the logger is still writing (resume reruns that iteration once)
                completed = self.state(it)
                self._log(it, path, stats, time_iteration, time_update, steps_now, tested)
                self.completed = completed
                if it % cfg.train.checkpoint_every == 0 or it == cfg.train.iterations:
                    self.save_completed()
        except Aborted:  # a second signal: stop at once, write nothing more
            raise
        except BaseException:  # a signal, a failing worker, a bug: keep what the finished iterations learned
            self.save_completed()
            raise
        finally:
            self.close()
        return self.run_dir

    def _log(self, it: int, path, stats: dict, time_iteration: float, time_update: float, steps_now: int,
             tested: dict | None) -> None:
        metrics: dict[str, float | None] = {}
        scalars: dict[str, float] = {}
        report_success = getattr(self.family, "reports_success", False)
        for k, rollouts in enumerate(path.rollouts):
            metrics[f"return_step_{k}"] = scalars[f"adaptation/return_step_{k}"] = \
                float(rollouts.episode_returns().mean())
            if report_success:
                metrics[f"success_step_{k}"] = scalars[f"adaptation/success_step_{k}"] = float(rollouts.success.mean())
        metrics |= {"time_iteration_s": time_iteration, "time_sample_s": path.time_sample_s,
                    "time_adapt_s": path.time_adapt_s, "time_update_s": time_update}
        for key in ("loss_before", "loss_after", "kl", "line_search_steps", "grad_norm"):
            if key in stats:
                scalars[f"outer/{key}"] = float(stats[key])
        lr_mean, lr_std = self.learner.inner_lr_stats()
        scalars |= {
            "inner/lr_mean": lr_mean,
            "inner/lr_std": lr_std,
            "perf/env_steps_per_s": steps_now / path.time_sample_s if path.time_sample_s > 0 else math.nan,
            "perf/time_sample_s": path.time_sample_s,
            "perf/time_update_s": time_update,
            "faults/worker_restarts": self.pool.worker_restarts,
            "faults/skipped_updates": self.learner.skipped_updates,
        }
        metrics["skipped_updates"] = self.learner.skipped_updates
        if tested is not None:  # the periodic meta-test on the fixed held-out tasks (config eval:)
            for k, value in enumerate(tested["mean_return"]):
                metrics[f"meta_test_return_step_{k}"] = scalars[f"meta_test/return_step_{k}"] = value
            for k, value in enumerate(tested["success_rate"] or []):
                metrics[f"meta_test_success_step_{k}"] = scalars[f"meta_test/success_step_{k}"] = value
        self.logger.log(it, self.env_steps, metrics, scalars)
        if tested is not None:
            self.logger.log_meta_test(it, tested, self.config.algo.name, self.config.eval.reference())

    def state(self, it: int) -> dict[str, Any]:
        """Everything a bit-identical resume needs, copied (the optimiser updates its tensors in place)."""
        return copy.deepcopy({
            "iteration": it,
            "env_steps": self.env_steps,
            **self.learner.state_dict(),  # θ (with learned step sizes), the outer optimiser, skipped updates
            "rng": seeding.capture_rng_state(self.task_rng),
            "config": to_dict(self.config),
        })

    def save_completed(self) -> Path | None:
        """Write the last completed iteration's checkpoint unless it is on disk already; keep the newest
        ``train.keep_checkpoints``. Returns the newest checkpoint (None before the first iteration)."""
        folder = self.run_dir / "checkpoints"
        if self.completed is not None and self.completed["iteration"] > self.saved_iteration:
            it = self.completed["iteration"]
            save_checkpoint(folder / f"iter_{it}.pt", self.completed)
            self.saved_iteration = it
            prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
        return folder / f"iter_{self.saved_iteration}.pt" if self.saved_iteration else None

    def close(self) -> None:
        self.logger.close()
        self._parts.close()


def _cut_metrics(metrics: Path, iteration: int) -> None:
    """Drop metrics.jsonl records after ``iteration`` (the resumed run writes them again); the old file is kept as
    metrics.jsonl.before-resume-N, and a line a crash left half-written is dropped too."""
    if not metrics.exists():
        return
    shutil.copy2(metrics, metrics.with_name(f"metrics.jsonl.before-resume-{iteration}"))
    kept = []
    for line in metrics.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("iteration"), int) and record["iteration"] <= iteration:
            kept.append(line)
    tmp = metrics.with_name("metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, metrics)
