"""Average precision and COCO-style mAP, equal to pycocotools, plus a Darknet-style report.

Inputs follow torchmetrics' ``MeanAveragePrecision``: one dict per image,

* ``preds``: ``{"boxes": (N, 4) xyxy pixels, "scores": (N,), "labels": (N,)}``
* ``targets``: ``{"boxes": (M, 4) xyxy pixels, "labels": (M,)}``

as torch tensors or NumPy arrays. How a detection counts (COCO's rules, Lin et al. 2014 and the
``COCOeval`` code): per image and class, detections are taken by decreasing score (at most 100)
and each is matched to the still-unmatched ground truth with the highest IoU ≥ the threshold;
a ground truth outside the evaluated area range is "ignored", and so is a detection matched to it
or an unmatched detection outside the range. Precision is made monotone (its upper envelope) and
averaged at 101 recall points, over 10 IoU thresholds 0.50:0.05:0.95 and over classes.
"""

from yolo_teach.metrics.ap import (
    COCO_AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETS,
    COCO_RECALL_THRESHOLDS,
    average_precision,
)
from yolo_teach.metrics.bootstrap import Interval, bootstrap_map, class_table, resampled_ap
from yolo_teach.metrics.coco import (
    COCO_STATS_KEYS,
    coco_evaluate,
    map_by_area,
    mean_average_precision,
    to_coco,
)
from yolo_teach.metrics.report import DetectionReport, detection_report, pr_curve

__all__ = [
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_MAX_DETS",
    "COCO_RECALL_THRESHOLDS",
    "COCO_STATS_KEYS",
    "DetectionReport",
    "Interval",
    "average_precision",
    "bootstrap_map",
    "class_table",
    "coco_evaluate",
    "detection_report",
    "map_by_area",
    "mean_average_precision",
    "pr_curve",
    "resampled_ap",
    "to_coco",
]
