"""Non-maximum suppression: greedy, per class, soft (Bodla et al. 2017) and DIoU (YOLOv4 BoS).

A detector proposes many overlapping boxes for one object; NMS keeps the best-scoring box and
removes its near duplicates. Conventions shared by every function here (torchvision's):

* boxes are ``xyxy``; a box is suppressed when its overlap with a kept box is **greater than**
  ``iou_threshold`` (equal is kept);
* the result is the indices of the kept boxes, by decreasing score; equal scores keep the box
  with the smaller index first.
"""

from __future__ import annotations

import torch
from torch import Tensor

from yolo_teach.boxes import box_iou, distance_box_iou


def _score_order(scores: Tensor) -> Tensor:
    """Indices by decreasing score; ties keep index order (a stable sort)."""
    return torch.sort(scores, descending=True, stable=True).indices


def _greedy(overlap: Tensor, order: Tensor, iou_threshold: float) -> Tensor:
    """The greedy loop shared by NMS and DIoU-NMS, on a precomputed ``(N, N)`` overlap."""
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in order.tolist():  # best remaining box first
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i] > iou_threshold  # remove everything that overlaps box i too much
    return torch.tensor(keep, dtype=torch.long)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: ``boxes (N, 4) xyxy, scores (N,) -> kept indices (K,)`` by decreasing score.

    The loop reads like the algorithm: take the best remaining box, keep it, drop every box whose
    IoU with it exceeds ``iou_threshold``, repeat. The ``(N, N)`` IoU matrix is computed once, so
    each step is a single vectorised comparison.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    return _greedy(box_iou(boxes, boxes), _score_order(scores), iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class (``idxs (N,)``): boxes of different classes never suppress each other.

    The offset trick: shift every class to its own region of the plane, far enough that boxes of
    different classes cannot overlap, then run plain NMS once.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    offsets = idxs.to(boxes) * (boxes.max() - boxes.min() + 1)  # (N,) one region per class
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """DIoU-NMS (Zheng et al. 2020 §3.4; YOLOv4 §3.4 bag of specials).

    Suppress when ``IoU - rho^2/c^2 > iou_threshold``: two boxes whose centres lie far apart are
    more likely two objects, so occluded neighbours survive where plain NMS would drop them.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    return _greedy(distance_box_iou(boxes, boxes), _score_order(scores), iou_threshold)


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    method: str = "gaussian",
    score_threshold: float = 0.001,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al. 2017): decay the scores of overlapping boxes instead of removing them.

    After the best box ``M`` is taken, every remaining box ``b_i`` is rescored
    (eq. 2 linear, eq. 3 Gaussian of the Soft-NMS paper):

    .. math::
        s_i \\leftarrow s_i (1 - IoU(M, b_i)) \\text{ if } IoU(M, b_i) > N_t
        \\qquad\\text{or}\\qquad s_i \\leftarrow s_i\\, e^{-IoU(M, b_i)^2 / σ}

    Boxes whose score falls below ``score_threshold`` are dropped.

    Returns:
        ``(keep, new_scores)``: kept indices in the order they were selected (decreasing decayed
        score) and their decayed scores, both ``(K,)``.
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"method must be 'linear' or 'gaussian', got {method!r}")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=scores.dtype)
    overlap = box_iou(boxes, boxes)
    current = scores.clone()
    remaining = torch.ones(len(scores), dtype=torch.bool)
    keep, kept_scores = [], []
    while remaining.any():
        masked = torch.where(remaining, current, torch.full_like(current, -float("inf")))
        i = int(torch.argmax(masked))  # first index among equal maxima
        if current[i] < score_threshold:
            break
        keep.append(i)
        kept_scores.append(current[i].item())
        remaining[i] = False
        iou = overlap[i]
        if method == "linear":
            decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou**2) / sigma)
        current = torch.where(remaining, current * decay, current)
        remaining &= current >= score_threshold
    return torch.tensor(keep, dtype=torch.long), torch.tensor(kept_scores, dtype=scores.dtype)
