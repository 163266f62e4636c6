"""Checkpoints that survive an interrupted run (a Colab disconnect, a killed kernel).

Writing is atomic: the checkpoint goes to a temporary file in the same folder, is flushed to disk,
and only then renamed over the old one (``os.replace`` is atomic on POSIX and Windows). A run
killed half-way through a write leaves the previous checkpoint intact. Loading uses
``torch.load(..., weights_only=True)``, which refuses to run code hidden in a pickle.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import torch


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename; returns the path.

    The temporary file is a plain new file (``open(..., "xb")``), so the checkpoint gets the
    permissions of a direct write (0o666 less the umask), not ``tempfile.mkstemp``'s 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # hidden, in the same folder
    f = open(tmp, "xb")  # created before the try: the cleanup below always has a file to remove
    try:
        with f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink()
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save`, safely (``weights_only=True``).

    Passed explicitly: torch < 2.6 (and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) default to False.
    """
    return torch.load(path, map_location=map_location, weights_only=True)
