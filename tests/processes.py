"""Helpers the end-to-end tests share: the `metarl` command as a subprocess, a run's metrics without timings, and
the processes below a PID (so a test stops exactly what it started)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def metarl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m metarl ...`` from the repository root, never joining a cluster named by RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "metarl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in records]


def metrics(run_dir: Path) -> list[dict]:
    """Every metrics.jsonl record of a run, without the timing fields (which differ between identical runs)."""
    return without_times(read_metrics(run_dir))


def descendants(pid: int) -> set[int]:
    """PIDs of every process below ``pid`` (Ray's gcs_server, raylet and workers for an embedded Ray)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found
