"""Checkpoints that survive an interrupted run (a Colab disconnect, a killed kernel).

Writing is atomic: the checkpoint goes to a temporary file in the same folder, is flushed to disk,
and only then renamed over the old one (``os.replace`` is atomic on POSIX and Windows). A run
killed half-way through a write leaves the previous checkpoint intact. Loading uses
``torch.load(..., weights_only=True)``, which refuses to run code hidden in a pickle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save`, safely (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)
