r"""Anchor matching, box coding and sampling for the two-step detectors (RefineDet §3.3, as SSD).

RefineDet assigns by overlap, as SSD does, twice: the ARM's default anchors against the ground
truth, then the ODM's *refined* anchors (the default anchors moved by the ARM's offsets)
against the same ground truth. The pieces, each a small function:

* :class:`~yolo_teach.decode.SSDBoxCoder` - offsets <-> boxes relative to an anchor;
* :class:`IoUMatcher` - which anchors are positive: each ground truth's best anchor, then every
  anchor whose best overlap reaches the threshold (RefineDet §3.3 "Anchors Design and Matching");
* :func:`hard_negatives` - online hard example mining, at most 3 negatives per positive
  (RefineDet §3.3 "Hard Negative Mining", SSD §2.2);
* :func:`filtered_anchors` - negative anchor filtering: an anchor the ARM calls background with
  confidence above 0.99 leaves the ODM's loss and inference (RefineDet §3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from yolo_teach.boxes import box_iou

IOU_THRESHOLD = 0.5  # RefineDet §3.3: ARM and ODM positives at IoU >= 0.5
NEGATIVE_RATIO = 3  # RefineDet §3.3: negatives : positives at most 3 : 1
FILTER_THRESHOLD = 0.99  # RefineDet §3.2: ARM background confidence that removes an anchor


@dataclass(frozen=True)
class Match:
    """The anchors of one image matched to its ground truth.

    Attributes:
        index: (N,) for each anchor the ground truth it overlaps most (0 when there is none).
        iou: (N,) that overlap; 2 for an anchor forced positive as a ground truth's best.
        positive: (N,) bool, the anchors that learn their ground truth.
    """

    index: Tensor
    iou: Tensor
    positive: Tensor


@dataclass(frozen=True)
class IoUMatcher:
    """SSD's matching (RefineDet §3.3): every ground truth first takes the anchor that overlaps
    it most (so no object is left without an anchor), then every anchor whose best IoU reaches
    ``threshold`` becomes positive for that ground truth. The rest are negatives."""

    threshold: float = IOU_THRESHOLD

    def __call__(self, anchors: Tensor, truths: Tensor) -> Match:
        """``anchors (N, 4)``, ``truths (M, 4)`` xyxy pixels -> :class:`Match`."""
        n = len(anchors)
        if len(truths) == 0:
            zeros = torch.zeros(n, dtype=torch.long, device=anchors.device)
            return Match(zeros, torch.zeros(n, device=anchors.device),
                         torch.zeros(n, dtype=torch.bool, device=anchors.device))
        overlap = box_iou(truths, anchors)  # (M, N)
        iou, index = overlap.max(dim=0)  # (N,) best truth of each anchor
        best_anchor = overlap.argmax(dim=1)  # (M,) best anchor of each truth
        # later truths win a contested anchor, as in SSD's loop; the forced match is kept
        # whatever its overlap (marked 2 so that the threshold cannot undo it)
        index[best_anchor] = torch.arange(len(truths), device=anchors.device)
        iou = iou.clone()
        iou[best_anchor] = 2.0
        return Match(index, iou, iou >= self.threshold)


def hard_negatives(negative_loss: Tensor, positive: Tensor, candidates: Tensor,
                   ratio: int = NEGATIVE_RATIO) -> Tensor:
    """Online hard example mining (RefineDet §3.3, SSD §2.2): per image, the ``ratio x`` (number
    of positives) negatives with the largest classification loss.

    Args:
        negative_loss: (B, N) each anchor's loss as a negative (its background loss).
        positive: (B, N) bool, the positives.
        candidates: (B, N) bool, the anchors that may be negatives (not positive, not
            filtered).
        ratio: negatives per positive.

    Returns:
        (B, N) bool, the chosen negatives: at most ``ratio`` per positive in each image, and
        never more than its candidates.
    """
    loss = torch.where(candidates, negative_loss.detach(), -torch.inf)  # (B, N)
    order = loss.argsort(dim=1, descending=True)  # (B, N)
    rank = order.argsort(dim=1)  # (B, N) each anchor's place in its image's ranking
    wanted = (ratio * positive.sum(dim=1, keepdim=True)).clamp(
        max=candidates.sum(dim=1, keepdim=True))  # (B, 1)
    return (rank < wanted) & candidates  # (B, N)


def filtered_anchors(arm_conf: Tensor, threshold: float = FILTER_THRESHOLD) -> Tensor:
    """Negative anchor filtering (RefineDet §3.2): ``arm_conf (B, N, 2)`` logits -> ``(B, N)``
    bool, the anchors whose ARM background probability exceeds ``threshold``. They are
    dropped from the ODM's loss (neither positives nor negatives) and from its detections."""
    return torch.softmax(arm_conf.detach(), dim=-1)[..., 0] > threshold


__all__ = [
    "FILTER_THRESHOLD",
    "IOU_THRESHOLD",
    "IoUMatcher",
    "Match",
    "NEGATIVE_RATIO",
    "filtered_anchors",
    "hard_negatives",
]
