"""COCO's greedy matching of detections to ground truth, and the accumulation into PR curves.

A line-by-line equivalent of pycocotools' ``COCOeval.evaluateImg`` and ``accumulate``, vectorised
over IoU thresholds and area ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo_teach.metrics.ap import COCO_RECALL_THRESHOLDS, sample_envelope
from yolo_teach.utils import as_numpy


def _by_decreasing_score(scores: np.ndarray) -> np.ndarray:
    """Indices by decreasing score; equal scores keep their order (COCOeval's mergesort)."""
    stable = "mergesort"  # pragma: no mutate -- NumPy reads "MERGESORT" as the same sort
    return np.argsort(-scores, kind=stable)


def pairwise_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(D, 4), (G, 4) -> (D, G)`` IoU of xyxy boxes in float64, as pycocotools computes it."""
    w = np.minimum(dt[:, None, 2], gt[None, :, 2]) - np.maximum(dt[:, None, 0], gt[None, :, 0])
    h = np.minimum(dt[:, None, 3], gt[None, :, 3]) - np.maximum(dt[:, None, 1], gt[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area_dt = (dt[:, 2] - dt[:, 0]) * (dt[:, 3] - dt[:, 1])
    area_gt = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    union = area_dt[:, None] + area_gt[None, :] - inter
    with np.errstate(invalid="ignore"):  # 0 / 0 for two empty boxes
        return np.where(inter > 0, inter / union, 0.0)


def match_image(ious, gt_ignore, dt_outside, iou_thresholds):
    """Greedy COCO matching of one image and class, for every area range and threshold at once.

    Args:
        ious: ``(D, G)`` IoU, detections sorted by decreasing score.
        gt_ignore: ``(A, G)`` ground truth outside each area range.
        dt_outside: ``(A, D)`` detections outside each area range.
        iou_thresholds: ``(T,)``.

    Returns:
        ``matched (A, T, D)`` and ``ignored (A, T, D)`` booleans for the detections.

    For each detection, COCOeval scans the ground truths (ignored ones last) and keeps the best
    IoU ≥ threshold, a later one winning ties; it stops at the first ignored one once it holds a
    regular match. Equivalently: prefer regular over ignored, then highest IoU, then the last
    index. Adding 2 to the regular ones' IoU and taking the last maximum encodes exactly that.
    """
    D, G = ious.shape
    A, T = gt_ignore.shape[0], len(iou_thresholds)
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[None, :, None]  # (1, T, 1)
    bonus = 2.0  # pragma: no mutate -- any bonus > 1 puts every regular IoU above every ignored one
    preference = bonus * ~gt_ignore[:, None, :]  # (A, 1, G)
    taken = np.zeros((A, T, G), dtype=bool)
    matched = np.zeros((A, T, D), dtype=bool)
    ignored = np.zeros((A, T, D), dtype=bool)
    for d in range(D if G else 0):  # with no ground truth nothing can match
        ok = (ious[d] >= thresholds) & ~taken  # (A, T, G) candidates
        key = np.where(ok, ious[d] + preference, -np.inf)
        best = G - 1 - np.argmax(key[..., ::-1], axis=-1)  # (A, T) last maximum
        hit = ok.any(axis=-1)  # (A, T)
        a, t = np.nonzero(hit)
        taken[a, t, best[a, t]] = True
        matched[:, :, d] = hit
        ignored[a, t, d] = gt_ignore[a, best[a, t]]
    ignored |= ~matched & dt_outside[:, None, :]
    return matched, ignored


@dataclass
class ClassMatches:
    """The per-image matches of one class, in image order (what COCOeval calls evalImgs)."""

    scores: list
    matched: list  # (A, T, D) per image
    ignored: list
    best_iou: list  # (D,) per image: IoU with the closest ground truth of the class
    num_regular_gt: np.ndarray  # (A,) ground truths not ignored, over all images


def match_images(preds, targets, iou_thresholds, area_ranges, max_det):
    """Match every image, class by class; returns ``{label: ClassMatches}``."""
    lo = np.array([r[0] for r in area_ranges])[:, None]  # (A, 1)
    hi = np.array([r[1] for r in area_ranges])[:, None]
    results: dict[int, ClassMatches] = {}
    for pred, target in zip(preds, targets, strict=True):
        dt_scores = as_numpy(pred["scores"], np.float64, ())
        by_score = _by_decreasing_score(dt_scores)
        dt_scores = dt_scores[by_score]
        dt_boxes = as_numpy(pred["boxes"], np.float64, (4,))[by_score]
        dt_labels = as_numpy(pred["labels"], np.int64, ())[by_score]
        gt_boxes = as_numpy(target["boxes"], np.float64, (4,))
        gt_labels = as_numpy(target["labels"], np.int64, ())
        ious_all = pairwise_iou(dt_boxes, gt_boxes)  # (D_all, G_all), once per image
        dt_area_all = (dt_boxes[:, 2] - dt_boxes[:, 0]) * (dt_boxes[:, 3] - dt_boxes[:, 1])
        gt_area_all = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        for label in np.union1d(dt_labels, gt_labels):
            dt_idx = np.nonzero(dt_labels == label)[0][:max_det]  # still by decreasing score
            gt_idx = np.nonzero(gt_labels == label)[0]
            ious = ious_all[np.ix_(dt_idx, gt_idx)]  # (D, G)
            gt_area, dt_area = gt_area_all[gt_idx], dt_area_all[dt_idx]
            gt_ignore = (gt_area[None] < lo) | (gt_area[None] > hi)  # (A, G)
            dt_outside = (dt_area[None] < lo) | (dt_area[None] > hi)  # (A, D)
            matched, ignored = match_image(ious, gt_ignore, dt_outside, iou_thresholds)
            res = results.setdefault(int(label), ClassMatches([], [], [], [], 0))
            res.scores.append(dt_scores[dt_idx])
            res.matched.append(matched)
            res.ignored.append(ignored)
            res.best_iou.append(ious.max(axis=1) if len(gt_idx) else np.zeros(len(dt_idx)))
            res.num_regular_gt += (~gt_ignore).sum(axis=1)  # 0 + (A,) counts on first sight
    return results


def accumulate(res: ClassMatches, max_det: int):
    """Precision at the 101 recall levels ``(A, T, R)`` and final recall ``(A, T)`` of one class."""
    scores = np.concatenate([s[:max_det] for s in res.scores])
    order = _by_decreasing_score(scores)  # all images together
    matched = np.concatenate([m[..., :max_det] for m in res.matched], axis=-1)[..., order]
    ignored = np.concatenate([g[..., :max_det] for g in res.ignored], axis=-1)[..., order]
    tp = np.cumsum(matched & ~ignored, axis=-1)  # (A, T, D) counts
    fp = np.cumsum(~matched & ~ignored, axis=-1)
    A, T, _ = matched.shape
    precision = -np.ones((A, T, len(COCO_RECALL_THRESHOLDS)))
    recall = -np.ones((A, T))
    for a in np.nonzero(res.num_regular_gt > 0)[0]:
        rc = tp[a] / res.num_regular_gt[a]
        pr = tp[a] / (tp[a] + fp[a] + np.spacing(1))
        recall[a] = rc[:, -1] if rc.shape[1] else 0.0
        for t in range(T):
            precision[a, t] = sample_envelope(rc[t], pr[t], COCO_RECALL_THRESHOLDS)
    return precision, recall
