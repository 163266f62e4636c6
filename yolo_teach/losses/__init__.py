"""Detection losses and target assignment.

* :mod:`~yolo_teach.losses.yolov1_loss`: YOLOv1's sum-squared loss (eq. 3);
* :mod:`~yolo_teach.losses.assign`: which anchor and cell learn each ground truth (YOLOv2/v3,
  YOLOv4's multiple anchors, YOLOv5's neighbour cells);
* :mod:`~yolo_teach.losses.yolo_loss`: the anchor-based loss of YOLOv2/v3 and its later options.
"""

from yolo_teach.losses.assign import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    ScaleAssignment,
    SingleAnchorAssigner,
    describe_assignment,
)
from yolo_teach.losses.yolo_loss import YOLOLoss, box_sse_loss, class_loss
from yolo_teach.losses.yolov1_loss import YOLOv1Loss, one_object_per_cell, responsible_predictor

__all__ = [
    "MultiAnchorAssigner",
    "NeighbourCellAssigner",
    "ScaleAssignment",
    "SingleAnchorAssigner",
    "YOLOLoss",
    "YOLOv1Loss",
    "box_sse_loss",
    "class_loss",
    "describe_assignment",
    "one_object_per_cell",
    "responsible_predictor",
]
