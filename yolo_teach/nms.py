"""Non-maximum suppression: greedy, per class, soft (Bodla et al. 2017) and DIoU (YOLOv4 BoS).

A detector proposes many overlapping boxes for one object; NMS keeps the best-scoring box and
removes its near duplicates. Conventions shared by every function here (torchvision's):

* boxes are ``xyxy``; a box is suppressed when its overlap with a kept box is **greater than**
  ``iou_threshold`` (equal is kept);
* the result is the indices of the kept boxes, by decreasing score; equal scores keep the box
  with the smaller index first;
* boxes of any dtype: overlaps are computed as in ``yolo_teach.boxes`` (float16/bfloat16 in
  float32, integers in float64); boxes must be ``(N, 4)`` and scores ``(N,)``, else ``ValueError``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from yolo_teach.boxes import box_iou, distance_box_iou, upcast


def _check(boxes: Tensor, scores: Tensor, idxs: Tensor | None = None) -> None:
    """Raise ``ValueError`` unless boxes are ``(N, 4)`` and scores (and class indices) ``(N,)``."""
    n = boxes.shape[:1]  # (N,)
    others = [t.shape for t in (scores, idxs) if t is not None]
    if boxes.shape != (*n, 4) or any(shape != n for shape in others):
        shapes = [tuple(t.shape) for t in (boxes, scores, idxs) if t is not None]
        raise ValueError(f"expected boxes (N, 4) and scores, idxs (N,); got shapes {shapes}")


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
    _check(boxes, scores)
    return _greedy(box_iou(boxes, boxes), _score_order(scores), iou_threshold)


def _apart_by_class(boxes: Tensor, idxs: Tensor) -> Tensor:
    """The offset trick: class c moves by c (span + gap) along x and y; classes cannot overlap."""
    boxes = upcast(boxes)  # int8 boxes + int8 offsets would overflow
    gap = 1  # pragma: no mutate -- any gap > 0 keeps the classes apart (1 -> 2 is equivalent)
    offsets = idxs * (boxes.max() - boxes.min() + gap)  # (N,) one region per class
    return boxes + offsets[:, None]  # pragma: no mutate -- moving left (-) separates them too


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each class (``idxs (N,)``): boxes of different classes never suppress each other.

    The offset trick: shift every class to its own region of the plane, far enough that boxes of
    different classes cannot overlap, then run plain NMS once.
    """
    _check(boxes, scores, idxs)
    if len(boxes) == 0:  # no boxes, no span to shift by
        return torch.empty(0, dtype=torch.long)
    return nms(_apart_by_class(boxes, idxs), scores, iou_threshold)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """DIoU-NMS (Zheng et al. 2020 §3.4; YOLOv4 §3.4 bag of specials).

    Suppress when ``IoU - rho^2/c^2 > iou_threshold``: two boxes whose centres lie far apart are
    more likely two objects, so occluded neighbours survive where plain NMS would drop them.
    """
    _check(boxes, scores)
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
        score) and their decayed scores, both ``(K,)``; the scores in float32 for float16 or
        bfloat16 scores, float64 for integer ones.
    """
    if method not in ("linear", "gaussian"):
        raise ValueError(f"method must be 'linear' or 'gaussian', got {method!r}")
    _check(boxes, scores)
    overlap = box_iou(boxes, boxes)  # (N, N)
    current = upcast(scores)  # (N,) the decayed scores (replaced, never changed in place)
    remaining = current >= score_threshold  # (N,) boxes still in the running
    keep, kept_scores = [], []
    while remaining.any():
        masked = torch.where(remaining, current, -torch.inf)
        i = int(torch.argmax(masked))  # first index among equal maxima
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
    return torch.tensor(keep, dtype=torch.long), torch.tensor(kept_scores, dtype=current.dtype)


def batched_diou_nms(boxes: Tensor, scores: Tensor, idxs: Tensor,
                     iou_threshold: float) -> Tensor:
    """:func:`diou_nms` within each class (``idxs (N,)``), by :func:`batched_nms`'s offset
    trick: boxes of different classes are moved apart, so their IoU is 0 and their DIoU
    negative, below any threshold in [0, 1]."""
    _check(boxes, scores, idxs)
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.long)
    return diou_nms(_apart_by_class(boxes, idxs), scores, iou_threshold)


def batched_soft_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float = 0.3,
                     sigma: float = 0.5, method: str = "gaussian",
                     score_threshold: float = 0.001) -> tuple[Tensor, Tensor]:
    """:func:`soft_nms` within each class (``idxs (N,)``), by :func:`batched_nms`'s offset
    trick (boxes of different classes do not overlap, so they do not decay each other).
    RefineDetLite's inference (§5.1, advanced configuration).

    Returns ``(keep, new_scores)`` as :func:`soft_nms`; with the Gaussian decay
    ``iou_threshold`` is unused (it is the linear decay's :math:`N_t`).
    """
    _check(boxes, scores, idxs)
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.long), upcast(scores)
    return soft_nms(_apart_by_class(boxes, idxs), scores, iou_threshold, sigma, method,
                    score_threshold)
