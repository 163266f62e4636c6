"""The anchor-based YOLO loss (YOLOv2, YOLOv3, YOLOv4 and YOLOv5's refinements).

One class, :class:`YOLOLoss`, composed of objects rather than configured by version:

* an **assigner** (:mod:`yolo_teach.losses.assign`): which predictions are responsible;
* a **box coder** (:mod:`yolo_teach.decode`), one per map or one for all: how raw ``t``
  become boxes, the same objects the decoder uses at inference;
* three terms (:mod:`yolo_teach.losses.terms`): the box loss, the objectness target and the
  class loss, each a callable with the paper's choice and later ones;

and two normalisations: ``"sum"`` (Darknet: sum over predictions, divided by the batch size)
and ``"mean"`` (YOLOv5: mean per term and scale, objectness weighted per scale). A family whose
loss has another structure (YOLOv1, YOLOX, RefineDet) has its own class.

For a training set whose classes are imbalanced (the face masks of seed 001: 3232 : 717 : 123
boxes), ``class_weights`` weighs each responsible prediction's class term by the weight of its
ground truth's class; :func:`inverse_frequency_weights` computes them from the box counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_teach.boxes import box_convert, box_iou
from yolo_teach.decode import as_coder_list, as_map_list, make_grid, split_anchor_map
from yolo_teach.losses.assign import ScaleAssignment
from yolo_teach.losses.terms import (
    BCEClassLoss,
    CodedBoxSSE,
    Responsible,
    objectness_one,
)

REDUCTIONS = ("sum", "mean")
DARKNET_BOX_LOSS = CodedBoxSSE()  # YOLOv3 §2.1
DARKNET_CLASS_LOSS = BCEClassLoss()  # YOLOv3 §2.2


class YOLOLoss:
    """YOLOv2/v3 detection loss: ``(outputs, targets) -> (loss, {"box", "obj", "cls"})``.

    .. math::
        L = g_{box} L_{box} + g_{obj} \\sum_s β_s L_{obj,s} + g_{cls} L_{cls}

    with the terms described in the module docstring, :math:`β_s` the per-scale objectness
    balance and the gains :math:`g`. With ``reduction="sum"`` every term is summed over its
    predictions and divided by the batch size B (Darknet); with ``"mean"`` the box and class
    terms are means over the responsible predictions of each scale and the objectness a mean
    over all predictions of the scale (YOLOv5). Either way the loss does not grow with B.

    Args:
        anchors: per scale, ``(A, 2)`` anchor widths and heights in pixels of the input.
        strides: per scale, its stride (finest first, like the model's outputs).
        assigner: an assigner of :mod:`yolo_teach.losses.assign`.
        coder: a box coder of :mod:`yolo_teach.decode`, or one per scale (YOLOv4's grid
            sensitivity differs per scale); it must reach every cell the assigner makes
            responsible (:class:`~yolo_teach.losses.assign.NeighbourCellAssigner` needs
            :class:`~yolo_teach.decode.YOLOv5BoxCoder`).
        box_loss: ``Responsible -> (n,)``, e.g. :class:`~yolo_teach.losses.terms.CodedBoxSSE`
            or ``IoUBoxLoss(complete_box_iou_loss)``.
        objectness_target: ``(boxes, truths) -> (n,)`` target of the responsible predictions,
            :func:`~yolo_teach.losses.terms.objectness_one` or ``objectness_iou``.
        ignore_threshold: unassigned predictions whose decoded box overlaps a ground truth of
            their image by more than this get no objectness loss; ``None`` turns the rule off.
        class_loss: ``(logits, labels) -> (n,)`` with an ``activation`` for the decoder,
            :class:`~yolo_teach.losses.terms.BCEClassLoss` or ``SoftmaxClassLoss``.
        objectness_balance: ``β_s`` per scale (YOLOv5: 4.0, 1.0, 0.4 for strides 8, 16, 32);
            ``None`` for all ones.
        box_gain, obj_gain, cls_gain: the gains ``g``.
        reduction: ``"sum"`` or ``"mean"``.
        class_weights: ``(K,)`` weights :math:`w_c`: the class term of a prediction
            responsible for a truth of class ``c`` is multiplied by :math:`w_c` (e.g.
            :func:`inverse_frequency_weights` of the training set's box counts); ``None``
            (default) for the unweighted loss. A tuple of floats is saved with a run's loss
            options.

    The logged terms are after gains and balance, so they add up to the loss.
    """

    class_gain_option = "cls_gain"  # the argument that weighs the class term

    def __init__(
        self,
        anchors: Sequence,
        strides: Sequence[int],
        assigner,
        coder,
        box_loss: Callable[[Responsible], Tensor] = DARKNET_BOX_LOSS,
        objectness_target: Callable[[Tensor, Tensor], Tensor] = objectness_one,
        ignore_threshold: float | None = 0.5,
        class_loss=DARKNET_CLASS_LOSS,
        objectness_balance: Sequence[float] | None = None,
        box_gain: float = 1.0,
        obj_gain: float = 1.0,
        cls_gain: float = 1.0,
        reduction: str = "sum",
        class_weights: Sequence[float] | Tensor | None = None,
    ):
        self.anchors = [torch.as_tensor(a, dtype=torch.float32).reshape(-1, 2) for a in anchors]
        self.strides = tuple(strides)
        if len(self.anchors) != len(self.strides):
            raise ValueError(f"{len(self.anchors)} anchor groups for {len(self.strides)} strides")
        self.coders = as_coder_list(coder, len(self.strides))
        low, high = assigner.centre_range
        for c in self.coders:
            if not c.centre_range[0] <= low < high <= c.centre_range[1]:
                raise ValueError(
                    f"{type(assigner).__name__} makes cells responsible for centres at offsets "
                    f"{assigner.centre_range}, which {type(c).__name__} cannot reach "
                    f"{c.centre_range}"
                )
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.assigner, self.coder = assigner, coder
        self.box_loss, self.objectness_target = box_loss, objectness_target
        self.class_loss, self.reduction = class_loss, reduction
        self.ignore_threshold = ignore_threshold
        self.objectness_balance = tuple(objectness_balance or (1.0,) * len(self.strides))
        self.box_gain, self.obj_gain, self.cls_gain = box_gain, obj_gain, cls_gain
        self.class_weights = None if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32).reshape(-1)  # (K,)

    def __call__(self, outputs: Tensor | Sequence[Tensor], targets: Tensor):
        """``outputs``: the model's map(s) ``(B, A(5+K), H, W)``, finest first; ``targets``:
        ``(M, 6)`` rows ``[b, class, x1, y1, x2, y2]`` in pixels of the input."""
        maps = as_map_list(outputs)
        batch = maps[0].shape[0]
        targets = targets.to(maps[0])  # dtype and device of the outputs
        anchors = [a.to(maps[0]) for a in self.anchors]
        preds = [split_anchor_map(p, len(a)) for p, a in zip(maps, anchors)]  # (B, A, H, W, 5+K)
        assignments = self.assigner(targets, anchors, self.strides,
                                    [p.shape[2:4] for p in preds], predictions=None)
        box = obj = cls = maps[0].new_zeros(())
        for s, (pred, asg) in enumerate(zip(preds, assignments)):
            box_s, obj_s, cls_s = self._scale_terms(pred, asg, anchors[s], self.strides[s],
                                                    self.coders[s], targets)
            box, obj, cls = box + box_s, obj + self.objectness_balance[s] * obj_s, cls + cls_s
        if self.reduction == "sum":  # Darknet: per image
            box, obj, cls = box / batch, obj / batch, cls / batch
        terms = {"box": self.box_gain * box, "obj": self.obj_gain * obj, "cls": self.cls_gain * cls}
        loss = terms["box"] + terms["obj"] + terms["cls"]
        return loss, {k: v.detach() for k, v in terms.items()}

    def _class_weights(self, p: Tensor) -> Tensor:
        """``(K,)`` class weights on the device and dtype of the predictions ``p (n, 5+K)``."""
        if len(self.class_weights) != p.shape[1] - 5:
            raise ValueError(f"{len(self.class_weights)} class_weights for "
                             f"{p.shape[1] - 5} classes")
        return self.class_weights.to(p)

    def _reduce(self, values: Tensor, count: int) -> Tensor:
        """Sum, or mean over ``count`` elements (0 when there are none)."""
        total = values.sum()
        return total if self.reduction == "sum" else total / max(count, 1)

    def _scale_terms(self, pred: Tensor, asg: ScaleAssignment, anchors_px: Tensor, stride: int,
                     coder, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Box, objectness and class terms of one scale, before gains, balance and batch size."""
        batch, num_anchors, h, w = pred.shape[:4]
        anchors = anchors_px / stride  # (A, 2) in cells
        obj_target = pred.new_zeros(batch, num_anchors, h, w)
        obj_weight = self._not_ignored(pred, anchors, stride, coder, targets)  # (B, A, H, W)
        box_term = cls_term = pred.new_zeros(())
        n = len(asg)
        if n:
            p = pred[asg.b, asg.a, asg.gy, asg.gx]  # (n, 5+K)
            cell = torch.stack([asg.gx, asg.gy], dim=1).to(p)  # (n, 2)
            anchor = anchors[asg.a]  # (n, 2)
            box = box_convert(coder.decode(p[:, :4], cell, anchor) * stride,
                              "cxcywh", "xyxy")  # (n, 4) pixels
            match = Responsible(p[:, :4], box, asg.boxes, cell, anchor, stride,
                                (h * stride, w * stride), coder)
            box_term = self._reduce(self.box_loss(match), n)  # (n,) -> ()
            per_class = self.class_loss(p[:, 5:], asg.labels)  # (n,)
            if self.class_weights is not None:
                per_class = per_class * self._class_weights(p)[asg.labels]  # (n,)
            # YOLOv5's BCE mean runs over n x K numbers, a cross-entropy mean over n
            k = p.shape[1] - 5 if self.class_loss.per_class and self.reduction == "mean" else 1
            cls_term = self._reduce(per_class, n * k)
            value = self.objectness_target(box, asg.boxes).detach()  # (n,)
            flat = ((asg.b * num_anchors + asg.a) * h + asg.gy) * w + asg.gx  # (n,)
            # a prediction responsible for several truths keeps the highest target
            obj_target.view(-1).scatter_reduce_(0, flat, value, reduce="amax")
            obj_weight.view(-1)[flat] = 1.0  # the ignore rule never mutes a responsible one
        bce = F.binary_cross_entropy_with_logits(pred[..., 4], obj_target, reduction="none")
        obj_term = self._reduce(bce * obj_weight, obj_weight.numel())
        return box_term, obj_term, cls_term

    @torch.no_grad()
    def _not_ignored(self, pred: Tensor, anchors: Tensor, stride: int, coder,
                     targets: Tensor) -> Tensor:
        """``(B, A, H, W)``: 0 where a prediction's box overlaps a truth by > the threshold.

        YOLOv3 §2.1: "If the bounding box prior is not the best but does overlap a ground truth
        object by more than some threshold we ignore the prediction". Darknet compares the
        *decoded prediction* with every truth of the image, as we do.
        """
        batch, num_anchors, h, w = pred.shape[:4]
        weight = pred.new_ones(batch, num_anchors, h, w)
        if self.ignore_threshold is None or len(targets) == 0:
            return weight
        grid = make_grid(h, w, pred.device, pred.dtype)  # (H, W, 2)
        box = coder.decode(pred[..., :4], grid, anchors[:, None, None, :]) * stride
        box = box_convert(box, "cxcywh", "xyxy").reshape(batch, -1, 4)  # (B, A H W, 4)
        for b in range(batch):
            truths = targets[targets[:, 0] == b, 2:6]  # (m, 4)
            if len(truths):
                best = box_iou(box[b], truths).amax(1)  # (A H W,)
                weight[b].view(-1)[best > self.ignore_threshold] = 0.0
        return weight


def inverse_frequency_weights(counts: Sequence[int], power: float = 1.0,
                              mean_over: str = "classes") -> tuple[float, ...]:
    r"""Class weights from the training set's box counts :math:`n_c`, for ``class_weights``.

    .. math:: w_c \propto n_c^{-p}

    normalised so that their mean over the classes is 1 (``mean_over="classes"``), or their
    mean over the training boxes, :math:`\sum_c n_c w_c / \sum_c n_c` (``"boxes"``), so that
    the class term of the whole training set keeps its size and only its split between the
    classes moves. ``power`` :math:`p = 1` is inverse frequency; :math:`p = 1/2` softens it (the
    square-root rule that Mahajan et al. 2018, "Exploring the Limits of Weakly Supervised
    Pretraining", use to re-sample rare hashtags); :math:`p = 0` gives every class 1. A class
    without boxes counts as one box.

    Darknet's ``counters_per_class`` (AlexeyAB/darknet, ``[yolo]`` layer, the framework of seed
    001) is the same rule with :math:`p = 1`, normalised so the most frequent class gets 1: the
    multipliers :math:`\max_k n_k / n_c`.
    # NOTE(paper): Darknet multiplies only the true class's term of the binary cross-entropy
    # (and, in later versions, the box term); we multiply the prediction's whole class term,
    # as RefineDetLite's eq. 5 (seed 002) does, so that a class's weight scales its loss.

    Returns plain floats (a tuple), so that the weights are saved with a run's loss options.
    """
    if mean_over not in ("classes", "boxes"):
        raise ValueError(f"mean_over must be 'classes' or 'boxes', got {mean_over!r}")
    n = np.maximum(np.asarray(counts, dtype=np.float64).reshape(-1), 1.0)  # (K,)
    w = n ** -float(power)  # (K,)
    w = w / (w.mean() if mean_over == "classes" else (n * w).sum() / n.sum())
    return tuple(float(v) for v in w)
