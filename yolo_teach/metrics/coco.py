"""COCO mAP (ours, equal to pycocotools) and the official evaluator run on the same inputs."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from yolo_teach.metrics.ap import (
    COCO_AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETS,
    COCO_RECALL_THRESHOLDS,
)
from yolo_teach.metrics.matching import accumulate, match_images
from yolo_teach.utils import as_numpy


def _mean_valid(x: np.ndarray) -> float:
    valid = x[x > -1]
    return float(valid.mean()) if valid.size else -1.0


def mean_average_precision(preds: list[dict], targets: list[dict]) -> dict:
    """COCO mAP with torchmetrics' keys; equals pycocotools ``COCOeval`` (bbox) stats.

    Returns:
        ``map`` (IoU .50:.95), ``map_50``, ``map_75``, ``map_small``, ``map_medium``,
        ``map_large``, ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``, ``mar_medium``,
        ``mar_large`` as floats (-1 where nothing can be measured, like COCOeval), and
        ``classes``, ``map_per_class``, ``mar_100_per_class`` as arrays over the classes seen.
    """
    areas = list(COCO_AREA_RANGES.values())
    per_class = match_images(preds, targets, COCO_IOU_THRESHOLDS, areas,
                                       max(COCO_MAX_DETS))
    classes = np.array(sorted(per_class), dtype=np.int64)
    K, A, T, M = len(classes), len(areas), len(COCO_IOU_THRESHOLDS), len(COCO_MAX_DETS)
    precision = -np.ones((K, A, M, T, len(COCO_RECALL_THRESHOLDS)))
    recall = -np.ones((K, A, M, T))
    for k, label in enumerate(classes):
        for m, max_det in enumerate(COCO_MAX_DETS):
            precision[k, :, m], recall[k, :, m] = accumulate(per_class[int(label)], max_det)
    t50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))
    t75 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.75)))
    all_, small, medium, large = range(4)
    last = M - 1
    return {
        "map": _mean_valid(precision[:, all_, last]),
        "map_50": _mean_valid(precision[:, all_, last, t50]),
        "map_75": _mean_valid(precision[:, all_, last, t75]),
        "map_small": _mean_valid(precision[:, small, last]),
        "map_medium": _mean_valid(precision[:, medium, last]),
        "map_large": _mean_valid(precision[:, large, last]),
        "mar_1": _mean_valid(recall[:, all_, 0]),
        "mar_10": _mean_valid(recall[:, all_, 1]),
        "mar_100": _mean_valid(recall[:, all_, last]),
        "mar_small": _mean_valid(recall[:, small, last]),
        "mar_medium": _mean_valid(recall[:, medium, last]),
        "mar_large": _mean_valid(recall[:, large, last]),
        "classes": classes,
        "map_per_class": np.array([_mean_valid(p) for p in precision[:, all_, last]]),
        "mar_100_per_class": np.array([_mean_valid(r) for r in recall[:, all_, last]]),
    }



def map_by_area(preds: list[dict], targets: list[dict],
                area_ranges: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """COCO mAP (IoU .50:.95) and mAP50 of each area range alone (box area in pixels²).

    COCOeval's rule for its ``small``/``medium``/``large`` rows, with any ranges
    (``params.areaRng``): ground truths outside the range are ignored, and so are the detections
    matched to them and the unmatched detections outside it; 100 detections per image. Returns
    ``{name: {"map", "map_50", "num_gt"}}`` (-1 where the range holds no ground truth).
    """
    areas = list(area_ranges.values())
    per_class = match_images(preds, targets, COCO_IOU_THRESHOLDS, areas, max(COCO_MAX_DETS))
    t50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))
    precision = np.stack([accumulate(res, max(COCO_MAX_DETS))[0] for res in per_class.values()]) \
        if per_class else -np.ones((0, len(areas), len(COCO_IOU_THRESHOLDS), 1))  # (K, A, T, R)
    num_gt = sum((res.num_regular_gt for res in per_class.values()), np.zeros(len(areas), int))
    return {name: {"map": _mean_valid(precision[:, a]), "map_50": _mean_valid(precision[:, a, t50]),
                   "num_gt": int(num_gt[a])}
            for a, name in enumerate(area_ranges)}

# --------------------------------------------------------------------------- the official evaluator
COCO_STATS_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                   "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def to_coco(preds: list[dict], targets: list[dict]) -> tuple[dict, list[dict]]:
    """Ground truth as a COCO dataset dict and detections as a COCO results list (``xywh``)."""
    images, annotations, results, labels = [], [], [], set()
    for image_id, (pred, target) in enumerate(zip(preds, targets, strict=True), start=1):
        images.append({"id": image_id})
        gt_boxes = as_numpy(target["boxes"], np.float64, (4,))
        for box, label in zip(gt_boxes, as_numpy(target["labels"], np.int64, ()), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label), "bbox": [box[0], box[1], w, h],
                                "area": w * h, "iscrowd": 0})
            labels.add(int(label))
        dt_boxes = as_numpy(pred["boxes"], np.float64, (4,))
        for box, score, label in zip(dt_boxes, as_numpy(pred["scores"], np.float64, ()),
                                     as_numpy(pred["labels"], np.int64, ()), strict=True):
            results.append({"image_id": image_id, "category_id": int(label), "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
            labels.add(int(label))
    categories = [{"id": c, "name": str(c)} for c in sorted(labels)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def coco_evaluate(preds: list[dict], targets: list[dict], verbose: bool = False) -> dict:
    """Run the official evaluator, pycocotools' ``COCOeval`` (bbox), on the same inputs.

    Returns the 12 ``COCOeval.stats`` under :func:`mean_average_precision`'s keys, plus
    ``"stats"`` (the raw array). ``verbose`` shows COCOeval's own printout.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = to_coco(preds, targets)
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list: an empty results set, built the same way
            dt = COCO()
            dt.dataset = {**dataset, "annotations": []}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {**{key: float(v) for key, v in zip(COCO_STATS_KEYS, stats, strict=True)}, "stats": stats}
