"""Full training state to and from disk, written atomically (temp file, fsync, rename, fsync of the folder), so a
crash, a signal or a full disk mid-save never leaves a corrupt or half-written checkpoint behind; read back with
``torch.load(weights_only=True)``, so a checkpoint file can never run code."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 2
"""Checkpoint layout version: bumped when the keys below change meaning; older files are refused by name."""
REQUIRED = ("format", "iteration", "env_steps", "theta", "optimizer", "skipped_updates", "rng", "config")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, or from an incompatible metarl version."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by ``save_checkpoint``; any unusable file is a ``CheckpointError`` naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError, TypeError,
            AttributeError, KeyError, IndexError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read ({reason}); "
                              "resume from an earlier checkpoint in the same folder") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds no metarl training state")
    if state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} was written by an incompatible metarl version (format "
                              f"{state.get('format', 'unknown')}, this version reads format {FORMAT})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by this metarl")
    return state


def checkpoint_files(run_dir: Path) -> list[Path]:
    """``run_dir/checkpoints/iter_N.pt`` files, oldest iteration first (other names are ignored)."""
    files = [p for p in (run_dir / "checkpoints").glob("iter_*.pt") if p.stem[5:].isdigit()]
    return sorted(files, key=lambda p: int(p.stem[5:]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the highest iteration number in ``run_dir/checkpoints``."""
    files = checkpoint_files(run_dir)
    return files[-1] if files else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (0 keeps every one)."""
    if keep > 0:
        for old in checkpoint_files(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
