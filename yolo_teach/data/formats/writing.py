"""Before any file is written: check the dataset can be read back, and find for each box the
fewest decimals that read back to the very same float32 box, so round trips are lossless.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError
from yolo_teach.data.formats.common import NORMALISED_TOLERANCE, _preview

_MAX_DECIMALS = 17  # enough for any float64; a search for the shortest exact text stops there


def _check_names(dataset: BoxDataset) -> None:
    """Image names become file names and class names become text lines: both must be clean."""
    seen = set()
    for name in dataset.names:
        if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\n]", name):
            raise LabelError(f"image name {name!r} cannot be used as a file name")
        if name in seen:
            raise LabelError(f"image name {name!r} appears twice; names become file names")
        seen.add(name)
    classes = dataset.class_names
    for name in classes:
        if not isinstance(name, str) or not name or name != name.strip() or "\n" in name:
            raise LabelError(f"class name {name!r} must be text without surrounding spaces")
    if len(set(classes)) != len(classes):
        raise LabelError(
            f"class names {_preview(classes)} repeat a name; VOC and COCO name classes"
        )


def _writable_boxes(index: int, dataset: BoxDataset) -> np.ndarray:
    """Check image ``index`` of a dataset for writing; return its boxes clipped into the image.

    Boxes may stick out by ``NORMALISED_TOLERANCE`` of the image (clipped silently), so every
    written file reads back without a problem in every format.
    """
    name, image, boxes, labels = dataset.names[index], *dataset[index]
    where = f"dataset image {index} ({name!r})"
    shape = getattr(image, "shape", None)
    if not (getattr(image, "dtype", None) == np.uint8 and len(shape) == 3 and shape[2] == 3):
        raise ImageError(f"{where} has shape {shape}; expected an (H, W, 3) uint8 RGB array")
    height, width = shape[:2]
    if len(boxes) != len(labels):
        raise LabelError(f"{where} has {len(boxes)} boxes but {len(labels)} labels")
    limit = NORMALISED_TOLERANCE * np.array([width, height])
    clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)  # (N, 4)
    bad = (
        ~np.isfinite(boxes).all(axis=1)
        | (boxes[:, :2] < -limit).any(axis=1)
        | (boxes[:, 2:] > np.array([width, height]) + limit).any(axis=1)
        | (clipped[:, 2] <= clipped[:, 0])
        | (clipped[:, 3] <= clipped[:, 1])
    )
    if bad.any():
        k = int(np.argmax(bad))
        message = (
            f"{where}: box {k} {boxes[k].tolist()} is not xyxy inside the {width}x{height} image; "
            f"expected 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}"
        )
        raise LabelError(message)
    out_of_range = (labels < 0) | (labels >= dataset.num_classes)
    if out_of_range.any():
        label = int(labels[np.argmax(out_of_range)])
        raise LabelError(f"{where}: label {label} out of range [0, {dataset.num_classes})")
    return clipped


def _writable_dataset(dataset: BoxDataset) -> list[np.ndarray]:
    """Check a whole dataset before any file is written; return each image's clipped boxes."""
    _check_names(dataset)
    return [_writable_boxes(i, dataset) for i in range(len(dataset))]


def _decimal(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, trailing zeros trimmed (``0.250`` -> ``0.25``)."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _shortest_decimals(values: np.ndarray, decode: Callable, target: np.ndarray) -> list[list[str]]:
    """For each row of ``values``, texts with the fewest decimals that read back as ``target``.

    ``decode`` does what the reader does, ``(M, K)`` numbers -> ``(M, 4)`` ``xyxy`` boxes, so the
    texts of a row decode to exactly its ``target`` row in float32. The values of a row share one
    number of decimals. A row that is not exact even at ``_MAX_DECIMALS`` (a box far below a
    float32 step) gets the longest texts.

    Args:
        values: ``(N, K)`` float64 numbers to write, one row per box.
        decode: the reader's arithmetic.
        target: ``(N, 4)`` float32 ``xyxy`` boxes the texts must read back as.
    """
    target = np.asarray(target, np.float32).reshape(-1, 4)  # (N, 4)
    texts: list = [None] * len(target)
    todo = np.arange(len(target))
    for decimals in range(_MAX_DECIMALS + 1):
        if len(todo) == 0:
            break
        rows = [[_decimal(v, decimals) for v in values[i]] for i in todo]
        decoded = np.asarray(decode(np.array(rows, np.float64)), np.float32)  # (M, 4)
        exact = (decoded == target[todo]).all(axis=1) | (decimals == _MAX_DECIMALS)
        for i, row, done in zip(todo, rows, exact):
            texts[i] = row if done else None
        todo = todo[~exact]
    return texts


def _clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``common._clip`` for ``(N, 4)`` boxes."""
    return np.clip(boxes, 0.0, [width, height, width, height])
