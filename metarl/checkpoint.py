"""Full training state to and from disk, written atomically (temp file + rename), so a crash mid-save never
leaves a corrupt or half-written checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest iteration number in ``run_dir/checkpoints``."""
    files = sorted((run_dir / "checkpoints").glob("iter_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return files[-1] if files else None
