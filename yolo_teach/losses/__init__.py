"""Detection losses and target assignment.

* :mod:`~yolo_teach.losses.yolov1_loss`: YOLOv1's sum-squared loss (eq. 3);
* :mod:`~yolo_teach.losses.assign`: which anchor and cell learn each ground truth (YOLOv2/v3,
  YOLOv4's multiple anchors, YOLOv5's neighbour cells);
* :mod:`~yolo_teach.losses.terms`: the box, objectness and class terms a loss is made of;
* :mod:`~yolo_teach.losses.yolo_loss`: the anchor-based loss of YOLOv2 to v4, composed of them;
* :mod:`~yolo_teach.losses.recipes`: the terms each assignment rule brings.
"""

from yolo_teach.losses.assign import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    ScaleAssignment,
    SingleAnchorAssigner,
    describe_assignment,
)
from yolo_teach.losses.recipes import darknet_recipe, darknet_rules, yolov5_gains, yolov5_recipe
from yolo_teach.losses.terms import (
    BCEClassLoss,
    CodedBoxSSE,
    IoUBoxLoss,
    Responsible,
    SoftmaxClassLoss,
    box_sse_loss,
    objectness_iou,
    objectness_one,
)
from yolo_teach.losses.yolo_loss import YOLOLoss
from yolo_teach.losses.yolov1_loss import YOLOv1Loss, one_object_per_cell, responsible_predictor

__all__ = [
    "BCEClassLoss",
    "CodedBoxSSE",
    "IoUBoxLoss",
    "MultiAnchorAssigner",
    "NeighbourCellAssigner",
    "Responsible",
    "ScaleAssignment",
    "SingleAnchorAssigner",
    "SoftmaxClassLoss",
    "YOLOLoss",
    "YOLOv1Loss",
    "box_sse_loss",
    "darknet_recipe",
    "darknet_rules",
    "describe_assignment",
    "objectness_iou",
    "objectness_one",
    "one_object_per_cell",
    "responsible_predictor",
    "yolov5_gains",
    "yolov5_recipe",
]
