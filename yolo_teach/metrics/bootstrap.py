"""How sure is a mAP measured on a few hundred images? Bootstrap intervals over the images.

A validation set is one sample of the images a detector will meet. Drawing the same number of
images from it again, with replacement, and measuring again, many times, shows how much the
number would move with another sample of the same size (Efron's bootstrap; the percentile
interval). Images are the unit that is resampled: the objects of one image (one CT slice, one
patient) are not independent of each other.

Each image is matched once (COCO's rules, :func:`~yolo_teach.metrics.matching.match_images`);
a resample only re-counts those matches, so a thousand resamples of 200 images take about a
second. With every image drawn once the AP is exactly :func:`mean_average_precision`'s.

    interval = bootstrap_map(preds, targets, n=1000, seed=0)  # Interval(mean, low, high)
    rows = class_table(preds, targets, class_names)           # Table 2 of the CT-lesion study
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from yolo_teach.metrics.ap import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, COCO_MAX_DETS
from yolo_teach.metrics.matching import ClassMatches, accumulate, match_images
from yolo_teach.metrics.report import detection_report
from yolo_teach.utils import as_numpy

IOU_50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))  # index of IoU 0.50


class Interval(NamedTuple):
    """A bootstrap estimate: the mean over resamples and the percentile interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _match_each_image(preds: Sequence[dict], targets: Sequence[dict]) -> list[dict]:
    """COCO matches of every image alone (all areas, 100 detections): one dict per image,
    ``{label: ClassMatches}``."""
    return [match_images([p], [t], COCO_IOU_THRESHOLDS, [COCO_AREA_RANGES["all"]],
                         max(COCO_MAX_DETS)) for p, t in zip(preds, targets, strict=True)]


def _class_ap(per_image: list[dict], indices: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``(K, T)`` AP of each class at each IoU threshold over the images ``indices`` (repeats
    count again); -1 for a class without ground truth there (COCO's "not measurable")."""
    ap = -np.ones((len(labels), len(COCO_IOU_THRESHOLDS)))
    for k, label in enumerate(labels):
        found = [per_image[i][label] for i in indices if label in per_image[i]]
        if not found:
            continue
        merged = ClassMatches([s for m in found for s in m.scores],
                              [x for m in found for x in m.matched],
                              [x for m in found for x in m.ignored], [],
                              sum(m.num_regular_gt for m in found))
        precision, _ = accumulate(merged, max(COCO_MAX_DETS))  # (1, T, R), -1 without gt
        if (precision[0] > -1).all():
            ap[k] = precision[0].mean(axis=1)  # (T,) area under the 101-point envelope
    return ap


def _labels(per_image: list[dict]) -> list[int]:
    return sorted({label for image in per_image for label in image})


def resampled_ap(preds: Sequence[dict], targets: Sequence[dict], n: int = 1000,
                 seed: int = 0) -> tuple[list[int], np.ndarray, np.ndarray]:
    """AP per class and IoU threshold on the whole set and on ``n`` bootstrap resamples.

    Args:
        preds, targets: one dict per image, as :func:`~yolo_teach.metrics.mean_average_precision`.
        n: resamples, each as many images as the set, drawn with replacement.
        seed: of the NumPy generator that draws them.

    Returns:
        ``(labels, full, samples)``: the classes seen, their ``(K, T)`` AP on the set (T = 10
        IoU thresholds 0.50:0.05:0.95) and ``(n, K, T)`` on the resamples; -1 where a class has
        no ground truth.
    """
    per_image = _match_each_image(preds, targets)
    labels = _labels(per_image)
    everything = np.arange(len(per_image))
    full = _class_ap(per_image, everything, labels)
    rng = np.random.default_rng(seed)
    samples = np.stack([_class_ap(per_image, rng.integers(0, len(per_image), len(per_image)),
                                  labels) for _ in range(n)]) if n else \
        np.zeros((0, len(labels), len(COCO_IOU_THRESHOLDS)))
    return labels, full, samples


def _mean_valid(ap: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the values > -1 (-1 where there are none)."""
    valid = ap > -1
    total = np.where(valid, ap, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def _interval(values: np.ndarray, level: float) -> Interval:
    values = values[values > -1]
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def bootstrap_map(preds: Sequence[dict], targets: Sequence[dict], n: int = 1000, seed: int = 0,
                  level: float = 0.95, iou: str = "50") -> Interval:
    """Bootstrap interval of the COCO mAP over the images: mean, low and high at ``level``.

    Args:
        preds, targets: one dict per image (xyxy pixels), as
            :func:`~yolo_teach.metrics.mean_average_precision`.
        n: resamples of the images, drawn with replacement (seeded by ``seed``).
        level: of the percentile interval (0.95: the 2.5th and 97.5th percentiles).
        iou: ``"50"`` for mAP50, ``"50:95"`` for mAP50-95.
    """
    if iou not in ("50", "50:95"):
        raise ValueError(f"iou must be '50' or '50:95', got {iou!r}")
    _, _, samples = resampled_ap(preds, targets, n, seed)  # (n, K, T)
    per_class = samples[..., IOU_50] if iou == "50" else _by_class_50_95(samples)  # (n, K)
    return _interval(_mean_valid(per_class, axis=1), level)


def _by_class_50_95(ap: np.ndarray) -> np.ndarray:
    """``(..., K, T) -> (..., K)``: mean over the thresholds, -1 where not measurable."""
    return np.where((ap > -1).all(axis=-1), ap.mean(axis=-1), -1.0)


def class_table(preds: Sequence[dict], targets: Sequence[dict], class_names: Sequence[str],
                conf_threshold: float = 0.25, n: int = 1000, seed: int = 0,
                level: float = 0.95) -> list[dict]:
    """Per-class results shaped like Table 2 of the CT-lesion study (seed 000), with intervals.

    One row per class and an ``"all"`` row: ``class``, ``images`` (validation images holding
    it), ``instances`` (its boxes), ``P`` and ``R`` (detections with score >=
    ``conf_threshold``, matched at IoU 0.5), ``mAP50`` and ``mAP50-95`` (COCO, 101-point) and
    their bootstrap intervals ``mAP50_low``, ``mAP50_high``, ``mAP50-95_low``,
    ``mAP50-95_high`` (:func:`bootstrap_map`'s resamples, the same for every class).

    NOTE(paper): YOLOv5's ``val.py`` reports P and R at the confidence of the best mean F1;
    we fix the threshold (Darknet's and ``detect.py``'s 0.25), so P and R do not depend on it.
    """
    labels, full, samples = resampled_ap(preds, targets, n, seed)
    report = detection_report(list(preds), list(targets), list(class_names), conf_threshold)
    tail = 100 * (1 - level) / 2
    rows = []
    for k, name in enumerate(class_names):
        j = labels.index(k) if k in labels else None
        holding = [as_numpy(t["labels"], np.int64, ()) for t in targets]
        row = {"class": name, "images": int(sum((lab == k).any() for lab in holding)),
               "instances": int(report.num_gt[k]),
               "P": float(report.tp[k] / max(report.tp[k] + report.fp[k], 1)),
               "R": float(report.tp[k] / max(report.num_gt[k], 1))}
        for key, full_k, sample_k in (
                ("mAP50", full[j, IOU_50] if j is not None else -1.0,
                 samples[:, j, IOU_50] if j is not None else np.zeros(0)),
                ("mAP50-95", _by_class_50_95(full[j]) if j is not None else -1.0,
                 _by_class_50_95(samples[:, j]) if j is not None else np.zeros(0))):
            kept = sample_k[sample_k > -1]
            low, high = np.percentile(kept, [tail, 100 - tail]) if kept.size else (np.nan,) * 2
            row.update({key: float(full_k), f"{key}_low": float(low), f"{key}_high": float(high)})
        rows.append(row)
    every = {"class": "all", "images": len(targets), "instances": int(report.num_gt.sum()),
             "P": report.precision, "R": report.recall}
    for key, per_class_full, per_class_samples in (
            ("mAP50", full[:, IOU_50], samples[..., IOU_50]),
            ("mAP50-95", _by_class_50_95(full), _by_class_50_95(samples))):
        interval = _interval(_mean_valid(per_class_samples, axis=1), level)
        every.update({key: float(_mean_valid(per_class_full, axis=0)),
                      f"{key}_low": interval.low, f"{key}_high": interval.high})
    rows.append(every)
    return rows
