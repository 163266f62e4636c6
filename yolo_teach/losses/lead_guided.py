"""YOLOv7's coarse-to-fine lead-guided label assignment and its lead + auxiliary loss (Wang et al.
2022, *YOLOv7*, §4.2 and Fig. 5; official ``utils/loss.py``: ``ComputeLossOTA`` and
``ComputeLossAuxOTA``).

The large YOLOv7 models (E6, D6, E6E) train a second, *auxiliary* head on middle layers of the
network (deep supervision) beside the *lead* head that makes the final predictions. Both heads
predict the same anchor maps; the question of §4.2 is which of their predictions learn which
ground truth when the assignment is dynamic (it looks at the predictions, as YOLOX's SimOTA does).
Per image, and for both heads, the assignment has two steps:

1. **candidates** (static, YOLOv5's rule): every anchor whose sides are within a factor
   ``anchor_t = 4`` of the ground truth's, at the cell containing the centre and at the
   neighbour cells whose shared edge lies less than ``g`` cells from the centre.
   *Fine*, for the lead head, ``g = 0.5``: the 2 nearer neighbours, 3 cells (YOLOv5).
   *Coarse*, for the auxiliary head, ``g = 1``: all 4 neighbours, 5 cells.
2. **OTA** on the candidates (:func:`ota_match`): pairwise IoU of every candidate's predicted
   box with every ground truth of the image, the cost

   .. math:: c_{ij} = L^{cls}_{ij} + λ L^{reg}_{ij}, \\qquad
             L^{reg}_{ij} = -\\log(\\text{IoU}_{ij} + 10^{-8}), \\quad λ = 3

   (:math:`L^{cls}` the binary cross-entropy of :math:`\\sqrt{p_{cls} \\cdot p_{obj}}`
   against the one-hot class, summed over classes: SimOTA's cost), and ground truth i takes its
   :math:`k_i = \\max(1, \\lfloor \\sum \\text{top-}q\\ \\text{IoU}_i \\rfloor)` cheapest
   candidates (:func:`~yolo_teach.losses.simota.dynamic_k`); a candidate claimed twice goes to
   the ground truth it costs least.

"Lead guided" (Fig. 5d, e) means step 2 uses the **lead head's** predictions for both heads:
the auxiliary head learns the labels the lead head's predictions choose, not its own
("independent", Fig. 5c). "Coarse-to-fine" (Fig. 5e) gives the auxiliary head the coarse
candidates, so it learns more positives (recall), the lead head the fine ones (precision).

==================  ========================================  ================================
``guide``           lead head                                 auxiliary head
==================  ========================================  ================================
``"independent"``   fine candidates, lead predictions         fine candidates, aux predictions
                    (Fig. 5c, Table 6 "independent")
``"lead_fine"``     fine candidates, lead predictions         the lead head's labels
                    (Fig. 5d, Table 6 "lead guided")
``"lead"``          fine candidates, lead predictions         coarse candidates, lead
                    (Fig. 5e, "coarse-to-fine lead guided")   predictions (the paper's)
==================  ========================================  ================================

The loss (:class:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss`, in ``yolov7_loss.py``) is
YOLOv5's terms for each head, the auxiliary ones weighted by
0.25: :math:`L = L_{lead} + 0.25\\, L_{aux}`, each :math:`L = g_{box} (1 - \\text{CIoU}) +
g_{obj} \\sum_s β_s \\text{BCE}(o, \\text{IoU}) + g_{cls} \\text{BCE}(c, \\text{one-hot})`, the
objectness target being the detached IoU of the prediction with its ground truth (the "soft
label").

**The decoder's restriction** (§4.2: "we put restrictions in the decoder, so that the extra
coarse positive grids cannot produce soft label perfectly"; Table 7 "aux with constraint").
Both heads decode with :class:`~yolo_teach.decode.YOLOv5BoxCoder`, whose centre offset
:math:`2σ(t) - 0.5` stays in (-0.5, 1.5). A coarse positive is up to 1 cell from the centre
(``LeadGuidedAssigner(coarse=True).centre_range == (-1, 2)``), so when its offset lies beyond
the coder's reach its box can never sit on the ground truth: its IoU, hence its objectness
target, stays below 1 however it learns, and the farther the centre, the lower the bound. The
fine positives can reach IoU 1. The paper does not write the mechanism down; this bounded coder
is how the official code realises it (its commented-out ``3σ(t) - 1`` for the auxiliary head
would be the unconstrained decoder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from yolo_teach.boxes import box_convert, box_iou
from yolo_teach.losses.assign import ScaleAssignment, _at_cells
from yolo_teach.losses.simota import assignment_cost, dynamic_k, match_cheapest

FINE, COARSE = 0.5, 1.0  # g: a neighbour cell is a candidate when its edge is < g from the centre
IOU_WEIGHT = 3.0  # λ of the cost (official: "cost = pair_wise_cls_loss + 3.0 * ...")
TOPK_LEAD_ONLY = 10  # q of dynamic k in ComputeLossOTA (models without an auxiliary head)


# --------------------------------------------------------------------------------------------
# Step 1: candidates (YOLOv5's rule with a wider or narrower neighbourhood)
# --------------------------------------------------------------------------------------------
def candidate_cells(targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                    grid_sizes: Sequence[tuple[int, int]], offset: float = FINE,
                    anchor_t: float = 4.0) -> list[ScaleAssignment]:
    """The candidate predictions of every ground truth, per scale (official ``find_3_positive``
    with ``offset = 0.5``, ``find_5_positive`` with ``offset = 1``).

    Per scale, an anchor matches a ground truth when
    :math:`\\max(w / p_w, p_w / w, h / p_h, p_h / h) < \\text{anchor\\_t}` (as in
    :class:`~yolo_teach.losses.assign.NeighbourCellAssigner`). Each match is a candidate at the
    cell containing the centre and at each of its 4 neighbours whose shared edge lies less than
    ``offset`` cells from the centre: with the centre at fraction ``f`` of its cell along an
    axis, the left/upper neighbour when ``f < offset``, the right/lower one when
    ``1 - f < offset``. ``offset = 0.5`` is YOLOv5's 3 cells, ``offset = 1`` the 5 cells of the
    coarse labels. Neighbours off the map are dropped.

    Args:
        targets: ``(M, 6)`` rows ``[b, class, x1, y1, x2, y2]``, pixels of the input.
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels.
        strides, grid_sizes: per scale, its stride and ``(H, W)``.

    Returns:
        One :class:`~yolo_teach.losses.assign.ScaleAssignment` per scale, one row per
        (ground truth, anchor, cell); a cell may appear for several ground truths.
    """
    wh = targets[:, 4:6] - targets[:, 2:4]  # (M, 2)
    out = []
    for anchors_px, stride, (h, w) in zip(anchors, strides, grid_sizes):
        anchors_px = torch.as_tensor(anchors_px, dtype=wh.dtype, device=wh.device)
        r = wh[:, None, :] / anchors_px[None, :, :]  # (M, A, 2)
        match = torch.maximum(r, 1 / r).amax(-1) < anchor_t  # (M, A)
        gt_index, anchor = torch.nonzero(match, as_tuple=True)  # (p,), (p,)
        centre = box_convert(targets[gt_index, 2:6], "xyxy", "cxcywh")[:, :2] / stride  # (p, 2)
        cell = centre.floor()  # (p, 2) columns, rows
        frac = centre - cell  # (p, 2) in [0, 1)
        size = torch.tensor([w, h], device=wh.device)
        cells, keep = [cell], [torch.ones_like(gt_index, dtype=torch.bool)]
        for axis in (0, 1):  # x, then y
            for step, distance in ((-1.0, frac[:, axis]), (1.0, 1 - frac[:, axis])):
                neighbour = cell.clone()
                neighbour[:, axis] += step  # (p, 2)
                inside = (neighbour[:, axis] >= 0) & (neighbour[:, axis] < size[axis])
                cells.append(neighbour)
                keep.append(inside & (distance < offset))
        copies = len(cells)  # centre + 4 neighbours
        cells, keep = torch.cat(cells), torch.cat(keep)  # (5p, 2), (5p,)
        gt5, anchor5 = gt_index.repeat(copies)[keep], anchor.repeat(copies)[keep]
        out.append(_at_cells(targets, gt5, anchor5, cells[keep, 0], cells[keep, 1], (h, w)))
    return out


# --------------------------------------------------------------------------------------------
# Step 2: OTA on the candidates of one image
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OTAResult:
    """One image's OTA over P candidate predictions and M ground truths.

    Attributes:
        gt_index: ``(P,)`` the ground truth (row of the image's ``gt_boxes``) each candidate
            learns, ``-1`` for those left out.
        iou: ``(P,)`` IoU of each positive's predicted box with its ground truth (0 elsewhere).
        ious: ``(M, P)`` pairwise IoU of ground truths and predicted boxes.
        cost: ``(M, P)`` :math:`c_{ij}`.
        dynamic_k: ``(M,)`` :math:`k_i`.
    """

    gt_index: Tensor
    iou: Tensor
    ious: Tensor
    cost: Tensor
    dynamic_k: Tensor

    @property
    def positive(self) -> Tensor:
        return self.gt_index >= 0  # (P,)


def ota_match(gt_boxes: Tensor, gt_labels: Tensor, pred_boxes: Tensor, pred_scores: Tensor,
              iou_weight: float = IOU_WEIGHT, topk: int = TOPK_LEAD_ONLY) -> OTAResult:
    """Match ground truths to candidate predictions by cost (the OTA step of ``build_targets``).

    .. math:: c_{ij} = \\sum_k \\text{BCE}\\big(\\sqrt{p_{jk}}, [k = y_i]\\big)
              - λ \\log(\\text{IoU}_{ij} + 10^{-8}), \\qquad
              k_i = \\max\\big(1, \\lfloor \\textstyle\\sum \\text{top-}q\\ \\text{IoU}_i
              \\rfloor\\big)

    Ground truth i takes its :math:`k_i` cheapest candidates (at most P); a candidate taken by
    several goes to the one whose cost is lowest.

    # NOTE(paper): the official code gives a doubly taken candidate to the cheapest of *all*
    # ground truths, possibly one that did not take it; we choose among those that took it, as
    # :func:`~yolo_teach.losses.simota.simota_assign` does.

    Args:
        gt_boxes: ``(M, 4)`` xyxy pixels; gt_labels: ``(M,)`` class indices.
        pred_boxes: ``(P, 4)`` the candidates' decoded boxes, xyxy pixels, detached.
        pred_scores: ``(P, K)`` their joint probabilities :math:`p = σ(c) σ(o)`, detached.
        iou_weight: λ; topk: q.
    """
    num_gt, num_cand = len(gt_boxes), len(pred_boxes)
    device = pred_boxes.device
    gt_index = torch.full((num_cand,), -1, dtype=torch.long, device=device)
    iou = torch.zeros(num_cand, device=device)
    if num_gt == 0 or num_cand == 0:
        empty = torch.zeros(num_gt, num_cand, device=device)
        k = torch.zeros(num_gt, dtype=torch.long, device=device)
        return OTAResult(gt_index, iou, empty, empty.clone(), k)

    ious = box_iou(gt_boxes.float(), pred_boxes.float()).float()  # (M, P)
    cost = assignment_cost(gt_labels, ious, pred_scores, iou_weight)  # (M, P)
    k = dynamic_k(ious, topk)  # (M,)
    gt_index = match_cheapest(cost, k)  # (P,)
    claimed = gt_index >= 0
    iou[claimed] = ious[gt_index[claimed], claimed.nonzero().squeeze(1)]
    return OTAResult(gt_index, iou, ious, cost, k)


# --------------------------------------------------------------------------------------------
# The assigner
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadGuidedImage:
    """Every intermediate of one image's assignment, ready to draw.

    Attributes:
        image: the image index b.
        gt_rows: ``(M,)`` rows of ``targets`` that belong to the image (the OTA's ground truths).
        scale, a, gy, gx: ``(P,)`` where each candidate prediction lies (each once).
        ota: the :class:`OTAResult` over these candidates; ``ota.gt_index`` indexes ``gt_rows``.
    """

    image: int
    gt_rows: Tensor
    scale: Tensor
    a: Tensor
    gy: Tensor
    gx: Tensor
    ota: OTAResult


class LeadGuidedAssigner:
    """YOLOv7's dynamic assignment: YOLOv5's candidate cells, then OTA on the predictions given.

    Implements the :class:`~yolo_teach.protocols.Assigner` protocol; the ``predictions`` it is
    given decide. The assigner does not know which head they come from: "lead guided" is the
    loss passing the *lead* head's predictions when assigning the auxiliary head
    (:class:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss`).

    Args:
        coarse: the 5-cell candidates of the auxiliary head's coarse labels (``g = 1``) instead
            of YOLOv5's 3 (``g = 0.5``). Keyword only.
        anchor_t: the anchor side-ratio limit.
        topk: q, the number of IoUs summed for dynamic k (10 in ``ComputeLossOTA``, 20 in
            ``ComputeLossAuxOTA``).
        iou_weight: λ of the cost.

    # NOTE(paper): the official code keeps one candidate row per (ground truth, anchor, cell), so
    # a prediction that is a candidate of two ground truths is there twice: it counts twice in
    # the top-q IoU sums and can be matched twice. We take each candidate prediction once.
    # As in the official code, every ground truth of the image may take any candidate of the
    # image, not only its own.
    """

    def __init__(self, *, coarse: bool = False, anchor_t: float = 4.0,
                 topk: int = TOPK_LEAD_ONLY, iou_weight: float = IOU_WEIGHT):
        self.offset = COARSE if coarse else FINE
        self.anchor_t, self.topk, self.iou_weight = anchor_t, topk, iou_weight
        # a neighbour's centre offset lies in (-g, 0) or (1, 1 + g)
        self.centre_range = (-self.offset, 1 + self.offset)

    def __call__(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                 grid_sizes: Sequence[tuple[int, int]],
                 predictions: Sequence[Tensor] | None = None) -> list[ScaleAssignment]:
        """Assign ``targets (M, 6)`` rows ``[b, class, x1, y1, x2, y2]`` using ``predictions``,
        per scale ``(B, A, H, W, 5+K)`` decoded (xyxy pixels, objectness, class
        probabilities), detached. Returns one assignment per scale."""
        images = self.steps(targets, anchors, strides, grid_sizes, predictions)
        out = []
        for s, grid_size in enumerate(grid_sizes):
            gt, a, gy, gx = [], [], [], []
            for im in images:
                here = im.ota.positive & (im.scale == s)  # (P,)
                gt.append(im.gt_rows[im.ota.gt_index[here]])
                a.append(im.a[here])
                gy.append(im.gy[here])
                gx.append(im.gx[here])
            empty = targets.new_zeros(0, dtype=torch.long)
            gt, a, gy, gx = (torch.cat(v) if v else empty for v in (gt, a, gy, gx))
            out.append(_at_cells(targets, gt, a, gx, gy, tuple(grid_size)))
        return out

    @torch.no_grad()
    def steps(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
              grid_sizes: Sequence[tuple[int, int]],
              predictions: Sequence[Tensor] | None) -> list[LeadGuidedImage]:
        """The same assignment, one :class:`LeadGuidedImage` per image with ground truths, with
        every intermediate (candidates, IoUs, costs, k) for drawing."""
        if predictions is None:
            raise ValueError("LeadGuidedAssigner is dynamic: it chooses the positives from the "
                             "decoded predictions, so predictions cannot be None")
        per_scale = candidate_cells(targets, anchors, strides, grid_sizes, self.offset,
                                    self.anchor_t)
        images = []
        for b in range(predictions[0].shape[0]):
            gt_rows = torch.nonzero(targets[:, 0] == b).squeeze(1)  # (M,)
            if len(gt_rows) == 0:
                continue
            scale, a, gy, gx, rows = [], [], [], [], []
            for s, (cand, (h, w)) in enumerate(zip(per_scale, grid_sizes)):
                mine = cand.b == b
                key = (cand.a[mine] * h + cand.gy[mine]) * w + cand.gx[mine]  # (p,)
                key = torch.unique(key)  # (p',) each candidate prediction once
                a_s, cell = key // (h * w), key % (h * w)
                scale.append(torch.full_like(key, s))
                a.append(a_s)
                gy.append(cell // w)
                gx.append(cell % w)
                rows.append(predictions[s][b, a_s, cell // w, cell % w])  # (p', 5+K)
            scale, a, gy, gx, rows = (torch.cat(v) for v in (scale, a, gy, gx, rows))
            scores = rows[:, 5:] * rows[:, 4:5]  # (P, K)
            ota = ota_match(targets[gt_rows, 2:6], targets[gt_rows, 1], rows[:, :4], scores,
                            self.iou_weight, self.topk)
            images.append(LeadGuidedImage(b, gt_rows, scale, a, gy, gx, ota))
        return images
