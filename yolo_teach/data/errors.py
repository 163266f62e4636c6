"""Errors and the warning raised by the label-format readers, each pointing at a file and a line.

A message reads like a compiler's: ``labels/cat.txt:3: class id 7 out of range [0, 3) ...``, so a
learner can open the file at the line and see what is wrong and what was expected.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix: a missing or malformed file, a bad option, an absent device.

    The command line prints these in one line (``yolo-teach: error: ...``) and exits with status
    2; any other exception is a bug and keeps its traceback.
    """


class _LocatedError(UserError, ValueError):
    """A ``ValueError`` that knows the file (``.path``) and 1-based line (``.line``) it is about.

    ``path`` is ``None`` for a problem with an in-memory dataset; ``line`` is ``None`` for a problem
    with a whole file (a corrupt image, a label file without its image).
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        super().__init__(message, path, line)  # all three in args, so the error pickles
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.message}"


class LabelError(_LocatedError):
    """A label file breaks its format, or a dataset about to be written could not be read back."""


class ImageError(_LocatedError):
    """An image is missing, unreadable or corrupt, or an in-memory image is not (H, W, 3) uint8."""


class LabelWarning(UserWarning):
    """A bad label was clipped, dropped or skipped because ``on_error`` asked for that."""
