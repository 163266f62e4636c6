"""Checkpoints that survive an interrupted run (a Colab disconnect, a killed kernel).

Writing is atomic: the checkpoint goes to a temporary file in the same folder, is flushed to disk,
and only then renamed over the old one (``os.replace`` is atomic on POSIX and Windows). A run
killed half-way through a write leaves the previous checkpoint intact. Loading uses
``torch.load(..., weights_only=True)``, which refuses to run code hidden in a pickle; a file
that is no checkpoint, or one that holds code, is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

import torch

from yolo_teach.data.errors import UserError


class CheckpointError(UserError, pickle.UnpicklingError):
    """A file that is not a checkpoint, or holds pickled code ``weights_only`` refuses to run.

    ``str(error)`` reads ``path: what is wrong``.
    """

    def __init__(self, message: str, path: str | os.PathLike):
        super().__init__(message, path)  # both in args, so the error pickles
        self.message, self.path = message, Path(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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

    Raises:
        OSError: the file cannot be opened (missing, a folder, no permission).
        CheckpointError: it holds objects other than tensors and plain data (pickled code), or
            it is no ``torch.save`` file at all (a truncated download, an image, a text file).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as err:
        reason = _first_sentence(str(err).split("WeightsUnpickler error: ")[-1])
        if "global" in reason.lower():  # weights_only met a class or a function
            raise CheckpointError(f"refused to load pickled code or objects (torch.load with "
                                  f"weights_only=True): {reason}", path) from err
        raise CheckpointError(f"not a checkpoint written by torch.save ({reason})",
                              path) from err
    except Exception as err:  # what torch.load raises for a non-checkpoint varies by content
        raise CheckpointError(f"not a checkpoint written by torch.save ({type(err).__name__}: "
                              f"{_first_sentence(str(err))})", path) from err


def _first_sentence(text: str) -> str:
    """The first line of ``text`` up to its first full stop: torch's messages run long."""
    line = text.strip().split("\n")[0]
    return line.split(". ")[0].rstrip(".")
