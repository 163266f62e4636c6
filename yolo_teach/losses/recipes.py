"""Loss recipes: the :class:`~yolo_teach.losses.YOLOLoss` parts each assignment rule brings.

A recipe is a function ``(strides, num_classes, img_size) -> keyword arguments of YOLOLoss``.
A model file picks its rules (``rules=darknet_rules(...)``) and may change the faithful terms
of its own paper; :func:`yolo_teach.detectors.build_detector` applies the chosen rule and then
the user's overrides.

================  =========================================================================
rule              loss (anchor-based models)
================  =========================================================================
``"single"``      faithful. YOLOv3 §2: best anchor over all scales, σ/exp coding, sum-squared
                  box error, BCE objectness with target 1, ignore > 0.5, BCE classes, summed
                  and divided by the batch size. YOLOv2 changes some terms (see yolov2.py).
``"multi"``       as ``"single"``, but every anchor with shape IoU > 0.213 learns each truth
                  (YOLOv4's "IT" freebie), so that its effect can be measured alone.
``"neighbours"``  YOLOv5: anchors with size ratio < 4 at the centre cell and its 2 nearest
                  neighbours, YOLOv5 coding (2σ - 0.5, (2σ)^2), CIoU box loss, objectness
                  target IoU, no ignore rule, per-scale objectness balance, YOLOv5's gains,
                  means instead of sums.
================  =========================================================================

The rule matters most: in short runs of a nano YOLOv3 on cluttered 128 px shapes,
``"neighbours"`` reaches several times the mAP50 of ``"single"``, while ``"single"`` with every
other YOLOv5 setting stays close to ``"single"``. One positive per truth is what makes the
faithful rule slow to learn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from yolo_teach.boxes import complete_box_iou_loss
from yolo_teach.decode import GridSensitiveBoxCoder, YOLOv2BoxCoder, YOLOv5BoxCoder
from yolo_teach.losses.assign import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
)
from yolo_teach.losses.terms import (
    BCEClassLoss,
    CodedBoxSSE,
    IoUBoxLoss,
    objectness_iou,
    objectness_one,
)

LossRecipe = Callable[[Sequence[int], int, int], dict]

# YOLOv5's objectness balance per stride (utils/loss.py: [4.0, 1.0, 0.4] for P3, P4, P5).
YOLOV5_BALANCE = {8: 4.0, 16: 1.0, 32: 0.4}
MULTI_ANCHOR_IOU = 0.213  # yolov4.cfg iou_thresh


def yolov5_gains(num_scales: int, num_classes: int, img_size: int) -> dict[str, float]:
    """YOLOv5's loss gains (hyp.scratch-low.yaml: box 0.05, obj 1.0, cls 0.5) as its train.py
    scales them: by ``3 / num_scales``, ``num_classes / 80`` (classes) and
    ``(img_size / 640)^2`` (objectness, whose mean runs over ``img_size^2`` predictions)."""
    per_scale = 3 / num_scales
    return {
        "box_gain": 0.05 * per_scale,
        "cls_gain": 0.5 * num_classes / 80 * per_scale,
        "obj_gain": 1.0 * (img_size / 640) ** 2 * per_scale,
    }


def darknet_recipe(assigner, **changes) -> LossRecipe:
    """Darknet's ``[yolo]`` loss with ``assigner``: YOLOv2 coding, coded SSE box, objectness 1,
    ignore > 0.5, BCE classes, sums; ``changes`` replace any of them."""

    def recipe(strides: Sequence[int], num_classes: int, img_size: int) -> dict:
        return {
            "assigner": assigner,
            "coder": YOLOv2BoxCoder(),
            "box_loss": CodedBoxSSE(),
            "objectness_target": objectness_one,
            "ignore_threshold": 0.5,
            "class_loss": BCEClassLoss(),
            "reduction": "sum",
            **changes,
        }

    return recipe


def yolov5_recipe(anchor_t: float = 4.0) -> LossRecipe:
    """YOLOv5's loss (``utils/loss.py``): neighbour cells, its coding, CIoU, objectness IoU."""

    def recipe(strides: Sequence[int], num_classes: int, img_size: int) -> dict:
        # one map (YOLOv2): a balance is a plain factor, leave it at 1
        balance = [YOLOV5_BALANCE.get(s, 1.0) for s in strides] if len(strides) > 1 else None
        return {
            "assigner": NeighbourCellAssigner(anchor_t=anchor_t),
            "coder": YOLOv5BoxCoder(),
            "box_loss": IoUBoxLoss(complete_box_iou_loss),
            "objectness_target": objectness_iou,
            "ignore_threshold": None,
            "class_loss": BCEClassLoss(),
            "objectness_balance": balance,
            "reduction": "mean",
            **yolov5_gains(len(strides), num_classes, img_size),
        }

    return recipe


def darknet_rules(**faithful_changes) -> dict[str, LossRecipe]:
    """The three rules of an anchor model whose faithful loss is Darknet's with
    ``faithful_changes`` (e.g. YOLOv2's softmax classes): ``single``, ``multi``, ``neighbours``."""
    return {
        "single": darknet_recipe(SingleAnchorAssigner(), **faithful_changes),
        "multi": darknet_recipe(MultiAnchorAssigner(MULTI_ANCHOR_IOU), **faithful_changes),
        "neighbours": yolov5_recipe(),
    }


def yolov4_rules(scale_x_y: tuple[float, ...]) -> dict:
    """The assignment rules of a YOLOv4 model with Darknet's loss as its cfg sets it.

    yolov4.cfg's ``[yolo]`` layers: ``iou_loss=ciou`` with ``iou_normalizer=0.07`` (CIoU box
    loss, §3.4 BoF for detector, weighted 0.07), ``scale_x_y`` (grid sensitivity, §3.3),
    ``ignore_thresh=.7``; ``iou_thresh=0.213`` is the ``"multi"`` rule (IT, §3.4). The
    ``"single"`` rule keeps everything but IT, so that its effect can be measured alone.
    """
    return darknet_rules(
        coder=[GridSensitiveBoxCoder(s) for s in scale_x_y],
        box_loss=IoUBoxLoss(complete_box_iou_loss),
        box_gain=0.07,
        ignore_threshold=0.7,
    )
