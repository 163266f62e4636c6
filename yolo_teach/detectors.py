"""Detectors by name: a model with the loss and the decoder that belong to it.

:func:`build_detector` is what the trainer and the command line use::

    det = build_detector("yolov3-nano", num_classes=3, img_size=128)
    loss, terms = det.criterion(det.model(images), targets)  # training
    detections = det.predict(images)                         # [{"boxes", "scores", "labels"}]

Defaults per version, and the one switch that matters most, ``assign``:

================  =========================================================================
``assign``        loss (anchor-based models)
================  =========================================================================
``"single"``      faithful. YOLOv3 §2: best anchor over all scales, σ/exp coding, sum-squared
                  box error, BCE objectness with target 1, ignore > 0.5, BCE classes, summed
                  and divided by the batch size. YOLOv2 (yolov2-voc.cfg ``[region]``): the
                  same with objectness target IoU (``rescore=1``), ignore > 0.6 (``thresh``)
                  and softmax classes (``softmax=1``).
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

Any :class:`~yolo_teach.losses.YOLOLoss` (or :class:`~yolo_teach.losses.YOLOv1Loss`) argument
passed to :func:`build_detector` overrides these defaults. YOLOv1 has no anchors and one loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from yolo_teach.anchors import (
    YOLOV2_STRIDE,
    YOLOV2_VOC_ANCHORS,
    YOLOV3_ANCHOR_MASKS,
    YOLOV3_ANCHORS,
    YOLOV3_INPUT_SIZE,
    YOLOV3_TINY_ANCHORS,
)
from yolo_teach.decode import (
    YOLOv2BoxCoder,
    YOLOv5BoxCoder,
    decode_anchor_maps,
    decode_yolov1,
    predict,
)
from yolo_teach.losses import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    YOLOLoss,
    YOLOv1Loss,
)
from yolo_teach.models import (
    YOLOv1,
    YOLOv1Config,
    yolov1_nano,
    yolov2,
    yolov2_nano,
    yolov2_tiny,
    yolov3,
    yolov3_nano,
    yolov3_tiny,
)

# yolov2-tiny-voc.cfg [region] anchors, (w, h) in cells of stride 32 (yolov2-voc.cfg has its own,
# YOLOV2_VOC_ANCHORS).
YOLOV2_TINY_VOC_ANCHORS = np.array(
    [1.08, 1.19, 3.42, 4.41, 6.63, 11.38, 9.42, 5.11, 16.62, 10.52]
).reshape(-1, 2)
# NOTE(paper): yolov3-tiny.cfg uses anchors 1,2,3 at stride 16 (anchor 0 unused, anchor 3 twice),
# a known slip; like most ports we use 0,1,2 at stride 16 and 3,4,5 at stride 32.
YOLOV3_TINY_ANCHOR_MASKS = ((0, 1, 2), (3, 4, 5))
# YOLOv5's objectness balance per stride (utils/loss.py: [4.0, 1.0, 0.4] for P3, P4, P5).
YOLOV5_BALANCE = {8: 4.0, 16: 1.0, 32: 0.4}
ASSIGNERS = ("single", "multi", "neighbours")


@dataclass
class Detector:
    """A model with its loss and decoder, for one input size and number of classes.

    Attributes:
        model: returns raw outputs in train and eval mode.
        criterion: ``(outputs, targets (M, 6)) -> (loss, {term: value})``.
        decoder: ``outputs -> (B, N, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, obj, p_1..p_K]``.
        img_size: side of the square network input, pixels.
        name: a key of :data:`DETECTORS`.
        num_classes: K.
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels at ``img_size``; ``None`` for v1.
    """

    model: nn.Module
    criterion: Callable
    decoder: Callable
    img_size: int
    name: str
    num_classes: int
    anchors: list[Tensor] | None = None

    def predict(self, images: Tensor, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                max_det: int = 300) -> list[dict[str, Tensor]]:
        """Detections on ``images (B, 3, S, S)``: one ``{"boxes", "scores", "labels"}`` each."""
        return predict(self.model, images, self.decoder, conf_threshold, iou_threshold, max_det)


# --------------------------------------------------------------------------------------------
# Anchors
# --------------------------------------------------------------------------------------------
def official_anchors(name: str, img_size: int) -> list[Tensor]:
    """The official anchors of a model family, per scale, in pixels at ``img_size``.

    Darknet's anchors are tuned for a 416 px input (YOLOv2's cells of stride 32 are
    ``13 x 32 = 416`` px too); we keep them relative to the image: ``a * img_size / 416``.
    """
    if name.startswith("yolov2-tiny"):
        groups = [YOLOV2_TINY_VOC_ANCHORS * YOLOV2_STRIDE]
    elif name.startswith("yolov2"):
        groups = [np.asarray(YOLOV2_VOC_ANCHORS) * YOLOV2_STRIDE]
    elif name.startswith("yolov3-tiny"):
        groups = [YOLOV3_TINY_ANCHORS[list(m)] for m in YOLOV3_TINY_ANCHOR_MASKS]
    elif name.startswith("yolov3"):
        groups = [YOLOV3_ANCHORS[list(m)] for m in YOLOV3_ANCHOR_MASKS]
    else:
        raise ValueError(f"no official anchors for {name!r}")
    return [torch.tensor(g * img_size / YOLOV3_INPUT_SIZE, dtype=torch.float32) for g in groups]


def split_anchors(anchors, num_scales: int) -> list[Tensor]:
    """Anchors in pixels, per scale: a list of ``(A, 2)`` kept as is, or one ``(num_scales A,
    2)`` array (e.g. from :func:`~yolo_teach.anchors.kmeans_anchors`) sorted by area and dealt
    out in equal groups, smallest to the finest scale (YOLOv3 §2.3)."""
    if isinstance(anchors, (list, tuple)) and len(anchors) == num_scales and all(
        np.asarray(a).ndim == 2 for a in anchors
    ):
        return [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in anchors]
    flat = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    if len(flat) % num_scales:
        raise ValueError(f"{len(flat)} anchors cannot be split over {num_scales} scales")
    flat = flat[np.argsort(flat.prod(1), kind="stable")]
    return [torch.tensor(g, dtype=torch.float32) for g in np.split(flat, num_scales)]


# --------------------------------------------------------------------------------------------
# Loss defaults
# --------------------------------------------------------------------------------------------
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


def anchor_loss_defaults(family: str, assign: str, strides: Sequence[int], num_classes: int,
                         img_size: int) -> dict:
    """:class:`~yolo_teach.losses.YOLOLoss` arguments for a family (``"yolov2"`` or
    ``"yolov3"``) and an assignment rule (see the module docstring)."""
    if assign == "neighbours":
        # one map (YOLOv2): a balance is a plain factor, leave it at 1
        balance = [YOLOV5_BALANCE.get(s, 1.0) for s in strides] if len(strides) > 1 else None
        return {
            "assigner": NeighbourCellAssigner(anchor_t=4.0),
            "coder": YOLOv5BoxCoder(),
            "box_loss": "ciou",
            "objectness_target": "iou",
            "ignore_threshold": None,
            "class_loss": "bce",
            "objectness_balance": balance,
            "reduction": "mean",
            **yolov5_gains(len(strides), num_classes, img_size),
        }
    faithful = {
        "assigner": SingleAnchorAssigner() if assign == "single" else MultiAnchorAssigner(0.213),
        "coder": YOLOv2BoxCoder(),
        "box_loss": "sse",
        "objectness_target": "one",
        "ignore_threshold": 0.5,
        "class_loss": "bce",
        "reduction": "sum",
    }
    if family == "yolov2":  # yolov2-voc.cfg [region]: rescore=1, thresh=.6, softmax=1
        faithful.update(objectness_target="iou", ignore_threshold=0.6, class_loss="softmax")
    return faithful


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------
def _yolov1_paper(num_classes: int, img_size: int) -> YOLOv1:
    return YOLOv1(YOLOv1Config(num_classes=num_classes, img_size=img_size))


def _yolov1_nano(num_classes: int, img_size: int) -> YOLOv1:
    return YOLOv1(replace(yolov1_nano(num_classes).cfg, img_size=img_size))


def _yolov1_detector(name: str, make_model: Callable, num_classes: int, img_size: int,
                     assign: str, anchors, **loss_options) -> Detector:
    if assign != "single" or anchors is not None:
        raise ValueError("YOLOv1 has no anchors: leave assign and anchors at their defaults")
    model = make_model(num_classes, img_size)
    if img_size % model.cfg.stride:  # 64 for the paper net, 32 for the nano
        raise ValueError(f"{name} needs an img_size divisible by {model.cfg.stride}, "
                         f"got {img_size}")
    num_boxes = model.cfg.num_boxes
    criterion = YOLOv1Loss(img_size, num_boxes, **loss_options)
    decoder = partial(decode_yolov1, img_size=img_size, num_boxes=num_boxes)
    return Detector(model, criterion, decoder, img_size, name, num_classes)


def _anchor_detector(name: str, make_model: Callable, family: str, num_classes: int,
                     img_size: int, assign: str, anchors, **loss_options) -> Detector:
    model = make_model(num_classes)
    strides = tuple(model.strides)
    if img_size % max(strides):
        raise ValueError(f"{name} needs an img_size divisible by {max(strides)}, got {img_size}")
    anchors = official_anchors(name, img_size) if anchors is None else split_anchors(
        anchors, len(strides))
    if any(len(a) != model.cfg.num_anchors for a in anchors):
        raise ValueError(f"{name} predicts {model.cfg.num_anchors} anchors per scale, got "
                         f"{[len(a) for a in anchors]}")
    options = anchor_loss_defaults(family, assign, strides, num_classes, img_size)
    options.update(loss_options)
    criterion = YOLOLoss(anchors, strides, **options)
    activation = "softmax" if criterion.class_loss == "softmax" else "sigmoid"
    decoder = partial(decode_anchor_maps, anchors=anchors, strides=strides,
                      coder=criterion.coder, class_activation=activation)
    return Detector(model, criterion, decoder, img_size, name, num_classes, anchors)


# name -> (builder, reference input size)
DETECTORS: dict[str, tuple[Callable, int]] = {
    "yolov1": (partial(_yolov1_detector, "yolov1", _yolov1_paper), 448),
    "yolov1-nano": (partial(_yolov1_detector, "yolov1-nano", _yolov1_nano), 128),
    "yolov2": (partial(_anchor_detector, "yolov2", yolov2, "yolov2"), 416),
    "yolov2-tiny": (partial(_anchor_detector, "yolov2-tiny", yolov2_tiny, "yolov2"), 416),
    "yolov2-nano": (partial(_anchor_detector, "yolov2-nano", yolov2_nano, "yolov2"), 128),
    "yolov3": (partial(_anchor_detector, "yolov3", yolov3, "yolov3"), 416),
    "yolov3-tiny": (partial(_anchor_detector, "yolov3-tiny", yolov3_tiny, "yolov3"), 416),
    "yolov3-nano": (partial(_anchor_detector, "yolov3-nano", yolov3_nano, "yolov3"), 128),
}


def build_detector(name: str, num_classes: int, img_size: int | None = None,
                   assign: str = "single", anchors=None, **loss_options) -> Detector:
    """Build a :class:`Detector` by name (a key of :data:`DETECTORS`).

    Args:
        name: ``yolov1``, ``yolov1-nano``, ``yolov2``, ``yolov2-tiny``, ``yolov2-nano``,
            ``yolov3``, ``yolov3-tiny`` or ``yolov3-nano``.
        num_classes: K.
        img_size: side of the square input; ``None`` for the model's reference size (448 for
            YOLOv1, 416 for v2/v3, 128 for the nano models).
        assign: ``"single"``, ``"multi"`` or ``"neighbours"`` (anchor-based models; see the
            module docstring for everything each one selects).
        anchors: pixels at ``img_size``, per scale or as one array to split (see
            :func:`split_anchors`); ``None`` for the official anchors rescaled to ``img_size``.
        **loss_options: override any argument of the loss.

    The model's ``init_bias()`` is left to the trainer.
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; expected one of {sorted(DETECTORS)}")
    if assign not in ASSIGNERS:
        raise ValueError(f"assign must be one of {ASSIGNERS}, got {assign!r}")
    builder, reference_size = DETECTORS[name]
    return builder(num_classes, img_size or reference_size, assign, anchors, **loss_options)
