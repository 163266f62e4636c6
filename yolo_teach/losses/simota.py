"""SimOTA: YOLOX's dynamic label assignment (Ge et al. 2021, *YOLOX: Exceeding YOLO Series in
2021*, §2.1 "SimOTA"), for one image's anchor points.

An anchor-free head predicts one box per *anchor point* (a cell of a stride-s map, centred at
``((x + 0.5) s, (y + 0.5) s)``). Which points learn which ground truth is decided from the
current predictions, per image:

1. **centre prior**: only points whose centre lies inside a ground truth box *or* within
   ``radius`` strides of its centre are candidates (``radius = 2.5``, the official code);
2. **cost** of point j for ground truth i:
   :math:`c_{ij} = L^{cls}_{ij} + \\lambda L^{reg}_{ij}` with :math:`\\lambda = 3`,
   :math:`L^{reg} = -\\log(\\text{IoU} + 10^{-8})` and :math:`L^{cls}` the binary cross-entropy
   of :math:`\\sqrt{p_{cls} \\cdot p_{obj}}` against the one-hot class, summed over classes;
   a point that is not *both* in the box and in the centre region costs :math:`10^5` more;
3. **dynamic k**: ground truth i takes :math:`k_i = \\max(1, \\lfloor\\sum \\text{top-10
   IoU}_i\\rfloor)` points, those of lowest cost; a point claimed twice goes to the ground truth
   it costs least.

:func:`simota_assign` returns every intermediate (candidates, IoUs, costs, k) so the notebook
can draw each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_teach.boxes import box_iou

OUTSIDE_COST = 1e5  # official yolo_head.py: "100000.0 * (~is_in_boxes_and_center)"


@dataclass
class SimOTAResult:
    """One image's assignment over P anchor points and M ground truths.

    ``gt_index (P,)``: the ground truth each point learns, ``-1`` for background;
    ``iou (P,)``: IoU of each positive's prediction with its ground truth (0 elsewhere; YOLOX's
    class target is ``one_hot * iou``); ``candidates (P,)``: the centre prior's points;
    ``in_box, in_centre (M, P)``; ``ious, cost (M, P)``; ``dynamic_k (M,)``.
    """

    gt_index: Tensor
    iou: Tensor
    candidates: Tensor
    in_box: Tensor
    in_centre: Tensor
    ious: Tensor
    cost: Tensor
    dynamic_k: Tensor

    @property
    def positive(self) -> Tensor:
        return self.gt_index >= 0  # (P,)


def centre_prior(gt_boxes: Tensor, points: Tensor, strides: Tensor,
                 radius: float = 2.5) -> tuple[Tensor, Tensor]:
    """``(in_box, in_centre)``, each ``(M, P)``: the point's centre lies strictly inside the
    ground truth box; it lies within ``radius * stride`` of the box centre (a square)."""
    x, y = points[None, :, 0], points[None, :, 1]  # (1, P)
    x1, y1, x2, y2 = (gt_boxes[:, k, None] for k in range(4))  # (M, 1)
    in_box = (x > x1) & (x < x2) & (y > y1) & (y < y2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = radius * strides[None, :]  # (1, P)
    in_centre = (x > cx - r) & (x < cx + r) & (y > cy - r) & (y < cy + r)
    return in_box, in_centre


def dynamic_k(ious: Tensor, topk: int = 10) -> Tensor:
    """``(M,)``: the integer part of the sum of each row's ``topk`` largest IoUs, at least 1."""
    if ious.shape[1] == 0:
        return torch.ones(len(ious), dtype=torch.long, device=ious.device)
    top = ious.topk(min(topk, ious.shape[1]), dim=1).values  # (M, k)
    return top.sum(1).long().clamp(min=1)


def assignment_cost(gt_labels: Tensor, ious: Tensor, pred_scores: Tensor,
                    iou_weight: float = 3.0) -> Tensor:
    """The cost :math:`c_{ij} = L^{cls}_{ij} + λ L^{reg}_{ij}` of SimOTA (and YOLOv7's OTA):
    ``gt_labels (M,)``, ``ious (M, P)``, ``pred_scores (P, K)`` joint probabilities ->
    ``(M, P)``, with :math:`L^{reg} = -\\log(\\text{IoU} + 10^{-8})` and :math:`L^{cls}` the BCE of
    :math:`\\sqrt{p}` against the one-hot class, summed over classes."""
    num_gt, num_cand = ious.shape
    reg_cost = -torch.log(ious + 1e-8)
    onehot = F.one_hot(gt_labels.long(), pred_scores.shape[1]).float()  # (M, K)
    p = pred_scores.float().sqrt().clamp(1e-6, 1 - 1e-6)  # (P, K)
    cls_cost = F.binary_cross_entropy(p[None].expand(num_gt, -1, -1),
                                      onehot[:, None].expand(-1, num_cand, -1),
                                      reduction="none").sum(-1)  # (M, P)
    return cls_cost + iou_weight * reg_cost


def match_cheapest(cost: Tensor, k: Tensor) -> Tensor:
    """Ground truth i takes its ``k[i]`` cheapest columns of ``cost (M, P)``; a column taken
    by several goes to the cheapest of those. Returns ``gt_index (P,)``, ``-1`` where untaken."""
    num_gt, num_cand = cost.shape
    taken = torch.zeros(num_gt, num_cand, dtype=torch.bool, device=cost.device)
    for g in range(num_gt):  # each ground truth: its k cheapest candidates
        taken[g, cost[g].topk(min(int(k[g]), num_cand), largest=False).indices] = True
    cheapest = torch.where(taken, cost, torch.full_like(cost, float("inf"))).argmin(0)  # (P,)
    return torch.where(taken.any(0), cheapest, torch.full_like(cheapest, -1))


def simota_assign(gt_boxes: Tensor, gt_labels: Tensor, points: Tensor, strides: Tensor,
                  pred_boxes: Tensor, pred_scores: Tensor, radius: float = 2.5,
                  iou_weight: float = 3.0, topk: int = 10) -> SimOTAResult:
    """SimOTA for one image (YOLOX §2.1).

    Args:
        gt_boxes: ``(M, 4)`` xyxy pixels; gt_labels: ``(M,)`` class indices.
        points, strides: ``(P, 2)`` centres in pixels and ``(P,)`` strides
            (:func:`yolo_teach.decode.anchor_points`).
        pred_boxes: ``(P, 4)`` decoded xyxy pixels, detached.
        pred_scores: ``(P, K)`` joint probabilities ``sigmoid(cls) * sigmoid(obj)``, detached.
    """
    num_points, num_gt = len(points), len(gt_boxes)
    gt_index = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
    iou = torch.zeros(num_points, device=points.device)
    in_box, in_centre = centre_prior(gt_boxes, points, strides, radius)  # (M, P) each
    candidates = (in_box | in_centre).any(0)  # (P,)
    ious = torch.zeros(num_gt, num_points, device=points.device)
    cost = torch.full((num_gt, num_points), float("inf"), device=points.device)
    k = torch.zeros(num_gt, dtype=torch.long, device=points.device)
    if num_gt == 0 or not candidates.any():
        return SimOTAResult(gt_index, iou, candidates, in_box, in_centre, ious, cost, k)

    cand = candidates.nonzero().squeeze(1)  # (P_c,)
    ious[:, cand] = box_iou(gt_boxes.float(), pred_boxes[cand].float())  # (M, P_c)
    outside = ~(in_box[:, cand] & in_centre[:, cand])
    cost[:, cand] = (assignment_cost(gt_labels, ious[:, cand], pred_scores[cand], iou_weight)
                     + OUTSIDE_COST * outside)

    k = dynamic_k(ious[:, cand], topk)  # (M,)
    gt_index[cand] = match_cheapest(cost[:, cand], k)  # a point claimed twice: the cheaper
    claimed = gt_index >= 0  # (P,)
    iou[claimed] = ious[gt_index[claimed], claimed.nonzero().squeeze(1)]
    return SimOTAResult(gt_index, iou, candidates, in_box, in_centre, ious, cost, k)

