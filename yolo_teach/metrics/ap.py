"""Average precision of one precision-recall curve: VOC 11-point, all-points, COCO 101-point."""

from __future__ import annotations

import numpy as np

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1)
COCO_AREA_RANGES = {"all": (0, 1e10), "small": (0, 32**2), "medium": (32**2, 96**2),
                    "large": (96**2, 1e10)}
COCO_MAX_DETS = (1, 10, 100)


def average_precision(recall, precision, method: str = "coco101") -> float:
    """Area under one precision-recall curve (points ordered by decreasing score).

    * ``"all_points"`` (VOC2010+, Darknet's "Area-Under-Curve for each unique Recall"):
      the exact area under the monotone envelope of precision;
    * ``"voc11"`` (VOC2007): mean of the envelope at recall 0, 0.1, ..., 1;
    * ``"coco101"`` (COCO): mean of the envelope at recall 0, 0.01, ..., 1, taken at the first
      point whose recall reaches each level (0 beyond the last point), as ``COCOeval`` does.
    """
    recall, precision = (np.asarray(x, dtype=np.float64) for x in (recall, precision))
    if method == "all_points":
        envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at r or beyond
        widths = np.diff(np.concatenate([[0.0], recall]))  # recall gained at each point (0: none)
        return float(np.sum(widths * envelope))
    if method == "voc11":
        levels = np.linspace(0, 1, 11)
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in levels]))
    if method == "coco101":
        return float(sample_envelope(recall, precision, COCO_RECALL_THRESHOLDS).mean())
    raise ValueError(f"method must be 'coco101', 'voc11' or 'all_points', got {method!r}")


def sample_envelope(recall: np.ndarray, precision: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Precision envelope at each recall level, COCOeval's way (searchsorted left, 0 past the end)."""
    if len(recall) == 0:
        return np.zeros(len(levels))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, levels)  # side "left": the first point reaching each level
    inside = idx < len(recall)
    return np.where(inside, envelope[np.minimum(idx, len(recall) - 1)], 0.0)
