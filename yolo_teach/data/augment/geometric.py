"""Geometric transforms: letterbox and its inverse, horizontal flip, one-matrix random affine."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from yolo_teach.data.augment.core import (
    FILL,
    Sample,
    _as_boxes,
    _as_labels,
    _box_area,
    _pair,
    _resize,
    _sample_copy,
    filter_boxes,
)


def resize_keep_aspect(
    image: np.ndarray, boxes: np.ndarray, size: int | Sequence[int], scaleup: bool = True
) -> tuple[np.ndarray, np.ndarray, float]:
    """Resize so the image fits in ``size`` (an int or ``(height, width)``), aspect ratio kept.

    The scale is :math:`r = \\min(H_{out} / H, W_{out} / W)` (at most 1 when ``scaleup`` is
    False); the image becomes ``round(H r) x round(W r)`` and the boxes are multiplied by ``r``.

    Returns:
        ``(image, boxes (N, 4) float32 xyxy, r)``.
    """
    out_h, out_w = _pair(size)
    h, w = image.shape[:2]
    r = min(out_h / h, out_w / w)
    if not scaleup:
        r = min(r, 1.0)
    new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
    return _resize(image, new_w, new_h), _as_boxes(boxes) * np.float32(r), r


def letterbox(
    image: np.ndarray,
    boxes: np.ndarray,
    size: int | Sequence[int],
    color: int = FILL,
    scaleup: bool = True,
) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio, then pad with ``color`` to ``size`` (YOLOv3/v4 inference).

    A box maps as :math:`x' = r x + p_x,\\; y' = r y + p_y` with ``r`` from
    :func:`resize_keep_aspect` and the padding centred (``p = floor((S - round(r W)) / 2)``);
    :func:`unletterbox_boxes` is the inverse. Boxes are clipped to the canvas (a no-op for boxes
    inside the input image, up to float rounding) but never dropped, so no labels are needed.

    Args:
        image: ``(H, W, 3)`` uint8.
        boxes: ``(N, 4)`` ``xyxy`` pixels of ``image``.
        size: output side ``S`` or ``(height, width)``.

    Returns:
        ``(image (S, S, 3) uint8, boxes (N, 4) float32, r, (p_x, p_y))``.
    """
    out_h, out_w = _pair(size)
    resized, boxes, r = resize_keep_aspect(image, boxes, (out_h, out_w), scaleup=scaleup)
    new_h, new_w = resized.shape[:2]
    left, top = (out_w - new_w) // 2, (out_h - new_h) // 2
    canvas = np.full((out_h, out_w, 3), color, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    boxes = boxes + np.array([left, top, left, top], np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, out_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, out_h)
    return canvas, boxes, r, (float(left), float(top))


def unletterbox_boxes(
    boxes, scale: float, pad: Sequence[float], shape: Sequence[int] | None = None
) -> np.ndarray:
    """Map ``xyxy`` boxes from the letterboxed image back to the original one.

    :math:`x = (x' - p_x) / r,\\; y = (y' - p_y) / r`. Works on predictions (any float boxes).

    Args:
        boxes: ``(N, 4)`` ``xyxy`` in letterboxed pixels.
        scale: ``r`` returned by :func:`letterbox`.
        pad: ``(p_x, p_y)`` returned by :func:`letterbox`.
        shape: optional original ``(H, W)`` to clip the result to.

    Returns:
        ``(N, 4)`` float32 ``xyxy`` in pixels of the original image.
    """
    pad_x, pad_y = pad
    out = (_as_boxes(boxes) - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / np.float32(
        scale
    )
    if shape is not None:
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
    return out


def hflip(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator | None = None,
    p: float = 1.0,
) -> Sample:
    """Mirror left-right: :math:`x_1' = W - x_2,\\; x_2' = W - x_1` (YOLOv4 §2.2, flipping).

    Without ``rng`` the flip always happens (so ``hflip(*hflip(s)) == s``); with ``rng`` it
    happens with probability ``p`` (one uniform draw), which lets it sit in a :func:`compose`.
    """
    if rng is not None and rng.random() >= p:
        return _sample_copy(image, boxes, labels)
    width = image.shape[1]
    boxes = _as_boxes(boxes).astype(np.float64)  # exact W - x before rounding back to float32
    flipped = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    return image[:, ::-1].copy(), flipped.astype(np.float32), _as_labels(labels).copy()


def affine_matrix(
    width: int,
    height: int,
    out_width: int,
    out_height: int,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
) -> np.ndarray:
    """Draw one random affine map as a 3x3 matrix :math:`M = T\\,S\\,R\\,C`.

    - :math:`C` moves the input centre to the origin,
    - :math:`R` rotates by :math:`a \\sim U(-\\text{degrees}, \\text{degrees})` and scales by
      :math:`s \\sim U(1 - \\text{scale}, 1 + \\text{scale})`,
    - :math:`S` shears x and y by angles drawn from :math:`U(-\\text{shear}, \\text{shear})`,
    - :math:`T` moves the origin to the output centre, shifted by up to ``translate`` of the
      output size.

    The draws happen in a fixed order whatever the arguments, so the random stream only
    depends on the seed.
    """
    C = np.eye(3)
    C[0, 2], C[1, 2] = -width / 2, -height / 2
    angle = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1 + scale)
    R = np.eye(3)
    R[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=s)
    S = np.eye(3)
    S[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    S[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    T = np.eye(3)
    T[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_width
    T[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_height
    return T @ S @ R @ C


def transform_boxes(boxes: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Map ``xyxy`` boxes through the 3x3 affine ``M``: transform the 4 corners, take min/max.

    The result encloses the transformed box, so after a rotation it is larger than the object
    (the price of having no masks). ``(N, 4) -> (N, 4)`` float32.
    """
    boxes = _as_boxes(boxes).astype(np.float64)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], 1).reshape(-1, 4, 2)  # (N, 4, 2)
    corners = corners @ M[:2, :2].T + M[:2, 2]  # (N, 4, 2)
    return np.concatenate([corners.min(1), corners.max(1)], 1).astype(np.float32)  # (N, 4)


def random_affine(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
    border: int | Sequence[int] = 0,
    fill: int = FILL,
) -> Sample:
    """Random rotation, scale, shear and translation in one warp (YOLOv4 §2.2, geometric).

    The matrix comes from :func:`affine_matrix`; the image is warped once with
    ``cv2.warpAffine``; boxes go through :func:`transform_boxes` and :func:`filter_boxes`, whose
    reference area is the object's transformed area :math:`|\\det M_{2x2}|\\, w h`.

    Args:
        image, boxes, labels: the sample.
        rng: random generator.
        degrees: maximum rotation; translate: maximum shift as a fraction of the output size;
        scale: maximum relative zoom; shear: maximum shear angle in degrees.
        border: ``b`` or ``(b_y, b_x)``: the output is ``(H + 2 b_y, W + 2 b_x)`` (negative
            values crop, as YOLOv5 does to cut its 2s x 2s mosaic down to s x s).

    Returns:
        The warped sample.
    """
    height, width = image.shape[:2]
    border_y, border_x = _pair(border)
    out_h, out_w = height + 2 * border_y, width + 2 * border_x
    M = affine_matrix(width, height, out_w, out_h, rng, degrees, translate, scale, shear)
    if np.allclose(M, np.eye(3)) and (out_h, out_w) == (height, width):
        warped = image.copy()  # nothing to warp (e.g. translate=scale=0)
    else:
        warped = cv2.warpAffine(
            image, M[:2], dsize=(out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(fill,) * 3
        )
    boxes, labels = _as_boxes(boxes), _as_labels(labels)
    reference_area = _box_area(boxes) * abs(np.linalg.det(M[:2, :2]))
    boxes, labels = filter_boxes(
        transform_boxes(boxes, M), labels, out_w, out_h, reference_area=reference_area
    )
    return warped, boxes, labels


