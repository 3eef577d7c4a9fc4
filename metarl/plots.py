"""Figures of meta-test results: the adaptation curve (return vs inner step, mean and 95% band over tasks, or over
seeds) and the learning curve (post-adaptation return vs env steps). Drawn off-screen (Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402

Reference = tuple[str, Sequence[float]]
"""A published adaptation curve: (label, mean return after 0, 1, ... inner steps), from ``EvalConfig.reference``."""


def adaptation_figure(curves: Mapping[str, Mapping], title: str = "", reference: Reference | None = None) -> Figure:
    """One line per label from eval-JSON-like dicts with ``steps``, ``mean_return`` and ``ci95_return``; plus
    ``reference`` = (label, mean return per step), e.g. a paper's row, dashed, over the steps the curves have."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    shown = list(next(iter(curves.values()))["steps"]) if curves else []
    for label, result in curves.items():
        steps, mean, ci = result["steps"], result["mean_return"], result["ci95_return"]
        line, = ax.plot(steps, mean, marker="o", label=label)
        ax.fill_between(steps, [m - c for m, c in zip(mean, ci)], [m + c for m, c in zip(mean, ci)],
                        color=line.get_color(), alpha=0.2)
    if reference is not None:
        label, values = reference
        n = min(len(shown), len(values)) if curves else len(values)
        ax.plot(range(n), values[:n], color="black", linestyle="--", marker="s", label=label)
    ax.set_xlabel("inner steps")
    ax.set_ylabel("mean return (95% band)")
    ax.set_xticks(shown)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def learning_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "") -> Figure:
    """Training return after the inner steps against env steps, one line per label."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (steps, returns) in curves.items():
        ax.plot(steps, returns, label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training return after the inner steps")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path | str) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
