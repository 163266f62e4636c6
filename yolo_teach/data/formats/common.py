"""What every reader and writer shares: the items a reader collects, what ``on_error`` does with
a problem, and reading text, numbers and images with errors that name the file and line.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError, LabelWarning

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
NORMALISED_TOLERANCE = 1e-3  # YOLO: how far (in image widths/heights) a box may stick out unnoticed
PIXEL_TOLERANCE = 1.0  # VOC, COCO: the same in pixels; also absorbs 0-based VOC files
_ON_ERROR = ("raise", "clip", "skip")
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]  # fixed, so the same pixels give the same bytes


# ---------------------------------------------------------------------------------------------
# What a reader collects before class names are settled


@dataclass
class _Object:
    """One box as read from a file: ``xyxy`` pixels, and a class id or (VOC) a class name."""

    box: tuple[float, float, float, float]
    label: int | str
    path: Path
    line: int | None
    difficult: bool = False


@dataclass
class _Item:
    """One image and the objects read for it."""

    name: str
    image: np.ndarray
    objects: list[_Object] = field(default_factory=list)


def _assemble(items: list[_Item], class_names: Sequence[str], meta: dict | None = None):
    """Build the ``BoxDataset`` from items whose labels are class ids by now."""
    return BoxDataset(
        images=[item.image for item in items],
        boxes=[
            np.array([o.box for o in item.objects], np.float32).reshape(-1, 4) for item in items
        ],
        labels=[np.array([o.label for o in item.objects], np.int64) for item in items],
        class_names=list(class_names),
        names=[item.name for item in items],
        meta=meta or {},
    )


# ---------------------------------------------------------------------------------------------
# Problems and what on_error does with them


def _check_on_error(on_error: str) -> None:
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")


def _warn(error: LabelError | ImageError, action: str) -> None:
    warnings.warn(f"{error}; {action}", LabelWarning, stacklevel=3)


def _tolerate(error, on_error: str, modes=("skip",), action: str = "skipped") -> None:
    """Raise ``error`` unless ``on_error`` is one of ``modes``; then warn ``action`` and return."""
    if on_error not in modes:
        raise error
    _warn(error, action)


def _drop_degenerate(error: LabelError, on_error: str) -> None:
    """A box with no area: an error when raising, else dropped (``clip`` and ``skip`` alike)."""
    _tolerate(error, on_error, modes=("clip", "skip"), action="dropped")


def _clip(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """Clamp an ``xyxy`` box into ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def _fit_box(box, width, height, tolerance, on_error, locate: Callable, outside: str):
    """Return an ``xyxy`` box (with ``x2 > x1``, ``y2 > y1``) clipped into the image, or ``None``.

    Sticking out by at most ``tolerance`` is clipped silently. More is a problem, worded by
    ``outside``: raised, clipped (``clip``) or skipped (``skip``). A box left with no area inside
    the image is dropped in ``clip`` mode. ``locate(message)`` makes the ``LabelError`` that
    names the file and line, only when there is a problem.
    """
    x1, y1, x2, y2 = box
    clipped = _clip(box, width, height)
    sticks_out = min(x1, y1) < -tolerance or x2 > width + tolerance or y2 > height + tolerance
    no_area = clipped[2] <= clipped[0] or clipped[3] <= clipped[1]
    if not (sticks_out or no_area):
        return clipped
    message = outside if sticks_out else "the box has no area (its width or height rounds to 0)"
    error = locate(message)
    if on_error == "clip" and not no_area:
        _warn(error, "clipped into the image")
        return clipped
    action = "skipped" if on_error == "skip" else "dropped: no area left inside the image"
    _tolerate(error, on_error, modes=("clip", "skip"), action=action)
    return None


# ---------------------------------------------------------------------------------------------
# Reading files: text, numbers, images


def _line_at(data: bytes | str, offset: int) -> int:
    """The 1-based line that holds character (or byte) ``offset``."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise LabelError(f"cannot read the file ({err.strerror})", path) from None


def _read_text(path: Path) -> str:
    """Decode a text file as UTF-8 (a BOM is fine); ``LabelError`` at binary or non-UTF-8 bytes."""
    data = _read_bytes(path)
    nul = data.find(b"\0")
    if nul >= 0:
        message = "binary data (a NUL byte); expected a UTF-8 text file"
        raise LabelError(message, path, _line_at(data, nul))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        message = f"byte 0x{data[err.start]:02x} is not UTF-8; expected a UTF-8 text file"
        raise LabelError(message, path, _line_at(data, err.start)) from None


def _number(text: str, what: str, path: Path, line: int | None) -> float:
    """Parse a finite number from label text, naming ``what`` it was meant to be on failure."""
    try:
        value = float(text)
    except ValueError:
        raise LabelError(f"{what} {text!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise LabelError(f"{what} is {text!r}; expected a finite number", path, line)
    return value


def _list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    suffixes = set(IMAGE_SUFFIXES)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())


def _read_image(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; ``ImageError`` if it cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # with imdecode: also works for non-ASCII paths
    except OSError as err:
        raise ImageError(f"cannot read the image ({err.strerror})", path) from None
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ImageError("not a readable image (corrupt, truncated or not an image)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _PNG_PARAMS)
    if not ok:
        raise ImageError("OpenCV could not encode the image as PNG", path)
    path.write_bytes(data.tobytes())


def _read_class_list(path: Path) -> list[str] | None:
    """Class names from a ``classes.txt`` (one a line), or ``None`` if there is no such file."""
    if not path.is_file():
        return None
    return [name.strip() for name in _read_text(path).split("\n") if name.strip()]


def _preview(values: Sequence, limit: int = 10) -> str:
    """A short list for a message: the first ``limit`` values, then how many more."""
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"
