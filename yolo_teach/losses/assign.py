"""Target assignment for anchor-based YOLO heads: which predictions learn which ground truth.

A YOLOv2/v3 map predicts, at every cell ``(g_y, g_x)`` and for every anchor ``a``, one box. In
training only a few of those predictions are *responsible* for a ground truth: they learn its
box and class, and objectness 1; all others learn objectness 0. Which ones is the assignment,
and the versions differ mostly here:

=========================  ==============================================  ====================
assigner                   responsible predictions of one ground truth     source
=========================  ==============================================  ====================
SingleAnchorAssigner       best anchor by shape IoU (over all scales), at  YOLOv2 §2, YOLOv3
                           the cell containing the centre: exactly 1       §2.1
MultiAnchorAssigner        every anchor with shape IoU > 0.213 (and the    YOLOv4 §3.4 "IT",
                           best), at the centre cell                       yolov4.cfg
NeighbourCellAssigner      every anchor with w, h ratios < 4, at the       YOLOv5
                           centre cell and its 2 nearest neighbour cells   ``build_targets``
=========================  ==============================================  ====================

Every assigner is called the same way, ``assigner(targets, anchors, strides, grid_sizes,
predictions)`` (the :class:`~yolo_teach.protocols.Assigner` protocol: dynamic rules such as
YOLOX's SimOTA look at the decoded ``predictions``, the static rules here ignore them), and
returns one :class:`ScaleAssignment` per output map; :func:`describe_assignment` lists the
pairs as ``(scale, anchor, gy, gx, gt_index)`` tuples, ready to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from yolo_teach.anchors import wh_iou
from yolo_teach.boxes import box_convert


@dataclass(frozen=True)
class ScaleAssignment:
    """The responsible predictions of one output map, one entry per (ground truth, prediction).

    Attributes:
        b, a, gy, gx: ``(n,)`` int64 image, anchor, row and column of each prediction.
        gt_index: ``(n,)`` int64 row of ``targets`` the prediction is responsible for.
        boxes: ``(n, 4)`` that ground truth's box, ``xyxy`` pixels.
        labels: ``(n,)`` int64 its class.
    """

    b: Tensor
    a: Tensor
    gy: Tensor
    gx: Tensor
    gt_index: Tensor
    boxes: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.b)


def _at_cells(targets: Tensor, gt_index: Tensor, anchor: Tensor, gx: Tensor, gy: Tensor,
              grid_size: tuple[int, int]) -> ScaleAssignment:
    """Package ground truths ``gt_index`` assigned to ``anchor`` at cells ``(gy, gx)``."""
    h, w = grid_size
    rows = targets[gt_index]  # (n, 6)
    return ScaleAssignment(
        b=rows[:, 0].long(),
        a=anchor.long(),
        gy=gy.long().clamp(0, h - 1),
        gx=gx.long().clamp(0, w - 1),
        gt_index=gt_index.long(),
        boxes=rows[:, 2:6],
        labels=rows[:, 1].long(),
    )


def _centre_cells(targets: Tensor, gt_index: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Column and row of the cell containing each ground truth's centre: ``floor(c / stride)``."""
    centre = box_convert(targets[gt_index, 2:6], "xyxy", "cxcywh")[:, :2] / stride  # (n, 2)
    cell = centre.floor()
    return cell[:, 0], cell[:, 1]


def _shape_iou(targets: Tensor, anchors: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """IoU of every ground truth's ``(w, h)`` with every anchor of every scale, both centred.

    Returns:
        ``iou (M, sum A)``, and for each column its ``scale (sum A,)`` and ``anchor (sum A,)``.
    """
    wh = (targets[:, 4:6] - targets[:, 2:4]).detach().cpu().numpy()  # (M, 2)
    flat = torch.cat([torch.as_tensor(a) for a in anchors]).cpu().numpy()  # (sum A, 2)
    iou = torch.from_numpy(wh_iou(wh, flat)).to(targets.device)  # (M, sum A)
    scale = torch.cat([torch.full((len(a),), s) for s, a in enumerate(anchors)])  # (sum A,)
    anchor = torch.cat([torch.arange(len(a)) for a in anchors])  # (sum A,)
    return iou, scale.to(targets.device), anchor.to(targets.device)


def _assign_pairs(targets, pairs, scale_of, anchor_of, strides, grid_sizes):
    """Turn ``pairs (p, 2)`` of (ground truth, flat anchor) into centre-cell assignments."""
    gt_index, flat = pairs[:, 0], pairs[:, 1]
    out = []
    for s, (stride, grid_size) in enumerate(zip(strides, grid_sizes)):
        here = scale_of[flat] == s
        gx, gy = _centre_cells(targets, gt_index[here], stride)
        out.append(_at_cells(targets, gt_index[here], anchor_of[flat[here]], gx, gy, grid_size))
    return out


class SingleAnchorAssigner:
    """Faithful YOLOv2/v3: one ground truth, one prediction.

    YOLOv3 §2.1: "our system only assigns one bounding box prior for each ground truth object",
    the prior that overlaps the ground truth most, comparing shapes only (YOLOv2's
    ``bias_match``). With several maps the best anchor is sought over the anchors of **all**
    scales, so the anchor also picks the map. The prediction sits at the cell containing the
    box centre.
    """

    centre_range = (0.0, 1.0)  # responsible cells contain the centre

    def __call__(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                 grid_sizes: Sequence[tuple[int, int]],
                 predictions: Sequence[Tensor] | None = None) -> list[ScaleAssignment]:
        """Assign ``targets (M, 6)`` rows ``[b, class, x1, y1, x2, y2]``; ``anchors`` per scale
        ``(A, 2)`` pixels; ``grid_sizes`` per scale ``(H, W)``; ``predictions``, the decoded
        predictions per scale ``(B, A, H, W, 5+K)`` (boxes ``xyxy`` pixels, then probabilities),
        which these static rules ignore. Returns one assignment per scale."""
        iou, scale_of, anchor_of = _shape_iou(targets, anchors)
        best = iou.argmax(1)  # (M,), empty without targets
        pairs = torch.stack([torch.arange(len(targets), device=targets.device), best], 1)
        return _assign_pairs(targets, pairs, scale_of, anchor_of, strides, grid_sizes)


class MultiAnchorAssigner:
    """YOLOv4's "IT" freebie: every anchor that fits well enough learns the ground truth.

    YOLOv4 §3.4 lists "using multiple anchors for a single ground truth if IoU(truth, anchor) >
    IoU threshold" among the bag of freebies; yolov4.cfg sets ``iou_thresh=0.213``. Darknet
    keeps the best anchor as well, so a ground truth that fits no anchor is still learned.
    All responsible predictions sit at the centre cell of their scale.
    """

    centre_range = (0.0, 1.0)

    def __init__(self, iou_threshold: float = 0.213):
        self.iou_threshold = iou_threshold

    def __call__(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                 grid_sizes: Sequence[tuple[int, int]],
                 predictions: Sequence[Tensor] | None = None) -> list[ScaleAssignment]:
        """Same arguments and result as :meth:`SingleAnchorAssigner.__call__`."""
        iou, scale_of, anchor_of = _shape_iou(targets, anchors)
        match = iou > self.iou_threshold  # (M, sum A)
        if len(targets):
            match[torch.arange(len(targets)), iou.argmax(1)] = True  # always the best anchor
        pairs = torch.nonzero(match)  # (p, 2) rows (ground truth, flat anchor)
        return _assign_pairs(targets, pairs, scale_of, anchor_of, strides, grid_sizes)


class NeighbourCellAssigner:
    """YOLOv5's assignment: more anchors per ground truth, and 3 cells per anchor.

    Per scale, an anchor matches a ground truth when neither side is more than ``anchor_t``
    times larger or smaller than the anchor's:

    .. math:: \\max\\left(\\frac{w}{p_w}, \\frac{p_w}{w}, \\frac{h}{p_h}, \\frac{p_h}{h}\\right)
              < \\text{anchor\\_t} = 4

    (4 is the widest ratio :class:`~yolo_teach.decode.YOLOv5BoxCoder` can reach). Each match
    is responsible at the centre cell and at the two neighbour cells nearest to the centre: the
    left one if the centre lies in the left half of its cell, else the right one; the upper one
    if it lies in the upper half, else the lower one. A ground truth may match anchors of
    several scales. Neighbours outside the map are dropped.

    # NOTE(paper): YOLOv5 also adds a "neighbour" when the centre lies exactly on a cell's
    # left/top edge, which is then the centre cell again (a duplicate); we do not.
    """

    centre_range = (-0.5, 1.5)  # a neighbour's centre offset is in (-0.5, 0) or (1, 1.5)

    def __init__(self, anchor_t: float = 4.0):
        self.anchor_t = anchor_t

    def __call__(self, targets: Tensor, anchors: Sequence[Tensor], strides: Sequence[int],
                 grid_sizes: Sequence[tuple[int, int]],
                 predictions: Sequence[Tensor] | None = None) -> list[ScaleAssignment]:
        """Same arguments and result as :meth:`SingleAnchorAssigner.__call__`."""
        wh = targets[:, 4:6] - targets[:, 2:4]  # (M, 2)
        out = []
        for anchors_px, stride, (h, w) in zip(anchors, strides, grid_sizes):
            anchors_px = torch.as_tensor(anchors_px, dtype=wh.dtype, device=wh.device)
            r = wh[:, None, :] / anchors_px[None, :, :]  # (M, A, 2)
            match = torch.maximum(r, 1 / r).amax(-1) < self.anchor_t  # (M, A)
            gt_index, anchor = torch.nonzero(match, as_tuple=True)  # (p,), (p,)
            centre = box_convert(targets[gt_index, 2:6], "xyxy", "cxcywh")[:, :2] / stride
            cell = centre.floor()  # (p, 2) columns, rows
            left_half = centre - cell < 0.5  # (p, 2) left half in x, upper half in y
            right_half = centre - cell > 0.5
            size = torch.tensor([w, h], device=wh.device)
            # centre cell, then one neighbour along x, then one along y
            cells, keep = [cell], [torch.ones_like(gt_index, dtype=torch.bool)]
            for axis in (0, 1):
                step = torch.zeros_like(cell)
                step[:, axis] = torch.where(left_half[:, axis], -1.0, 1.0)
                neighbour = cell + step  # (p, 2)
                inside = (neighbour[:, axis] >= 0) & (neighbour[:, axis] < size[axis])
                cells.append(neighbour)
                keep.append(inside & (left_half[:, axis] | right_half[:, axis]))
            cells, keep = torch.cat(cells), torch.cat(keep)  # (3p, 2), (3p,)
            gt3, anchor3 = gt_index.repeat(3)[keep], anchor.repeat(3)[keep]
            out.append(_at_cells(targets, gt3, anchor3, cells[keep, 0], cells[keep, 1], (h, w)))
        return out


def describe_assignment(assignments: Sequence[ScaleAssignment]) -> list[tuple[int, ...]]:
    """Every responsible prediction as ``(scale, anchor, gy, gx, gt_index)``, sorted.

    Ready to draw: scale ``s`` has stride ``strides[s]``, so the cell spans
    ``[gx s, (gx + 1) s) x [gy s, (gy + 1) s)`` pixels. The image index is left out; pass the
    targets of one image to describe that image.
    """
    rows = []
    for scale, asg in enumerate(assignments):
        for a, gy, gx, g in zip(asg.a.tolist(), asg.gy.tolist(), asg.gx.tolist(),
                                asg.gt_index.tolist()):
            rows.append((scale, a, gy, gx, g))
    return sorted(rows, key=lambda row: (row[4], *row[:4]))
