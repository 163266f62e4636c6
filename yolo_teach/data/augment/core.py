"""Shared pieces of every transform: the sample arrays and the box filter after each warp."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(image (H, W, 3) uint8, boxes (N, 4) float32 xyxy pixels, labels (N,) int64)``."""

FILL = 114  # grey used for padding and empty canvas, as in YOLOv5's letterbox


def _as_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)  # (N, 4)


def _as_labels(labels) -> np.ndarray:
    return np.asarray(labels, dtype=np.int64).reshape(-1)  # (N,)


def _box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of ``xyxy`` boxes, 0 for inverted ones. ``(N, 4) -> (N,)``."""
    wh = np.clip(boxes[:, 2:4] - boxes[:, 0:2], 0, None)  # (N, 2)
    return wh[:, 0] * wh[:, 1]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``size`` or ``(height, width)`` -> ``(height, width)``."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    height, width = value
    return int(height), int(width)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize`` with area interpolation when shrinking (no aliasing), bilinear otherwise."""
    if image.shape[1] == width and image.shape[0] == height:
        return image.copy()
    shrinking = width < image.shape[1] or height < image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def filter_boxes(
    boxes: np.ndarray,
    labels: np.ndarray,
    width: float,
    height: float,
    min_size: float = 2.0,
    min_area_ratio: float = 0.1,
    max_aspect_ratio: float = 100.0,
    reference_area: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``xyxy`` boxes into the canvas ``[0, W] x [0, H]`` and drop those no longer objects.

    Used after every geometric transform. A box survives when, after clipping,

    - it has positive area and both sides are at least ``min_size`` pixels,
    - it kept at least ``min_area_ratio`` of its area: ``w h / reference_area >= min_area_ratio``
      (``reference_area`` is the area the object would have had without clipping; by default the
      area of the unclipped input boxes, i.e. what clipping removed),
    - its aspect ratio ``max(w/h, h/w)`` is at most ``max_aspect_ratio`` (thin slivers left by
      a crop are not objects).

    These are the rules of YOLOv5's ``box_candidates`` (``wh_thr=2``, ``area_thr=0.1``,
    ``ar_thr=100``). Labels are kept or dropped with their boxes.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` pixels (may stick out of the canvas).
        labels: ``(N,)`` class ids.
        width, height: the canvas ``W, H`` in pixels.
        reference_area: ``(N,)`` area of each box before the transform cut it, or ``None``.

    Returns:
        ``(boxes (M, 4) float32, labels (M,) int64)`` with ``M <= N``, in the input order.
    """
    boxes, labels = _as_boxes(boxes), _as_labels(labels)
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    if reference_area is None:
        reference_area = _box_area(boxes)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    w = clipped[:, 2] - clipped[:, 0]  # (N,)
    h = clipped[:, 3] - clipped[:, 1]  # (N,)
    with np.errstate(divide="ignore", invalid="ignore"):
        area_ratio = w * h / np.maximum(np.asarray(reference_area, np.float64), 1e-12)
        aspect = np.maximum(w / h, h / w)
    keep = np.isfinite(clipped).all(1) & (w > 0) & (h > 0)
    keep &= (w >= min_size) & (h >= min_size)
    keep &= (area_ratio >= min_area_ratio) & (aspect <= max_aspect_ratio)
    return clipped[keep], labels[keep]


def _sample_copy(image: np.ndarray, boxes, labels) -> Sample:
    return image.copy(), _as_boxes(boxes).copy(), _as_labels(labels).copy()


# Resizing: letterbox and its inverse
