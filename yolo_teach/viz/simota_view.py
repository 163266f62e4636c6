"""SimOTA in pictures (YOLOX §2.2): the steps of one image's assignment, drawn from what
:func:`~yolo_teach.losses.simota.simota_assign` returns.

1. **centre prior** (:func:`draw_centre_prior`): the anchor points of one stride over the image,
   marked by whether their centre lies inside a ground-truth box, inside its centre square of
   ``radius`` strides, or both; only these are candidates;
2. **cost** (:func:`candidate_costs`, :func:`draw_candidate_costs`, :func:`draw_cost_matrix`):
   for each candidate :math:`c = L^{cls} + \\lambda L^{reg} + 10^5 [\\text{not both}]`, split
   into its terms;
3. **dynamic k** (:func:`draw_dynamic_k`): the integer part of the sum of a ground truth's ten
   best IoUs;
4. **positives** (:func:`draw_positives`): the points each ground truth finally keeps, in its
   colour.

:func:`assign_image` runs the assigner on one image the way
:class:`~yolo_teach.losses.yolox_loss.YOLOXLoss` does, and keeps what it computed.

Boxes are ``xyxy`` pixels of the network input; points are the ``(P, 2)`` centres and ``(P,)``
strides of :func:`~yolo_teach.decode.anchor_points`. Ground truths are coloured by their index
(:func:`gt_color`), not by class: two objects of one class are two ground truths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from yolo_teach.decode import anchor_points, decode_points, flatten_point_maps
from yolo_teach.losses.simota import OUTSIDE_COST, SimOTAResult, simota_assign
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import box_text, draw_canvas

# ground truths by index: Dark2 (colour-blind-friendlier than tab10 for a handful of boxes)
GT_COLORS = ("#1B9E77", "#D95F02", "#7570B3", "#E7298A", "#66A61E", "#E6AB02", "#A6761D")
PRIOR_STYLES = {  # kind -> (label, marker, colour)
    1: ("in box only", "s", "#56B4E9"),
    2: ("in centre region only", "D", "#E69F00"),
    3: ("in box and centre region", "o", "#D55E00"),
}
OUTSIDE_POINT_COLOR = "#BBBBBB"
MARKER_SIZE = {8: 3.0, 16: 5.0, 32: 8.0}  # points per stride, in matplotlib points


@torch.no_grad()
def assign_image(model: torch.nn.Module, image: torch.Tensor, targets: torch.Tensor,
                 strides: Sequence[int] | None = None, **options
                 ) -> tuple[torch.Tensor, torch.Tensor, SimOTAResult]:
    """SimOTA on one network input, with the steps of :class:`~yolo_teach.losses.yolox_loss.
    YOLOXLoss`: raw maps -> anchor points -> decoded boxes and joint scores
    :math:`\\sigma(cls)\\,\\sigma(obj)` -> :func:`~yolo_teach.losses.simota.simota_assign`.

    The model runs in the mode it is in (``eval()`` for the predictions a user sees, ``train()``
    for the batch statistics of training).

    Args:
        model: an anchor-free detector, ``(B, 3, S, S) -> [(B, 4 + 1 + K, H_i, W_i)]``.
        image: ``(3, S, S)`` float input; targets: ``(M, 6)`` rows ``[_, class, x1, y1, x2, y2]``
            in its pixels (a :class:`~yolo_teach.data.loader.DetectionDataset` item).
        strides: of the maps, finest first (default ``model.strides``).
        options: for :func:`~yolo_teach.losses.simota.simota_assign` (``radius``, ``topk``...).

    Returns:
        ``(points (P, 2), strides (P,), result)``.
    """
    strides = tuple(model.strides if strides is None else strides)
    outputs = model(image[None])  # [(1, 5 + K, H_i, W_i)]
    flat = flatten_point_maps(outputs)[0]  # (P, 5 + K)
    points, point_strides = anchor_points([o.shape[-2:] for o in outputs], strides, flat.device)
    boxes = decode_points(flat[:, :4], points, point_strides)  # (P, 4) xyxy px
    scores = flat[:, 5:].sigmoid() * flat[:, 4:5].sigmoid()  # (P, K)
    result = simota_assign(targets[:, 2:6], targets[:, 1].long(), points, point_strides, boxes,
                           scores, **options)
    return points, point_strides, result


def gt_color(index: int) -> str:
    """The colour of ground truth ``index`` (the palette repeats after 7)."""
    return GT_COLORS[int(index) % len(GT_COLORS)]


def _marker_size(stride: float) -> float:
    return MARKER_SIZE.get(int(stride), 3.0 + 5.0 * np.log2(max(stride, 8) / 8) / 2)


def prior_kind(result: SimOTAResult, gt: int | None = None) -> np.ndarray:
    """``(P,)`` int: 0 outside the prior, 1 in a box only, 2 in a centre region only, 3 in both.

    For one ground truth ``gt``, or over all of them (``None``): "both" when some ground truth
    has the point in its box *and* its centre region (the points without the :math:`10^5`
    penalty), else "in box" when some box holds it, else "centre" when some centre region does.
    """
    in_box, in_centre = result.in_box, result.in_centre  # (M, P)
    if gt is not None:
        in_box, in_centre = in_box[gt:gt + 1], in_centre[gt:gt + 1]
    box, centre = as_numpy(in_box.any(0), bool), as_numpy(in_centre.any(0), bool)
    both = as_numpy((in_box & in_centre).any(0), bool)
    kind = np.zeros(len(box), np.int64)
    kind[centre] = 2
    kind[box] = 1
    kind[both] = 3
    return kind


def _draw_gt(ax: Axes, gt_boxes: np.ndarray, gt_labels: np.ndarray,
             class_names: Sequence[str] | None, fontsize: float) -> None:
    for i, ((x1, y1, x2, y2), label) in enumerate(zip(gt_boxes, gt_labels)):
        color = gt_color(i)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, edgecolor=color, facecolor="none",
                               linewidth=1.5, linestyle="--"))
        ax.text(x1, y1, f"#{i} {box_text(label, None, class_names)}", fontsize=fontsize,
                color="white", va="bottom", ha="left", clip_on=True,
                bbox={"facecolor": color, "edgecolor": "none", "pad": 1.0, "alpha": 0.85})


def draw_centre_prior(ax: Axes, image, gt_boxes, gt_labels, points, strides,
                      result: SimOTAResult, stride: int, radius: float = 2.5,
                      class_names: Sequence[str] | None = None,
                      fontsize: float = 7) -> dict[str, int]:
    """Step 1: the anchor points of one ``stride`` and the centre prior of every ground truth.

    Drawn: the image, each ground truth (dashed, its colour, ``#i class``) with its centre
    region, the square of half-side ``radius * stride`` around its centre (dotted); every point
    of the stride as a small grey dot, and the candidates in the styles of
    :data:`PRIOR_STYLES`.

    Args:
        image: ``(S, S, 3)`` network input; gt_boxes ``(M, 4)`` xyxy px, gt_labels ``(M,)``.
        points, strides: ``(P, 2)``, ``(P,)`` of every scale (the assignment's own).
        result: :func:`~yolo_teach.losses.simota.simota_assign` for these points.

    Returns:
        ``{"points", "in box only", "in centre region only", "in box and centre region"}``:
        the counts at this stride.
    """
    gt_boxes = as_numpy(gt_boxes).reshape(-1, 4)
    gt_labels = as_numpy(gt_labels, np.int64).reshape(-1)
    xy, point_strides = as_numpy(points).reshape(-1, 2), as_numpy(strides).reshape(-1)
    at = point_strides == stride  # (P,)
    kind = prior_kind(result)
    draw_canvas(ax, image=np.asarray(image))
    for i, (x1, y1, x2, y2) in enumerate(gt_boxes):
        r = radius * stride
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ax.add_patch(Rectangle((cx - r, cy - r), 2 * r, 2 * r, edgecolor=gt_color(i),
                               facecolor="none", linewidth=1.0, linestyle=":"))
    _draw_gt(ax, gt_boxes, gt_labels, class_names, fontsize)
    size = _marker_size(stride)
    outside = at & (kind == 0)
    ax.plot(xy[outside, 0], xy[outside, 1], ".", color=OUTSIDE_POINT_COLOR, markersize=size * 0.6,
            linestyle="none")
    counts = {"points": int(at.sum())}
    for k, (label, marker, color) in PRIOR_STYLES.items():
        chosen = at & (kind == k)
        counts[label] = int(chosen.sum())
        ax.plot(xy[chosen, 0], xy[chosen, 1], marker, color=color, markersize=size,
                markeredgecolor="white", markeredgewidth=0.4, linestyle="none", label=label)
    ax.set_title(f"stride {stride}: {counts['points']} points, "
                 f"{sum(counts[s[0]] for s in PRIOR_STYLES.values())} candidates",
                 fontsize=fontsize + 1)
    return counts


@dataclass(frozen=True)
class CandidateCosts:
    """Step 2 for one ground truth: its candidates, cheapest first (NumPy arrays ``(P_c,)``).

    Attributes:
        index: the candidate's point index in ``0..P-1``; stride: its stride.
        iou: IoU of its predicted box with the ground truth.
        cls_cost: :math:`L^{cls}`; reg_cost: :math:`-\\log(\\text{IoU} + 10^{-8})`, before the
            weight :math:`\\lambda`.
        outside: not both in the box and in the centre region (:math:`+10^5`).
        cost: the total SimOTA compares.
        chosen: among the ``k`` cheapest (the ground truth's claim).
        positive: finally assigned to this ground truth (a point claimed twice goes to the
            ground truth it costs least).
        k: the ground truth's dynamic k.
    """

    index: np.ndarray
    stride: np.ndarray
    iou: np.ndarray
    cls_cost: np.ndarray
    reg_cost: np.ndarray
    outside: np.ndarray
    cost: np.ndarray
    chosen: np.ndarray
    positive: np.ndarray
    k: int


def candidate_costs(result: SimOTAResult, gt: int, strides, iou_weight: float = 3.0
                    ) -> CandidateCosts:
    """The candidates of ground truth ``gt`` with their cost split into its terms.

    :math:`L^{cls}` is recovered as :math:`c - \\lambda L^{reg} - 10^5 [\\text{outside}]`; for
    penalised points it is exact to about 0.01 (the float32 spacing near :math:`10^5`).
    ``chosen`` repeats the assigner's own ``topk`` on the same costs, so ties break the same way.
    """
    cand = result.candidates.nonzero().squeeze(1)  # (P_c,)
    cost = result.cost[gt, cand]  # (P_c,)
    k = int(result.dynamic_k[gt]) if len(result.dynamic_k) else 0
    chosen = torch.zeros(len(cand), dtype=torch.bool)
    if len(cand) and k:
        chosen[cost.topk(min(k, len(cand)), largest=False).indices] = True
    iou = as_numpy(result.ious[gt, cand])
    reg = -np.log(iou + 1e-8)
    outside = as_numpy(~(result.in_box[gt, cand] & result.in_centre[gt, cand]), bool)
    total = as_numpy(cost)
    order = np.argsort(total, kind="stable")
    index = as_numpy(cand, np.int64)
    return CandidateCosts(
        index=index[order], stride=as_numpy(strides).reshape(-1)[index][order], iou=iou[order],
        cls_cost=(total - iou_weight * reg - OUTSIDE_COST * outside)[order],
        reg_cost=reg[order], outside=outside[order], cost=total[order],
        chosen=as_numpy(chosen, bool)[order],
        positive=as_numpy(result.gt_index[cand] == gt, bool)[order], k=k)


def draw_candidate_costs(ax: Axes, costs: CandidateCosts, iou_weight: float = 3.0,
                         top: int = 20, fontsize: float = 7) -> Axes:
    """Step 2 as bars: the ``top`` cheapest candidates of one ground truth, cheapest first.

    Each bar stacks :math:`L^{cls}` (light) and :math:`\\lambda L^{reg}` (dark); the
    :math:`10^5` penalty is not drawn (it would flatten every other bar) but the bar is hatched.
    The ``k`` chosen bars are in colour, the others grey; a dashed line separates the ``k``
    cheapest from the rest; the candidate's IoU is written above its bar; the x labels give each
    candidate's point index and stride.
    """
    n = min(top, len(costs.cost))
    x = np.arange(n)
    cls, reg = costs.cls_cost[:n], iou_weight * costs.reg_cost[:n]
    chosen = costs.chosen[:n]
    dark = np.where(chosen, "#D55E00", "#8C8C8C")
    light = np.where(chosen, "#F5B183", "#D0D0D0")
    ax.bar(x, cls, color=light, label="$L^{cls}$")
    bars = ax.bar(x, reg, bottom=cls, color=dark, label=f"{iou_weight:g} $L^{{reg}}$")
    for bar, out in zip(bars, costs.outside[:n]):
        if out:
            bar.set_hatch("///")
    for xi, top_y, iou in zip(x, cls + reg, costs.iou[:n]):
        ax.text(xi, top_y, f"{iou:.2f}", ha="center", va="bottom", fontsize=fontsize - 1,
                rotation=90)
    if 0 < costs.k < n:
        ax.axvline(costs.k - 0.5, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(x, [f"{i}\n/{s:g}" for i, s in zip(costs.index[:n], costs.stride[:n])],
                  fontsize=fontsize - 1)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("cost (without the $10^5$ penalty)", fontsize=fontsize)
    ax.set_xlabel("candidate point / stride, cheapest first (IoU above each bar)",
                  fontsize=fontsize)
    ax.tick_params(axis="y", labelsize=fontsize)
    ax.legend(fontsize=fontsize, loc="upper left")
    ax.set_title(f"the {n} cheapest of {len(costs.cost)} candidates; k = {costs.k} chosen",
                 fontsize=fontsize + 1)
    return ax


def draw_cost_matrix(ax: Axes, result: SimOTAResult, strides, value: str = "cost",
                     fontsize: float = 7):
    """Step 2 for every ground truth at once: the ``(M, P_c)`` matrix over the candidates.

    ``value="cost"`` shows the cost without the :math:`10^5` penalty, penalised entries grey;
    ``"iou"`` shows the IoUs. A white dot marks each final positive, a black cross a point its
    ground truth chose but lost to a cheaper one. Columns are the candidates in point order
    (finest stride first), with the stride boundaries as vertical lines. Returns the image
    artist (for a colour bar).
    """
    if value not in ("cost", "iou"):
        raise ValueError(f"value must be 'cost' or 'iou', got {value!r}")
    cand = result.candidates.nonzero().squeeze(1)  # (P_c,)
    num_gt = len(result.dynamic_k)
    if value == "iou":
        matrix = as_numpy(result.ious[:, cand])
        cmap = "viridis"
    else:
        matrix = as_numpy(result.cost[:, cand])
        outside = as_numpy(~(result.in_box & result.in_centre)[:, cand], bool)
        matrix = np.ma.masked_array(matrix, mask=outside)
        cmap = colormaps["magma_r"].with_extremes(bad="#CCCCCC")
    art = ax.imshow(matrix, aspect="auto", cmap=cmap, interpolation="nearest")
    gt_index = as_numpy(result.gt_index[cand], np.int64)
    for g in range(num_gt):
        costs = result.cost[g, cand]
        k = min(int(result.dynamic_k[g]), len(cand))
        chosen = as_numpy(costs.topk(k, largest=False).indices, np.int64) if k else []
        won = [c for c in chosen if gt_index[c] == g]
        lost = [c for c in chosen if gt_index[c] != g]
        ax.plot(won, [g] * len(won), "o", color="white", markeredgecolor="black",
                markersize=4, linestyle="none")
        ax.plot(lost, [g] * len(lost), "x", color="black", markersize=5, linestyle="none")
    point_strides = as_numpy(strides).reshape(-1)[as_numpy(cand, np.int64)]
    for b in np.flatnonzero(np.diff(point_strides)) + 0.5:
        ax.axvline(b, color="black", linewidth=1)
    ax.set_yticks(range(num_gt), [f"#{g}" for g in range(num_gt)], fontsize=fontsize)
    ax.set_xlabel(f"the {len(cand)} candidates (stride boundaries as lines)", fontsize=fontsize)
    ax.tick_params(axis="x", labelsize=fontsize)
    return art


def draw_dynamic_k(ax: Axes, result: SimOTAResult, gt: int, topk: int = 10,
                   fontsize: float = 7) -> float:
    """Step 3: the ``topk`` best IoUs of ground truth ``gt`` (bars) and their running sum
    (steps); k is the integer part of the sum, at least 1. Returns the sum."""
    ious = result.ious[gt][result.candidates]
    top = np.sort(as_numpy(ious))[::-1][:topk]
    total = float(top.sum())
    x = np.arange(1, len(top) + 1)
    ax.bar(x, top, color=gt_color(gt), alpha=0.8, label="IoU of the i-th best prediction")
    ax.step(x, np.cumsum(top), where="mid", color="black", label="running sum")
    k = int(result.dynamic_k[gt])
    ax.axhline(k, color="black", linestyle="--", linewidth=1, label=f"k = {k}")
    ax.set_xticks(x, [str(i) for i in x], fontsize=fontsize)
    ax.tick_params(axis="y", labelsize=fontsize)
    ax.set_xlabel("rank", fontsize=fontsize)
    ax.legend(fontsize=fontsize, loc="upper left")
    ax.set_title(f"#{gt}: top-{topk} IoUs sum to {total:.2f} -> k = {k}", fontsize=fontsize + 1)
    return total


def draw_positives(ax: Axes, image, gt_boxes, gt_labels, points, strides,
                   result: SimOTAResult, class_names: Sequence[str] | None = None,
                   fontsize: float = 7) -> list[int]:
    """Step 4: the positives, each in the colour of the ground truth it learns.

    Drawn: the image, the ground truths (dashed, ``#i class``), every candidate that stayed
    background as a grey ring, every positive as a filled, white-edged dot; both larger for
    coarser strides.
    Returns the number of positives of each ground truth.
    """
    gt_boxes = as_numpy(gt_boxes).reshape(-1, 4)
    gt_labels = as_numpy(gt_labels, np.int64).reshape(-1)
    xy, point_strides = as_numpy(points).reshape(-1, 2), as_numpy(strides).reshape(-1)
    gt_index = as_numpy(result.gt_index, np.int64)
    candidates = as_numpy(result.candidates, bool)
    draw_canvas(ax, image=np.asarray(image))
    _draw_gt(ax, gt_boxes, gt_labels, class_names, fontsize)
    for stride in np.unique(point_strides):
        at = point_strides == stride
        size = _marker_size(stride)
        rest = at & candidates & (gt_index < 0)
        ax.plot(xy[rest, 0], xy[rest, 1], "o", markerfacecolor="none",
                markeredgecolor=OUTSIDE_POINT_COLOR, markersize=size, markeredgewidth=0.6,
                linestyle="none")
        for g in range(len(gt_boxes)):
            mine = at & (gt_index == g)
            ax.plot(xy[mine, 0], xy[mine, 1], "o", color=gt_color(g), markersize=1.4 * size,
                    markeredgecolor="white", markeredgewidth=1.0, linestyle="none")
    counts = [int((gt_index == g).sum()) for g in range(len(gt_boxes))]
    ax.set_title("positives: " + ", ".join(f"#{g} {n}" for g, n in enumerate(counts)),
                 fontsize=fontsize + 1)
    return counts
