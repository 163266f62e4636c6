"""Boxes burnt into the pixels of an image (for files written by ``yolo-teach detect``).

Matplotlib (:mod:`yolo_teach.viz.draw`) is for notebooks; this draws with OpenCV into a copy of
the image, with the same class colours and the same ``"name 0.87"`` tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import box_text, class_color


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def render_boxes(image: np.ndarray, boxes, labels=None, scores=None,
                 class_names: Sequence[str] | None = None, thickness: int = 1) -> np.ndarray:
    """A copy of ``image`` (``(H, W, 3)`` uint8 RGB) with ``xyxy`` boxes and their tags drawn."""
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    boxes = as_numpy(boxes).reshape(-1, 4)
    labels = as_numpy(labels, np.int64).reshape(-1) if labels is not None else None
    scores = as_numpy(scores).reshape(-1) if scores is not None else None
    scale = max(out.shape[:2]) / 640
    for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        label = int(labels[i]) if labels is not None else 0
        color = _rgb(class_color(label))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        text = box_text(label if labels is not None else None,
                        scores[i] if scores is not None else None, class_names)
        if text:
            font_scale = max(0.3, 0.5 * scale)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            top = max(y1 - th - base, 0)
            cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1)
            cv2.putText(out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return out
