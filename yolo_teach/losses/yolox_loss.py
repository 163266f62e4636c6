"""YOLOX's loss (Ge et al. 2021, §2.1; official ``yolo_head.py`` ``get_losses``).

For each image, :func:`~yolo_teach.losses.simota.simota_assign` picks the positive anchor points
from the detached predictions; then, with :math:`N_{pos}` the positives of the batch,

.. math:: L = \\frac{1}{N_{pos}} \\Big( \\lambda_{reg} \\sum_{pos} L_{IoU}
          + \\sum_{all} \\text{BCE}(o, [pos]) + \\sum_{pos} \\text{BCE}(c, \\text{onehot} \\cdot
          \\text{IoU}) + [\\text{l1}] \\sum_{pos} |t - \\hat t| \\Big)

with :math:`\\lambda_{reg} = 5`, the IoU loss :math:`1 - \\text{IoU}^2` (official ``IOUloss``) or
:math:`1 - \\text{CIoU}` (seed 004, eq. 9–11), the class target scaled by the IoU of the
prediction, and the L1 term on the raw offsets switched on for the last epochs (``use_l1``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_teach.boxes import aligned_box_iou, box_convert, complete_box_iou_loss
from yolo_teach.decode import anchor_points, decode_points, flatten_point_maps
from yolo_teach.losses.simota import simota_assign


class YOLOXLoss:
    """The criterion of an anchor-free decoupled head with outputs ``(B, 4 + 1 + K, H, W)``.

    Args:
        strides: of the output maps, finest first.
        num_classes: K.
        reg_weight: :math:`\\lambda_{reg}` (official 5.0).
        box_loss: ``"iou"`` (official, :math:`1 - \\text{IoU}^2`) or ``"ciou"`` (seed 004).
        use_l1: add the L1 loss on the raw offsets (official: the last 15 epochs, with Mosaic off).
        cls_gain: weight of the class term (1.0 officially; recipes may scale it).
        radius: SimOTA's centre radius in strides.
        topk: how many of the largest IoUs make a ground truth's dynamic k (official 10).
    """

    class_gain_option = "cls_gain"

    def __init__(self, strides: Sequence[int], num_classes: int, reg_weight: float = 5.0,
                 box_loss: str = "iou", use_l1: bool = False, cls_gain: float = 1.0,
                 radius: float = 2.5, topk: int = 10):
        if box_loss not in ("iou", "ciou"):
            raise ValueError(f"box_loss must be 'iou' or 'ciou', got {box_loss!r}")
        self.strides, self.num_classes = tuple(strides), num_classes
        self.reg_weight, self.box_loss, self.use_l1 = reg_weight, box_loss, use_l1
        self.cls_gain, self.radius, self.topk = cls_gain, radius, topk

    def final_phase(self) -> None:
        """Called by the trainer for the last epochs (``TrainConfig.final_phase``): the L1 term
        on (official ``yolox_base.py``: ``use_l1`` with ``no_aug_epochs``)."""
        self.use_l1 = True

    def _box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.box_loss == "ciou":
            return complete_box_iou_loss(pred, target)  # (N,)
        return 1 - aligned_box_iou(pred, target) ** 2  # (N,)

    def __call__(self, outputs: Sequence[Tensor], targets: Tensor) -> tuple[Tensor, dict]:
        """``outputs [(B, 5 + K, H, W)]``, ``targets (M, 6)`` rows ``[b, class, x1, y1, x2, y2]``
        -> ``(loss, {"box", "obj", "cls", "l1"})``."""
        flat = flatten_point_maps(outputs)  # (B, P, 5 + K)
        points, strides = anchor_points([o.shape[-2:] for o in outputs], self.strides,
                                        flat.device)
        points, strides = points.to(flat.dtype), strides.to(flat.dtype)
        targets = targets.to(flat)
        boxes = decode_points(flat[..., :4], points, strides)  # (B, P, 4) xyxy px
        obj_target = torch.zeros_like(flat[..., 4])  # (B, P)
        box_terms, cls_terms, l1_terms = [], [], []
        for b in range(flat.shape[0]):
            gt = targets[targets[:, 0] == b]  # (M_b, 6)
            with torch.no_grad():
                scores = flat[b, :, 5:].sigmoid() * flat[b, :, 4:5].sigmoid()  # (P, K)
                res = simota_assign(gt[:, 2:6], gt[:, 1].long(), points, strides,
                                    boxes[b].detach(), scores, self.radius,
                                    topk=self.topk)
            pos = res.positive  # (P,)
            if not pos.any():
                continue
            obj_target[b, pos] = 1.0
            matched = gt[res.gt_index[pos]]  # (N_b, 6)
            box_terms.append(self._box_loss(boxes[b, pos], matched[:, 2:6]))
            onehot = F.one_hot(matched[:, 1].long(), self.num_classes).to(flat.dtype)
            cls_target = onehot * res.iou[pos, None].to(flat.dtype)  # (N_b, K)
            cls_terms.append(F.binary_cross_entropy_with_logits(
                flat[b, pos, 5:], cls_target, reduction="none").sum(1))
            if self.use_l1:
                cxcywh = box_convert(matched[:, 2:6], "xyxy", "cxcywh")
                s, corner = strides[pos, None], points[pos] - 0.5 * strides[pos, None]
                t = torch.cat([(cxcywh[:, :2] - corner) / s,
                               torch.log(cxcywh[:, 2:] / s + 1e-8)], 1)  # (N_b, 4)
                l1_terms.append((flat[b, pos, :4] - t).abs().sum(1))
        num_pos = max(sum(len(t) for t in box_terms), 1)
        zero = flat.sum() * 0.0  # keeps the graph when nothing is positive
        box = torch.cat(box_terms).sum() / num_pos if box_terms else zero
        cls = torch.cat(cls_terms).sum() / num_pos if cls_terms else zero
        l1 = torch.cat(l1_terms).sum() / num_pos if l1_terms else zero
        obj = F.binary_cross_entropy_with_logits(flat[..., 4], obj_target,
                                                 reduction="sum") / num_pos
        parts = {"box": self.reg_weight * box, "obj": obj, "cls": self.cls_gain * cls, "l1": l1}
        loss = sum(parts.values())
        return loss, {k: v.detach() for k, v in parts.items()}
