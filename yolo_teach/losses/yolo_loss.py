"""The anchor-based YOLO loss (YOLOv2, YOLOv3, and the YOLOv4/v5 refinements as options).

One class, :class:`YOLOLoss`, parametrised by *what* it combines rather than by version:

* an **assigner** (:mod:`yolo_teach.losses.assign`): which predictions are responsible;
* a **box coder** (:mod:`yolo_teach.decode`): how raw ``t`` become boxes, the same object the
  decoder uses at inference;
* three terms, each with the paper's choice and a later one:

==========  ===============================================  ==================================
term        faithful YOLOv2/v3                               later
==========  ===============================================  ==================================
box         sum-squared error on the coded box ``"sse"``     CIoU loss ``"ciou"`` (YOLOv4 §3.4)
objectness  BCE, target 1 ``"one"`` (v3 §2.1); v2 rescores   target IoU(pred, truth) ``"iou"``
            to the IoU; ignore predictions overlapping a     (YOLOv5), no ignore rule
            truth by > 0.5 (v3) / 0.6 (v2 ``thresh``)
class       BCE, independent logistic classifiers ``"bce"``  --
            (v3 §2.2); v2: softmax ``"softmax"``
==========  ===============================================  ==================================

and two normalisations: ``"sum"`` (Darknet: sum over predictions, divided by the batch size)
and ``"mean"`` (YOLOv5: mean per term and scale, objectness weighted per scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_teach.boxes import aligned_box_iou, box_convert, box_iou, complete_box_iou_loss
from yolo_teach.decode import BoxCoder, as_map_list, make_grid, split_anchor_map
from yolo_teach.losses.assign import ScaleAssignment

BOX_LOSSES = ("sse", "ciou")
OBJECTNESS_TARGETS = ("one", "iou")
CLASS_LOSSES = ("bce", "softmax")
REDUCTIONS = ("sum", "mean")


def box_sse_loss(t: Tensor, t_hat: Tensor, scale: Tensor) -> Tensor:
    """Sum-squared error on the coded box, per responsible prediction: ``(n, 4) -> (n,)``.

    YOLOv3 §2.1: "During training we use sum of squared error loss". As Darknet does, the centre
    is compared after the sigmoid (:math:`σ(t_x)` against the offset of the centre in its cell)
    and the size on the raw :math:`t_w`, and each term is weighted by ``scale`` = :math:`2 - w h`
    (``w, h`` relative to the image), which gives small boxes more weight:

    .. math:: \\text{scale}\\,[(σ(t_x) - σ(\\hat t_x))^2 + (σ(t_y) - σ(\\hat t_y))^2
              + (t_w - \\hat t_w)^2 + (t_h - \\hat t_h)^2]

    # NOTE(paper): Darknet's gradient on :math:`t_x` is :math:`σ(t_x) - σ(\\hat t_x)` (no
    # sigmoid derivative), i.e. a BCE on the centre; we keep the paper's squared error.
    """
    xy = (torch.sigmoid(t[:, :2]) - torch.sigmoid(t_hat[:, :2])) ** 2
    wh = (t[:, 2:4] - t_hat[:, 2:4]) ** 2
    return scale * torch.cat([xy, wh], dim=1).sum(1)


def class_loss(logits: Tensor, labels: Tensor, kind: str) -> Tensor:
    """Class loss per responsible prediction: ``logits (n, K), labels (n,) -> (n,)``.

    ``"bce"``: YOLOv3 §2.2, "we simply use independent logistic classifiers ... binary
    cross-entropy loss", :math:`-\\sum_k [y_k \\log σ(x_k) + (1 - y_k) \\log(1 - σ(x_k))]`.
    ``"softmax"``: YOLOv2's region layer, a softmax over the K classes with cross-entropy
    (Darknet writes the delta ``one_hot - softmax``, the cross-entropy gradient).
    """
    if kind == "softmax":
        return F.cross_entropy(logits, labels, reduction="none")
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)  # (n, K)
    return F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none").sum(1)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


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
        coder: a box coder of :mod:`yolo_teach.decode`; it must reach every cell the assigner
            makes responsible (:class:`~yolo_teach.losses.assign.NeighbourCellAssigner` needs
            :class:`~yolo_teach.decode.YOLOv5BoxCoder`).
        box_loss: ``"sse"`` (:func:`box_sse_loss`) or ``"ciou"``.
        objectness_target: ``"one"`` or ``"iou"`` (IoU of the decoded box with its truth).
        ignore_threshold: unassigned predictions whose decoded box overlaps a ground truth of
            their image by more than this get no objectness loss; ``None`` turns the rule off.
        class_loss: ``"bce"`` or ``"softmax"`` (see :func:`class_loss`).
        objectness_balance: ``β_s`` per scale (YOLOv5: 4.0, 1.0, 0.4 for strides 8, 16, 32);
            ``None`` for all ones.
        box_gain, obj_gain, cls_gain: the gains ``g``.
        reduction: ``"sum"`` or ``"mean"``.

    The logged terms are after gains and balance, so they add up to the loss.
    """

    def __init__(
        self,
        anchors: Sequence,
        strides: Sequence[int],
        assigner,
        coder: BoxCoder,
        box_loss: str = "sse",
        objectness_target: str = "one",
        ignore_threshold: float | None = 0.5,
        class_loss: str = "bce",
        objectness_balance: Sequence[float] | None = None,
        box_gain: float = 1.0,
        obj_gain: float = 1.0,
        cls_gain: float = 1.0,
        reduction: str = "sum",
    ):
        self.anchors = [torch.as_tensor(a, dtype=torch.float32).reshape(-1, 2) for a in anchors]
        self.strides = tuple(strides)
        if len(self.anchors) != len(self.strides):
            raise ValueError(f"{len(self.anchors)} anchor groups for {len(self.strides)} strides")
        low, high = assigner.centre_range
        if not coder.centre_range[0] <= low < high <= coder.centre_range[1]:
            raise ValueError(
                f"{type(assigner).__name__} makes cells responsible for centres at offsets "
                f"{assigner.centre_range}, which {type(coder).__name__} cannot reach "
                f"{coder.centre_range}"
            )
        self.assigner, self.coder = assigner, coder
        self.box_loss = _check("box_loss", box_loss, BOX_LOSSES)
        self.objectness_target = _check("objectness_target", objectness_target, OBJECTNESS_TARGETS)
        self.class_loss = _check("class_loss", class_loss, CLASS_LOSSES)
        self.reduction = _check("reduction", reduction, REDUCTIONS)
        self.ignore_threshold = ignore_threshold
        self.objectness_balance = tuple(objectness_balance or (1.0,) * len(self.strides))
        self.box_gain, self.obj_gain, self.cls_gain = box_gain, obj_gain, cls_gain

    def __call__(self, outputs: Tensor | Sequence[Tensor], targets: Tensor):
        """``outputs``: the model's map(s) ``(B, A(5+K), H, W)``, finest first; ``targets``:
        ``(M, 6)`` rows ``[b, class, x1, y1, x2, y2]`` in pixels of the input."""
        maps = as_map_list(outputs)
        batch = maps[0].shape[0]
        targets = targets.to(maps[0])  # dtype and device of the outputs
        anchors = [a.to(maps[0]) for a in self.anchors]
        preds = [split_anchor_map(p, len(a)) for p, a in zip(maps, anchors)]  # (B, A, H, W, 5+K)
        assignments = self.assigner(targets, anchors, self.strides,
                                    [p.shape[2:4] for p in preds])
        box = obj = cls = maps[0].new_zeros(())
        for s, (pred, asg) in enumerate(zip(preds, assignments)):
            box_s, obj_s, cls_s = self._scale_terms(pred, asg, anchors[s], self.strides[s],
                                                    targets)
            box, obj, cls = box + box_s, obj + self.objectness_balance[s] * obj_s, cls + cls_s
        if self.reduction == "sum":  # Darknet: per image
            box, obj, cls = box / batch, obj / batch, cls / batch
        terms = {"box": self.box_gain * box, "obj": self.obj_gain * obj, "cls": self.cls_gain * cls}
        loss = terms["box"] + terms["obj"] + terms["cls"]
        return loss, {k: v.detach() for k, v in terms.items()}

    def _reduce(self, values: Tensor, count: int) -> Tensor:
        """Sum, or mean over ``count`` elements (0 when there are none)."""
        total = values.sum()
        return total if self.reduction == "sum" else total / max(count, 1)

    def _scale_terms(self, pred: Tensor, asg: ScaleAssignment, anchors_px: Tensor, stride: int,
                     targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Box, objectness and class terms of one scale, before gains, balance and batch size."""
        batch, num_anchors, h, w = pred.shape[:4]
        anchors = anchors_px / stride  # (A, 2) in cells
        obj_target = pred.new_zeros(batch, num_anchors, h, w)
        obj_weight = self._not_ignored(pred, anchors, stride, targets)  # (B, A, H, W)
        box_term = cls_term = pred.new_zeros(())
        n = len(asg)
        if n:
            p = pred[asg.b, asg.a, asg.gy, asg.gx]  # (n, 5+K)
            cell = torch.stack([asg.gx, asg.gy], dim=1).to(p)  # (n, 2)
            anchor = anchors[asg.a]  # (n, 2)
            truth = box_convert(asg.boxes, "xyxy", "cxcywh") / stride  # (n, 4) in cells
            box = box_convert(self.coder.decode(p[:, :4], cell, anchor) * stride,
                              "cxcywh", "xyxy")  # (n, 4) pixels
            if self.box_loss == "sse":
                image_area = (h * stride) * (w * stride)
                scale = 2 - truth[:, 2] * truth[:, 3] * stride**2 / image_area  # (n,)
                per_box = box_sse_loss(p[:, :4], self.coder.encode(truth, cell, anchor), scale)
            else:
                per_box = complete_box_iou_loss(box, asg.boxes)  # (n,)
            box_term = self._reduce(per_box, n)
            per_class = class_loss(p[:, 5:], asg.labels, self.class_loss)  # (n,)
            # YOLOv5's BCE mean runs over n x K numbers, a cross-entropy mean over n
            k = p.shape[1] - 5 if self.class_loss == "bce" and self.reduction == "mean" else 1
            cls_term = self._reduce(per_class, n * k)
            if self.objectness_target == "iou":
                value = aligned_box_iou(box.detach(), asg.boxes).clamp(min=0)  # (n,)
            else:
                value = torch.ones(n, dtype=p.dtype, device=p.device)
            flat = ((asg.b * num_anchors + asg.a) * h + asg.gy) * w + asg.gx  # (n,)
            # a prediction responsible for several truths keeps the highest target
            obj_target.view(-1).scatter_reduce_(0, flat, value, reduce="amax")
            obj_weight.view(-1)[flat] = 1.0  # the ignore rule never mutes a responsible one
        bce = F.binary_cross_entropy_with_logits(pred[..., 4], obj_target, reduction="none")
        obj_term = self._reduce(bce * obj_weight, obj_weight.numel())
        return box_term, obj_term, cls_term

    @torch.no_grad()
    def _not_ignored(self, pred: Tensor, anchors: Tensor, stride: int, targets: Tensor) -> Tensor:
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
        box = self.coder.decode(pred[..., :4], grid, anchors[:, None, None, :]) * stride
        box = box_convert(box, "cxcywh", "xyxy").reshape(batch, -1, 4)  # (B, A H W, 4)
        for b in range(batch):
            truths = targets[targets[:, 0] == b, 2:6]  # (m, 4)
            if len(truths):
                best = box_iou(box[b], truths).amax(1)  # (A H W,)
                weight[b].view(-1)[best > self.ignore_threshold] = 0.0
        return weight
