"""Multi-image transforms: Mosaic (YOLOv4 §3.3), MixUp (Zhang et al. 2018), CutMix (Yun et al.)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from yolo_teach.data.augment.core import (
    FILL,
    Sample,
    _as_boxes,
    _as_labels,
    _box_area,
    _resize,
    _sample_copy,
    filter_boxes,
)
from yolo_teach.data.augment.geometric import resize_keep_aspect


def mosaic_layout(
    corner: int, centre: tuple[int, int], width: int, height: int, size: int
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Where image ``corner`` of a mosaic lands on the ``size x size`` canvas.

    The four images meet at the centre :math:`(x_c, y_c)`, each touching it with one corner:

    - ``corner = 0``, top-left: its bottom-right corner on the centre, shift ``(x_c - w, y_c - h)``;
    - ``corner = 1``, top-right: its bottom-left corner on the centre, shift ``(x_c, y_c - h)``;
    - ``corner = 2``, bottom-left: its top-right corner on the centre, shift ``(x_c - w, y_c)``;
    - ``corner = 3``, bottom-right: its top-left corner on the centre, shift ``(x_c, y_c)``.

    What falls outside the canvas is cut off, so with the centre inside the canvas the visible
    rectangles of images 0-3 lie in the quadrants ``[0, x_c] x [0, y_c]``, ``[x_c, s] x [0, y_c]``,
    ``[0, x_c] x [y_c, s]`` and ``[x_c, s] x [y_c, s]``.

    Args:
        corner: 0 TL, 1 TR, 2 BL, 3 BR.
        centre: ``(x_c, y_c)`` integer pixels of the canvas.
        width, height: ``w, h`` of the image (after any resize).
        size: side ``s`` of the canvas.

    Returns:
        ``((x1, y1, x2, y2), (dx, dy))``: the visible part on the canvas (``xyxy``, empty when
        ``x2 <= x1`` or ``y2 <= y1``), and the shift from image to canvas coordinates
        (canvas = image + ``(dx, dy)``).
    """
    xc, yc = centre
    left = corner in (0, 2)  # image lies left of the centre
    top = corner in (0, 1)  # image lies above the centre
    dx = xc - width if left else xc
    dy = yc - height if top else yc
    x1, y1 = max(dx, 0), max(dy, 0)
    x2, y2 = min(dx + width, size), min(dy + height, size)
    return (x1, y1, x2, y2), (dx, dy)


def mosaic(
    samples: Sequence[Sample],
    size: int,
    rng: np.random.Generator,
    center_range: tuple[float, float] = (0.2, 0.8),
    resize: bool = True,
    fill: int = FILL,
    centre: tuple[float, float] | None = None,
) -> Sample:
    """Mosaic: four images around a random centre in one ``size x size`` canvas (YOLOv4 §3.3).

    "Mosaic represents a new data augmentation method that mixes 4 training images" (YOLOv4 §3.3,
    Figure 3): four contexts in one picture, and BatchNorm sees four images per sample.

    Layout: a centre :math:`(x_c, y_c)` is drawn uniformly in ``center_range`` of the canvas
    (darknet's ``min_offset = 0.2``), or given as ``centre``; each image (resized so its long
    side is ``size`` when ``resize``) touches the centre with one corner, top-left image with its
    bottom-right corner and so on (:func:`mosaic_layout`); what falls outside the canvas is cut
    off, gaps are grey.

    # NOTE(paper): YOLOv5 builds a 2s x 2s canvas and crops it to s x s during the following
    # affine warp. We build the central s x s window directly (a quarter of the memory); the
    # pictures agree except when the later :func:`random_affine` zooms out, where YOLOv5 shows
    # more of the four images and we show the grey border.

    Args:
        samples: four ``(image, boxes, labels)`` samples (any sizes).
        size: side ``s`` of the output canvas.
        rng: random generator (two draws: the centre; none when ``centre`` is given).
        center_range: the centre is drawn in ``[lo s, hi s]`` along each axis.
        centre: ``(x_c, y_c)`` in pixels of the canvas (truncated to integers), instead of a
            drawn one.

    Returns:
        ``(image (s, s, 3) uint8, boxes (M, 4) float32, labels (M,) int64)``: each image's boxes
        cut to the part of it that is visible, filtered by :func:`filter_boxes`.
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    if centre is None:
        lo, hi = center_range
        centre = (rng.uniform(lo * size, hi * size), rng.uniform(lo * size, hi * size))
    xc, yc = int(centre[0]), int(centre[1])
    canvas = np.full((size, size, 3), fill, dtype=np.uint8)
    all_boxes, all_labels = [], []
    for corner, (image, boxes, labels) in enumerate(samples):
        if resize:
            image, boxes, _ = resize_keep_aspect(image, boxes, size)
        boxes, labels = _as_boxes(boxes), _as_labels(labels)
        h, w = image.shape[:2]
        (x1, y1, x2, y2), (dx, dy) = mosaic_layout(corner, (xc, yc), w, h, size)
        if x2 <= x1 or y2 <= y1:
            continue  # this image is entirely outside the canvas
        canvas[y1:y2, x1:x2] = image[y1 - dy : y2 - dy, x1 - dx : x2 - dx]
        # cut the boxes to the visible rectangle, in its own coordinates, then shift to the canvas
        local = boxes + np.array([dx - x1, dy - y1, dx - x1, dy - y1], np.float32)
        local, labels = filter_boxes(
            local, labels, x2 - x1, y2 - y1, reference_area=_box_area(boxes)
        )
        all_boxes.append(local + np.array([x1, y1, x1, y1], np.float32))
        all_labels.append(labels)
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
    labels = np.concatenate(all_labels) if all_labels else np.zeros((0,), np.int64)
    return canvas, boxes.astype(np.float32), labels.astype(np.int64)


def _match_size(sample: Sample, height: int, width: int) -> Sample:
    """Stretch a sample to ``(height, width)`` (boxes scaled per axis, then filtered)."""
    image, boxes, labels = sample
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return _sample_copy(image, boxes, labels)
    scale = np.array([width / w, height / h, width / w, height / h], np.float32)
    boxes, labels = filter_boxes(_as_boxes(boxes) * scale, labels, width, height)
    return _resize(image, width, height), boxes, labels


def mixup(
    sample_a: Sample, sample_b: Sample, rng: np.random.Generator, alpha: float = 32.0
) -> Sample:
    """MixUp for detection: blend two images, keep the boxes of both (Zhang et al. 2018).

    :math:`\\lambda \\sim \\text{Beta}(\\alpha, \\alpha)`,
    :math:`I = \\lambda I_a + (1-\\lambda) I_b`.
    Every box of both images is kept with weight 1 (YOLOv5 does the same; Zhang et al.'s
    "Bag of Freebies for Training Object Detection" (2019) weights the loss by :math:`\\lambda`
    instead). ``alpha=32`` is YOLOv5's choice, which keeps :math:`\\lambda` near 0.5.
    Image ``b`` is stretched to ``a``'s size when they differ.

    Returns:
        ``(image, boxes of a then b, labels of a then b)``.
    """
    image_a, boxes_a, labels_a = sample_a
    height, width = image_a.shape[:2]
    image_b, boxes_b, labels_b = _match_size(sample_b, height, width)
    lam = rng.beta(alpha, alpha)
    mixed = lam * image_a.astype(np.float32) + (1 - lam) * image_b.astype(np.float32)
    image = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    boxes = np.concatenate([_as_boxes(boxes_a), boxes_b])
    labels = np.concatenate([_as_labels(labels_a), labels_b])
    return image, boxes, labels


def cutmix(
    sample_a: Sample,
    sample_b: Sample,
    rng: np.random.Generator,
    alpha: float = 1.0,
    min_visible: float = 0.4,
) -> Sample:
    """CutMix: paste a rectangle of image ``b`` into image ``a`` (Yun et al. 2019; YOLOv4 §3.3).

    Following Yun et al.: :math:`\\lambda \\sim \\text{Beta}(\\alpha, \\alpha)`, the patch is
    :math:`r_w = W\\sqrt{1-\\lambda},\\; r_h = H\\sqrt{1-\\lambda}` centred at a uniform point and
    cut by the image border; it is copied from the same place of ``b``.

    Boxes, the detection part:

    - a box of ``a`` is kept (unchanged) when at least ``min_visible`` of its area is outside the
      patch;
    - a box of ``b`` is clipped to the patch and kept when the clipped box passes
      :func:`filter_boxes` with ``min_area_ratio = min_visible``.

    Image ``b`` is stretched to ``a``'s size when they differ.

    Returns:
        ``(image, kept boxes of a then b, their labels)``.
    """
    image_a, boxes_a, labels_a = sample_a
    boxes_a, labels_a = _as_boxes(boxes_a), _as_labels(labels_a)
    height, width = image_a.shape[:2]
    image_b, boxes_b, labels_b = _match_size(sample_b, height, width)
    lam = rng.beta(alpha, alpha)
    cut_w, cut_h = width * math.sqrt(1 - lam), height * math.sqrt(1 - lam)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    x1, x2 = int(np.clip(cx - cut_w / 2, 0, width)), int(np.clip(cx + cut_w / 2, 0, width))
    y1, y2 = int(np.clip(cy - cut_h / 2, 0, height)), int(np.clip(cy + cut_h / 2, 0, height))
    image = image_a.copy()
    image[y1:y2, x1:x2] = image_b[y1:y2, x1:x2]

    # a: keep the boxes that stay mostly visible
    patch = np.array([x1, y1, x2, y2], np.float32)
    overlap = np.concatenate(
        [np.maximum(boxes_a[:, :2], patch[:2]), np.minimum(boxes_a[:, 2:], patch[2:])], 1
    )
    visible = 1 - _box_area(overlap) / np.maximum(_box_area(boxes_a), 1e-12)  # (N_a,)
    keep_a = visible >= min_visible
    boxes_a, labels_a = filter_boxes(boxes_a[keep_a], labels_a[keep_a], width, height)

    # b: keep what the patch shows, in patch coordinates, then back to the canvas
    offset = np.array([x1, y1, x1, y1], np.float32)
    boxes_b, labels_b = filter_boxes(
        boxes_b - offset,
        labels_b,
        x2 - x1,
        y2 - y1,
        min_area_ratio=min_visible,
        reference_area=_box_area(boxes_b),
    )
    boxes = np.concatenate([boxes_a, boxes_b + offset]).astype(np.float32)
    labels = np.concatenate([labels_a, labels_b]).astype(np.int64)
    return image, boxes, labels


