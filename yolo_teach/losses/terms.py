"""The terms a YOLO loss is composed of, as objects: box regression, objectness target, classes.

:class:`~yolo_teach.losses.YOLOLoss` takes one of each, so a version's loss is *written* by
choosing its parts, never by string flags::

    YOLOLoss(anchors, strides, assigner, coder,
             box_loss=IoUBoxLoss(complete_box_iou_loss),   # YOLOv4 §3.4, CIoU
             objectness_target=objectness_iou,             # YOLOv5: IoU(pred, truth)
             class_loss=BCEClassLoss(label_smoothing=0.1)) # YOLOv4 §3.4, label smoothing

==================  ===========================================  ===========================
term                faithful YOLOv2/v3                           later
==================  ===========================================  ===========================
``box_loss``        :class:`CodedBoxSSE` (v3 §2.1)               :class:`IoUBoxLoss` with
                                                                 GIoU/DIoU/CIoU (YOLOv4 §3.4)
``objectness``      :func:`objectness_one` (v3 §2.1);            :func:`objectness_iou`
                    v2 rescores: :func:`objectness_iou`          (YOLOv5)
``class_loss``      :class:`BCEClassLoss` (v3 §2.2);             ``label_smoothing``
                    v2: :class:`SoftmaxClassLoss`                (YOLOv4 §3.4)
==================  ===========================================  ===========================

Every term works on the ``n`` responsible predictions of one output map, described by a
:class:`Responsible`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_teach.boxes import aligned_box_iou, box_convert


@dataclass(frozen=True)
class Responsible:
    """The ``n`` responsible predictions of one map and their ground truths.

    Attributes:
        t: ``(n, 4)`` raw box outputs.
        boxes: ``(n, 4)`` decoded boxes, ``xyxy`` pixels (differentiable).
        truths: ``(n, 4)`` their ground truths, ``xyxy`` pixels.
        cell: ``(n, 2)`` the cells' top-left corners ``(c_x, c_y)``, in cells.
        anchor: ``(n, 2)`` the anchors ``(p_w, p_h)``, in cells.
        stride: the map's stride in pixels.
        image_size: ``(H, W)`` of the input in pixels.
        coder: the box coder of this map.
    """

    t: Tensor
    boxes: Tensor
    truths: Tensor
    cell: Tensor
    anchor: Tensor
    stride: int
    image_size: tuple[int, int]
    coder: object


# --------------------------------------------------------------------------------------------
# Box regression
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodedBoxSSE:
    """Sum-squared error on the coded box, per responsible prediction: ``(n,)``.

    YOLOv3 §2.1: "During training we use sum of squared error loss". As Darknet does, the centre
    is compared after the sigmoid (:math:`σ(t_x)` against the offset of the centre in its cell)
    and the size on the raw :math:`t_w`, and each term is weighted by ``scale`` = :math:`2 - w h`
    (``w, h`` relative to the image), which gives small boxes more weight:

    .. math:: \\text{scale}\\,[(σ(t_x) - σ(\\hat t_x))^2 + (σ(t_y) - σ(\\hat t_y))^2
              + (t_w - \\hat t_w)^2 + (t_h - \\hat t_h)^2]

    # NOTE(paper): Darknet's gradient on :math:`t_x` is :math:`σ(t_x) - σ(\\hat t_x)` (no
    # sigmoid derivative), i.e. a BCE on the centre; we keep the paper's squared error.
    """

    def __call__(self, m: Responsible) -> Tensor:
        truth = box_convert(m.truths, "xyxy", "cxcywh") / m.stride  # (n, 4) in cells
        image_area = m.image_size[0] * m.image_size[1]
        scale = 2 - truth[:, 2] * truth[:, 3] * m.stride**2 / image_area  # (n,)
        return box_sse_loss(m.t, m.coder.encode(truth, m.cell, m.anchor), scale)


def box_sse_loss(t: Tensor, t_hat: Tensor, scale: Tensor) -> Tensor:
    """The arithmetic of :class:`CodedBoxSSE`: ``t, t_hat (n, 4), scale (n,) -> (n,)``."""
    xy = (torch.sigmoid(t[:, :2]) - torch.sigmoid(t_hat[:, :2])) ** 2
    wh = (t[:, 2:4] - t_hat[:, 2:4]) ** 2
    return scale * torch.cat([xy, wh], dim=1).sum(1)


@dataclass(frozen=True)
class IoUBoxLoss:
    """An IoU-family loss on the decoded boxes (YOLOv4 §3.4 "CIoU-loss"): ``(n,)``.

    ``loss`` is an aligned loss of :mod:`yolo_teach.boxes` taking ``(boxes1, boxes2,
    reduction=...)``, e.g. :func:`~yolo_teach.boxes.complete_box_iou_loss`.
    """

    loss: Callable[..., Tensor]

    def __call__(self, m: Responsible) -> Tensor:
        return self.loss(m.boxes, m.truths, reduction="none")


# --------------------------------------------------------------------------------------------
# Objectness targets
# --------------------------------------------------------------------------------------------
def objectness_one(boxes: Tensor, truths: Tensor) -> Tensor:
    """Target 1 for every responsible prediction (YOLOv3 §2.1): ``(n,)``."""
    return torch.ones(len(boxes), dtype=boxes.dtype, device=boxes.device)


def objectness_iou(boxes: Tensor, truths: Tensor) -> Tensor:
    """Target IoU(prediction, truth) (YOLOv2's ``rescore``, YOLOv5): ``(n,)``, no gradient."""
    return aligned_box_iou(boxes.detach(), truths).clamp(min=0)


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BCEClassLoss:
    """Independent logistic classifiers (YOLOv3 §2.2): ``logits (n, K), labels (n,) -> (n,)``.

    .. math:: -\\sum_k [y_k \\log σ(x_k) + (1 - y_k) \\log(1 - σ(x_k))]

    With ``label_smoothing`` ε (YOLOv4 §3.4 "class label smoothing", Szegedy et al. 2016) the
    targets become :math:`y_k (1 - ε) + ε / 2`: 1 → 1 − ε/2 and 0 → ε/2, the binary form that
    YOLOv5's ``smooth_BCE`` uses (each logistic output is its own two-class problem).
    """

    label_smoothing: float = 0.0
    activation = "sigmoid"  # how the decoder turns logits into probabilities
    per_class = True  # a mean runs over n x K numbers (YOLOv5)

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)  # (n, K)
        target = one_hot * (1 - self.label_smoothing) + self.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)


@dataclass(frozen=True)
class SoftmaxClassLoss:
    """YOLOv2's region layer: a softmax over the K classes with cross-entropy: ``(n,)``.

    Darknet writes the delta ``one_hot - softmax``, the cross-entropy gradient.
    """

    activation = "softmax"
    per_class = False

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels, reduction="none")
