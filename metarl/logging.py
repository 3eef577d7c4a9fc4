"""Where training reports go: TensorBoard scalars, metrics.jsonl (one line per meta-iteration) and a progress bar.

Tag names are a contract (DESIGN.md): adaptation/return_step_k, outer/*, inner/*, perf/*, faults/*.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from metarl.plots import Reference


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


class RunLogger:
    """Writes one run's TensorBoard events and metrics.jsonl; shows a rich progress bar on the console."""

    def __init__(self, run_dir: Path, config: dict, total_iterations: int, inner_steps: int, start_iteration: int = 0,
                 progress: bool = True):
        self.run_dir = run_dir
        # A resumed run continues the same curves: TensorBoard drops events past the checkpoint's iteration.
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=start_iteration + 1 if start_iteration else None)
        eval_steps = int(config.get("eval", {}).get("steps", inner_steps))
        self._write_layout(inner_steps, eval_steps)
        if start_iteration == 0:
            self._write_hparams(config, inner_steps, eval_steps)
        self._metrics = (run_dir / "metrics.jsonl").open("a")
        self.console = Console(stderr=True)
        self._progress: Progress | None = None
        if progress:
            self._progress = Progress(
                TextColumn("iter"), MofNCompleteColumn(), BarColumn(bar_width=20), TextColumn("eta"),
                TimeRemainingColumn(), TextColumn("{task.fields[speed]}"), TextColumn("{task.fields[ret]}"),
                console=self.console, transient=False)
            self._task = self._progress.add_task("train", total=total_iterations, completed=start_iteration,
                                                 speed="", ret="")
            self._progress.start()

    def _write_layout(self, inner_steps: int, eval_steps: int) -> None:
        """Custom-scalars charts that draw all return_step_k curves of training and of the meta-test on one plot
        each."""
        self.writer.add_custom_scalars({
            "adaptation": {
                "return after k inner steps": ["Multiline", [f"adaptation/return_step_{k}"
                                                             for k in range(inner_steps + 1)]],
                "meta-test return after k steps": ["Multiline", [f"meta_test/return_step_{k}"
                                                                 for k in range(eval_steps + 1)]],
            },
        })

    def _write_hparams(self, config: dict, inner_steps: int, eval_steps: int) -> None:
        """The hyperparameters as a Text table and in the HParams tab, whose metric columns show each run's latest
        training and meta-test returns."""
        flat = _flatten(config)
        table = "\n".join(f"|{k}|{v}|" for k, v in flat.items())
        self.writer.add_text("hyperparameters", f"|key|value|\n|-|-|\n{table}")
        metrics = {f"adaptation/return_step_{k}": 0.0 for k in range(inner_steps + 1)}
        metrics |= {f"meta_test/return_step_{k}": 0.0 for k in range(eval_steps + 1)}
        exp, ssi, sei = hparams(flat, metrics)
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)

    def log(self, iteration: int, env_steps: int, metrics: dict[str, Any], scalars: dict[str, float]) -> None:
        """Record one meta-iteration: ``metrics`` go to metrics.jsonl, ``scalars`` (tag -> value) to TensorBoard."""
        record = {"iteration": iteration, "env_steps": env_steps,
                  **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, global_step=iteration)
        self.writer.flush()
        if self._progress is not None:
            k = max(int(key.rsplit("_", 1)[1]) for key in metrics if key.startswith("return_step_"))
            self._progress.update(self._task, completed=iteration,
                                  speed=f"{scalars.get('perf/env_steps_per_s', 0) / 1e3:,.0f}k env-steps/s",
                                  ret=f"return@{k}: {metrics[f'return_step_{k}']:.2f}")

    def log_meta_test(self, iteration: int, result: dict[str, Any], label: str,
                      reference: Reference | None = None) -> None:
        """Per-task return histograms of each inner step and the adaptation-curve figure of one meta-test (with the
        config's published reference curve, where it has one)."""
        from metarl import plots

        per_task = np.asarray(result["per_task_return"])  # [tasks, steps + 1]
        for k in result["steps"]:
            self.writer.add_histogram(f"meta_test/per_task_return_step_{k}", per_task[:, k], global_step=iteration)
        title = f"meta-test at iteration {iteration} ({result['num_tasks']} tasks)"
        self.writer.add_figure("meta_test/adaptation_curve", plots.adaptation_figure({label: result}, title, reference),
                               global_step=iteration)
        self.writer.flush()

    def print(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._metrics.close()
        self.writer.close()
