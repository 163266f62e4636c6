"""Precision-recall curves of one class and the Darknet-style detection report (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo_teach.metrics.ap import COCO_AREA_RANGES, average_precision
from yolo_teach.metrics.matching import ClassMatches, match_images


def _single_threshold(preds, targets, iou_threshold):
    """Match at one IoU threshold, every area, no limit on detections per image."""
    return match_images(preds, targets, np.array([iou_threshold]),
                                  [COCO_AREA_RANGES["all"]], max_det=2**62)


def _ranked(res: ClassMatches):
    """One class's detections over all images by decreasing score: scores, TP flags, best IoU."""
    scores = np.concatenate(res.scores)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.concatenate([m[0, 0] for m in res.matched])[order]
    best_iou = np.concatenate(res.best_iou)[order]
    return scores[order], tp, best_iou


def pr_curve(preds: list[dict], targets: list[dict], label: int, iou_threshold: float = 0.5):
    """Precision-recall curve of one class: ``(recall, precision, scores)``, by decreasing score.

    Point i is what you get keeping the i+1 highest-scoring detections of ``label``.
    """
    res = _single_threshold(preds, targets, iou_threshold).get(int(label))
    if res is None:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    scores, tp, _ = _ranked(res)
    tp_sum = np.cumsum(tp)
    num_gt = max(int(res.num_regular_gt[0]), 1)
    return tp_sum / num_gt, tp_sum / np.arange(1, len(tp) + 1), scores


@dataclass
class DetectionReport:
    """Darknet's ``detector map`` printout (as in the face-mask study, seed 001) as data."""

    class_names: list[str]
    ap: np.ndarray  # (K,) AP at the IoU threshold, all-points
    tp: np.ndarray  # (K,) true positives with score >= conf_threshold
    fp: np.ndarray  # (K,)
    num_gt: np.ndarray  # (K,)
    detections_count: int
    conf_threshold: float
    iou_threshold: float
    average_iou: float

    @property
    def precision(self) -> float:
        return float(self.tp.sum() / max(self.tp.sum() + self.fp.sum(), 1))

    @property
    def recall(self) -> float:
        return float(self.tp.sum() / max(self.num_gt.sum(), 1))

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def map(self) -> float:
        """Mean AP over classes that have ground truth."""
        valid = self.num_gt > 0
        return float(self.ap[valid].mean()) if valid.any() else 0.0

    def __str__(self) -> str:
        t = self.conf_threshold
        lines = [f"detections_count = {self.detections_count}, "
                 f"unique_truth_count = {int(self.num_gt.sum())}"]
        for k, name in enumerate(self.class_names):
            lines.append(f"class_id = {k}, name = {name}, ap = {100 * self.ap[k]:.2f}%".ljust(48)
                         + f"(TP = {int(self.tp[k])}, FP = {int(self.fp[k])})")
        fn = int(self.num_gt.sum() - self.tp.sum())
        lines += [
            "",
            f"for conf_thresh = {t:.2f}, precision = {self.precision:.2f}, "
            f"recall = {self.recall:.2f}, F1-score = {self.f1:.2f}",
            f"for conf_thresh = {t:.2f}, TP = {int(self.tp.sum())}, FP = {int(self.fp.sum())}, "
            f"FN = {fn}, average IoU = {100 * self.average_iou:.2f} %",
            "",
            f"IoU threshold = {100 * self.iou_threshold:.0f} %, "
            "used Area-Under-Curve for each unique Recall",
            f"mean average precision (mAP@{self.iou_threshold:.2f}) = {self.map:.6f}, "
            f"or {100 * self.map:.2f} %",
        ]
        return "\n".join(lines)


def detection_report(preds: list[dict], targets: list[dict], class_names: list[str],
                     conf_threshold: float = 0.25, iou_threshold: float = 0.5) -> DetectionReport:
    """Per-class AP, TP/FP at a confidence threshold, precision/recall/F1 and average IoU.

    AP uses every detection (all-points area, Darknet's default); the counts use only detections
    with ``score >= conf_threshold``. Average IoU is the mean, over those detections, of the IoU
    with the closest ground truth of the same class (0 when there is none), as Darknet reports it.
    """
    per_class = _single_threshold(preds, targets, iou_threshold)
    K = len(class_names)
    ap, tp, fp, num_gt = np.zeros(K), np.zeros(K, np.int64), np.zeros(K, np.int64), np.zeros(K)
    ious, count = [], 0
    for label, res in per_class.items():
        if not 0 <= label < K:
            raise ValueError(f"label {label} has no name in class_names (K={K})")
        scores, is_tp, best_iou = _ranked(res)
        num_gt[label] = res.num_regular_gt[0]
        count += len(scores)
        if num_gt[label] and len(scores):
            tp_sum = np.cumsum(is_tp)
            ap[label] = average_precision(tp_sum / num_gt[label],
                                          tp_sum / np.arange(1, len(scores) + 1), "all_points")
        above = scores >= conf_threshold
        tp[label], fp[label] = (is_tp & above).sum(), (~is_tp & above).sum()
        ious.append(best_iou[above])
    ious = np.concatenate(ious) if ious else np.zeros(0)
    return DetectionReport(list(class_names), ap, tp, fp, num_gt.astype(np.int64), count,
                           conf_threshold, iou_threshold, float(ious.mean()) if ious.size else 0.0)
