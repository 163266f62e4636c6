r"""YOLOv7's lead and auxiliary heads in pictures (Wang, Bochkovskiy & Liao 2022, seed 003 §4.2,
Fig. 5). ELAN, E-ELAN and RepConv's kernels are drawn by :mod:`~yolo_teach.viz.elan_view`
(re-exported here, where notebook 14 imports them).

* :func:`assign_lead_aux` runs a :class:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss`'s
  assignment on one image and keeps every step (:class:`LeadAuxSteps`);
  :func:`draw_lead_aux_cells` draws the candidate cells and the positives of both heads at one
  stride (legend: :func:`lead_aux_handles`), :func:`ota_candidate_costs` and
  :func:`draw_ota_dynamic_k` the OTA step (drawn by :mod:`~yolo_teach.viz.simota_view`'s
  functions, the cost being SimOTA's).
* :func:`reachable_iou`: the best IoU a prediction of one cell and anchor can reach through a
  bounded box coder (the decoder's restriction of §4.2).

Boxes are ``xyxy`` pixels of the network input; cells are ``(gx, gy)`` column and row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from yolo_teach.decode import as_coder_list, as_map_list, decode_anchor_maps
from yolo_teach.losses.assign import ScaleAssignment
from yolo_teach.losses.lead_guided import LeadGuidedImage, candidate_cells
from yolo_teach.losses.yolov7_loss import LeadAuxLoss
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import draw_canvas
from yolo_teach.viz.elan_view import (  # noqa: F401  (re-exported: notebook 14 imports them here)
    ELAN_COLORS,
    ELANLayout,
    draw_elan,
    draw_kernel_sum,
    elan_layout,
)
from yolo_teach.viz.simota_view import CandidateCosts, draw_dynamic_k, gt_color

# the lead head's labels and the auxiliary head's (fine and coarse cells, positives)
FINE_COLOR, COARSE_COLOR = "#D55E00", "#F0E442"
LEAD_COLOR, AUX_COLOR = "#0072B2", "#000000"


# --------------------------------------------------------------------------------------------
# Lead and auxiliary heads (§4.2, Fig. 5)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadAuxSteps:
    """One image's labels for both heads, every step kept.

    Attributes:
        targets: ``(M, 6)`` the image's ground truths ``[b, class, x1, y1, x2, y2]``; indices
            ``gt`` below are rows of it.
        lead: the lead head's OTA (fine candidates, the lead head's predictions).
        aux: the auxiliary head's (coarse candidates and the lead's predictions for
            ``guide="lead"``; the lead's own labels for ``"lead_fine"``; fine candidates and
            the auxiliary head's predictions for ``"independent"``); ``None`` without aux maps.
        fine_cells, coarse_cells: per scale, the candidates of 3 and of 5 cells
            (:func:`~yolo_teach.losses.lead_guided.candidate_cells`), one row per (ground
            truth, anchor, cell); ``gt_index`` are rows of :attr:`targets`.
        guide: the loss's guide; strides, grid_sizes, anchors (pixels): per scale.
    """

    targets: Tensor
    lead: LeadGuidedImage
    aux: LeadGuidedImage | None
    fine_cells: list[ScaleAssignment]
    coarse_cells: list[ScaleAssignment]
    guide: str
    strides: tuple[int, ...]
    grid_sizes: tuple[tuple[int, int], ...]
    anchors: list[Tensor]

    def positives(self, head: str, gt: int | None = None) -> list[tuple[int, int, int, int]]:
        """``[(scale, anchor, gy, gx)]`` of ``head`` (``"lead"`` or ``"aux"``), sorted; only
        those of ground truth ``gt`` when given."""
        im = self.lead if head == "lead" else self.aux
        if head not in ("lead", "aux"):
            raise ValueError(f"head must be 'lead' or 'aux', got {head!r}")
        if im is None:
            return []
        keep = im.ota.positive if gt is None else im.ota.gt_index == gt
        return sorted(zip(*(as_numpy(v[keep], np.int64).tolist()
                            for v in (im.scale, im.a, im.gy, im.gx))))


@torch.no_grad()
def _decoded(maps: list[Tensor], loss: LeadAuxLoss, anchors: list[Tensor]) -> list[Tensor]:
    """Per scale ``(B, A, H, W, 5+K)``: xyxy pixels, objectness, class probabilities."""
    coders = as_coder_list(loss.coder, len(maps))
    out = []
    for p, anchors_px, stride, coder in zip(maps, anchors, loss.strides, coders):
        rows = decode_anchor_maps(p.detach(), [anchors_px], [stride], coder,
                                  loss.class_loss.activation)  # (B, A H W, 5+K)
        b, _, h, w = p.shape
        out.append(rows.view(b, len(anchors_px), h, w, -1))
    return out


@torch.no_grad()
def assign_lead_aux(loss: LeadAuxLoss, outputs: Sequence[Tensor], targets: Tensor,
                    anchors: Sequence, image: int = 0) -> LeadAuxSteps:
    """The labels ``loss`` gives both heads on image ``image``, with every step.

    The same computation as :meth:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss.assign` (decode
    the predictions, candidates, OTA), keeping the :class:`~yolo_teach.losses.lead_guided.
    LeadGuidedImage` of each head instead of only the positives.

    Args:
        loss: the detector's criterion.
        outputs: the model's maps in training mode: the lead head's, then the auxiliary
            head's (or the lead head's alone).
        targets: ``(M, 6)`` rows ``[b, class, x1, y1, x2, y2]`` of the batch, input pixels.
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels (``Detector.anchors``).
        image: which image of the batch.
    """
    maps, n = as_map_list(outputs), len(loss.strides)
    lead, aux = maps[:n], maps[n:]
    targets = targets.to(lead[0])
    anchors = [torch.as_tensor(a).to(lead[0]) for a in anchors]
    grid_sizes = tuple(tuple(p.shape[-2:]) for p in lead)
    rows = torch.nonzero(targets[:, 0] == image).squeeze(1)
    if len(rows) == 0:
        raise ValueError(f"image {image} has no ground truth")
    mine = targets[rows].clone()
    mine[:, 0] = 0
    pick = [p[image:image + 1] for p in lead]
    lead_pred = _decoded(pick, loss, anchors)
    strides = tuple(loss.strides)
    (lead_steps,) = loss.fine.steps(mine, anchors, strides, grid_sizes, lead_pred)
    aux_steps = None
    if aux:
        if loss.guide == "lead":
            (aux_steps,) = loss.coarse.steps(mine, anchors, strides, grid_sizes, lead_pred)
        elif loss.guide == "lead_fine":
            aux_steps = lead_steps
        else:
            aux_pred = _decoded([p[image:image + 1] for p in aux], loss, anchors)
            (aux_steps,) = loss.fine.steps(mine, anchors, strides, grid_sizes, aux_pred)
    options = (anchors, strides, grid_sizes)
    fine = candidate_cells(mine, *options, loss.fine.offset, loss.fine.anchor_t)
    coarse = candidate_cells(mine, *options, loss.coarse.offset, loss.coarse.anchor_t)
    return LeadAuxSteps(mine, lead_steps, aux_steps, fine, coarse, loss.guide, strides,
                        grid_sizes, anchors)


def ota_candidate_costs(im: LeadGuidedImage, gt: int, strides: Sequence[int],
                        iou_weight: float = 3.0) -> CandidateCosts:
    """The OTA step for ground truth ``gt`` as a :class:`~yolo_teach.viz.simota_view.
    CandidateCosts`, cheapest first, for :func:`~yolo_teach.viz.simota_view.
    draw_candidate_costs`.

    Every candidate of the image is a candidate of every ground truth (as in the official
    code); there is no centre-prior penalty (``outside`` all False); ``index`` is the
    candidate's position in ``im`` and ``cls_cost`` is :math:`c - λ L^{reg}`.
    """
    ota = im.ota
    cost = ota.cost[gt]  # (P,)
    k = int(ota.dynamic_k[gt])
    chosen = torch.zeros(len(cost), dtype=torch.bool)
    if len(cost) and k:
        chosen[cost.topk(min(k, len(cost)), largest=False).indices] = True
    iou = as_numpy(ota.ious[gt])
    reg = -np.log(iou + 1e-8)
    total = as_numpy(cost)
    order = np.argsort(total, kind="stable")
    stride = np.asarray(strides, np.float64)[as_numpy(im.scale, np.int64)]
    return CandidateCosts(
        index=np.arange(len(total))[order], stride=stride[order], iou=iou[order],
        cls_cost=(total - iou_weight * reg)[order], reg_cost=reg[order],
        outside=np.zeros(len(total), bool), cost=total[order],
        chosen=as_numpy(chosen, bool)[order],
        positive=as_numpy(ota.gt_index == gt, bool)[order], k=k)


@dataclass(frozen=True)
class _OTAView:  # what simota_view.draw_dynamic_k reads, for an OTA over all candidates
    ious: Tensor
    candidates: Tensor
    dynamic_k: Tensor


def draw_ota_dynamic_k(ax: Axes, im: LeadGuidedImage, gt: int, topk: int = 20,
                       fontsize: float = 7) -> float:
    """Dynamic k of ground truth ``gt``: its ``topk`` best IoUs among the image's candidates
    and their running sum (:func:`~yolo_teach.viz.simota_view.draw_dynamic_k`). Returns the
    sum; k is its integer part, at least 1."""
    ota = im.ota
    view = _OTAView(ota.ious, torch.ones(ota.ious.shape[1], dtype=torch.bool), ota.dynamic_k)
    return draw_dynamic_k(ax, view, gt, topk, fontsize)


def _cells(asg: ScaleAssignment, gt: int | None) -> set[tuple[int, int]]:
    keep = torch.ones(len(asg), dtype=torch.bool) if gt is None else asg.gt_index == gt
    return set(zip(as_numpy(asg.gx[keep], np.int64).tolist(),
                   as_numpy(asg.gy[keep], np.int64).tolist()))


def draw_lead_aux_cells(ax: Axes, image, steps: LeadAuxSteps, scale: int, gt: int | None = 0,
                        fontsize: float = 7, grid: bool = True) -> dict[str, int]:
    """Fig. 5 on the image, at one stride: the candidate cells and the positives of both heads.

    Drawn: the image with the stride's grid; each ground truth (dashed, its colour) and its
    centre (a cross); the coarse candidate cells (5 around a centre, pale yellow) with the fine
    ones (3, orange; the coarse-only cells hatched); the lead head's positives as filled blue
    dots and the auxiliary head's as black rings, one slot per anchor inside the cell (anchor 0
    on the left). :func:`lead_aux_handles` gives the legend.

    Args:
        image: ``(S, S, 3)`` network input.
        steps: :func:`assign_lead_aux` of that image.
        scale: the output map (0 for stride 8).
        gt: the ground truth whose cells are drawn, or ``None`` for all.

    Returns:
        ``{"fine cells", "coarse cells", "lead positives", "aux positives"}`` at this scale.
    """
    s = steps.strides[scale]
    h, w = steps.grid_sizes[scale]
    num_anchors = len(steps.anchors[scale])
    image = np.asarray(image)
    draw_canvas(ax, image=image)
    ax.add_patch(Rectangle((0, 0), image.shape[1], image.shape[0], facecolor="white",
                           alpha=0.55, edgecolor="none"))  # a paler image, for the cells
    if grid:
        for k in range(1, max(h, w)):
            ax.axhline(k * s, color="#555555", linewidth=0.4, alpha=0.5)
            ax.axvline(k * s, color="#555555", linewidth=0.4, alpha=0.5)
    fine, coarse = _cells(steps.fine_cells[scale], gt), _cells(steps.coarse_cells[scale], gt)
    for gx, gy in coarse - fine:
        ax.add_patch(Rectangle((gx * s, gy * s), s, s, facecolor=COARSE_COLOR, alpha=0.55,
                               edgecolor="#333333", linewidth=0.8, hatch="///"))
    for gx, gy in fine:
        ax.add_patch(Rectangle((gx * s, gy * s), s, s, facecolor=FINE_COLOR, alpha=0.6,
                               edgecolor="#333333", linewidth=0.8))
    boxes = as_numpy(steps.targets[:, 2:6]).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        if gt is not None and i != gt:
            continue
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, edgecolor=gt_color(i),
                               facecolor="none", linewidth=1.5, linestyle="--"))
        ax.plot((x1 + x2) / 2, (y1 + y2) / 2, "x", color=gt_color(i), markersize=7, mew=2)
    counts = {"fine cells": len(fine), "coarse cells": len(coarse)}
    for head, color, fill, y_slot in (("lead", LEAD_COLOR, True, 0.35),
                                      ("aux", AUX_COLOR, False, 0.68)):
        mine = [p for p in steps.positives(head, gt) if p[0] == scale]
        counts[f"{head} positives"] = len(mine)
        if not mine:
            continue
        xs = [(gx + (a + 1) / (num_anchors + 1)) * s for _, a, _, gx in mine]
        ys = [(gy + y_slot) * s for _, _, gy, _ in mine]
        ax.plot(xs, ys, "o", markersize=7, linestyle="none", markeredgewidth=1.8,
                markerfacecolor=color if fill else "none",
                markeredgecolor="white" if fill else color)
    ax.set_title(f"stride {s}: {counts['fine cells']} fine / {counts['coarse cells']} coarse "
                 f"cells\nlead {counts['lead positives']}, aux {counts['aux positives']} "
                 f"positives", fontsize=fontsize + 1)
    return counts


def lead_aux_handles() -> list:
    """Legend handles for :func:`draw_lead_aux_cells`."""
    return [
        Patch(facecolor=FINE_COLOR, alpha=0.6, edgecolor="#333333",
              label="fine candidate cell (3: lead head)"),
        Patch(facecolor=COARSE_COLOR, alpha=0.55, edgecolor="#333333", hatch="///",
              label="coarse only (5 in all: auxiliary head)"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor=LEAD_COLOR,
               markeredgecolor="white", markersize=7, label="lead positive (one slot per anchor)"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
               markeredgecolor=AUX_COLOR, markeredgewidth=1.8, markersize=7,
               label="auxiliary positive"),
        Line2D([], [], marker="x", linestyle="none", color=gt_color(0), markersize=7, mew=2,
               label="ground-truth centre"),
    ]


# --------------------------------------------------------------------------------------------
# The decoder's restriction (§4.2)
# --------------------------------------------------------------------------------------------
def reachable_iou(gt_box, cells, stride: float, anchors, centre_range=(-0.5, 1.5),
                  max_ratio: float = 4.0, steps: int = 200) -> np.ndarray:
    """The best IoU with ``gt_box`` that a prediction of each cell and anchor can reach.

    A bounded coder puts the centre at ``cell + o`` with ``o`` in ``centre_range`` (cells) and
    the size at up to ``max_ratio`` times the anchor (:class:`~yolo_teach.decode.
    YOLOv5BoxCoder`: ``(-0.5, 1.5)`` and 4). For fixed sizes the IoU only grows as the centres
    approach, so the centre is the reachable point nearest the ground truth's; the sizes are
    searched on a grid that contains the ground truth's own and the box that covers it from the
    clamped centre (the best in one dimension). A cell whose ground-truth offset lies in the
    range reaches IoU 1 (when the anchor allows the size); beyond it, less: that upper bound
    is also the best objectness target (the IoU) the prediction can ever be given.

    Args:
        gt_box: ``(4,)`` xyxy pixels; cells: ``(n, 2)`` ``(gx, gy)``; anchors: ``(n, 2)`` or
            ``(2,)`` pixels; stride: pixels per cell.

    Returns:
        ``(n,)`` float64.
    """
    x1, y1, x2, y2 = np.asarray(as_numpy(gt_box), np.float64).reshape(4)
    w, h = x2 - x1, y2 - y1
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    cells = np.asarray(as_numpy(cells), np.float64).reshape(-1, 2)
    anchors = np.broadcast_to(np.asarray(as_numpy(anchors), np.float64), cells.shape)
    lo, hi = centre_range
    offset = centre / stride - cells  # (n, 2) the ground truth's centre, in the cell's units
    best_centre = (cells + np.clip(offset, lo, hi)) * stride  # (n, 2) px
    d = np.abs(best_centre - centre)  # (n, 2) px the centres stay apart
    out = np.empty(len(cells))
    for i in range(len(cells)):
        top = max_ratio * anchors[i]  # (2,) the largest reachable size
        sizes = []
        for axis, side in ((0, w), (1, h)):
            grid = np.linspace(top[axis] / steps, top[axis], steps)
            exact = np.array([side, side + 2 * d[i, axis]])
            sizes.append(np.unique(np.clip(np.concatenate([grid, exact]), 1e-9, top[axis])))
        bw, bh = np.meshgrid(*sizes, indexing="ij")  # candidate widths, heights
        ix = np.clip(np.minimum(best_centre[i, 0] + bw / 2, x2)
                     - np.maximum(best_centre[i, 0] - bw / 2, x1), 0, None)
        iy = np.clip(np.minimum(best_centre[i, 1] + bh / 2, y2)
                     - np.maximum(best_centre[i, 1] - bh / 2, y1), 0, None)
        inter = ix * iy
        out[i] = float((inter / (w * h + bw * bh - inter)).max())
    return out
