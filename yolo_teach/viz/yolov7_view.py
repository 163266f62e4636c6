r"""YOLOv7 in pictures (Wang, Bochkovskiy & Liao 2022, seed 003): ELAN and E-ELAN read from the
modules (§3.1, Fig. 2), RepConv's kernels collapsing into one (§4.1), and the lead and
auxiliary heads' labels on one image (§4.2, Fig. 5).

* :func:`elan_layout` reads an :class:`~yolo_teach.layers.elan.ELAN` or
  :class:`~yolo_teach.layers.elan.EELAN`: its widths and, above all, *which* outputs its
  transition conv reads, in the order it reads them; :func:`draw_elan` draws that.
* :func:`draw_kernel_sum` draws 3x3 kernels side by side and their sum: the branches of a
  RepConv after :func:`~yolo_teach.layers.rep.fold_branch`,
  :func:`~yolo_teach.layers.rep.pad_1x1_to_3x3` and
  :func:`~yolo_teach.layers.rep.identity_conv`, and the one kernel they become.
* :func:`assign_lead_aux` runs a :class:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss`'s
  assignment on one image and keeps every step (:class:`LeadAuxSteps`);
  :func:`draw_lead_aux_cells` draws the candidate cells and the positives of both heads at one
  stride (legend: :func:`lead_aux_handles`), :func:`ota_candidate_costs` and :func:`draw_ota_dynamic_k` the OTA step (drawn by
  :mod:`~yolo_teach.viz.simota_view`'s functions, the cost being SimOTA's).
* :func:`reachable_iou`: the best IoU a prediction of one cell and anchor can reach through a
  bounded box coder (the decoder's restriction of §4.2).

Boxes are ``xyxy`` pixels of the network input; cells are ``(gx, gy)`` column and row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle
from torch import Tensor

from yolo_teach.decode import as_coder_list, as_map_list, decode_anchor_maps
from yolo_teach.layers.elan import EELAN, ELAN
from yolo_teach.losses.assign import ScaleAssignment
from yolo_teach.losses.lead_guided import LeadGuidedImage, candidate_cells
from yolo_teach.losses.yolov7_loss import LeadAuxLoss
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import draw_canvas
from yolo_teach.viz.simota_view import CandidateCosts, draw_dynamic_k, gt_color

# roles of the boxes of an ELAN diagram (Okabe-Ito, as viz.csp_view)
ELAN_COLORS = {
    "io": "#BBBBBB",  # block input and output
    "conv1x1": "#56B4E9",  # the two 1x1 stems and the transition
    "conv3x3": "#E69F00",  # the chain of 3x3 convs, concatenated
    "unused": "#F3E0B5",  # a 3x3 conv whose output only feeds the next one
    "merge": "#CC79A7",  # concatenation, shuffle, sum
}
# the lead head's labels and the auxiliary head's (fine and coarse cells, positives)
FINE_COLOR, COARSE_COLOR = "#D55E00", "#F0E442"
LEAD_COLOR, AUX_COLOR = "#0072B2", "#000000"


# --------------------------------------------------------------------------------------------
# ELAN and E-ELAN (§3.1, Fig. 2)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ELANLayout:
    """What an ELAN block computes and concatenates, read from the module.

    Attributes:
        kind: ``"ELAN"`` or ``"E-ELAN"``.
        in_channels: C_in; hidden_channels: h, block_channels: h_b, out_channels: C_out (per
            group for an E-ELAN: the widths of one of its g ELANs).
        depth: n, 3x3 convs in the chain; concat_every: e; cardinality: g (1 for an ELAN).
        concat: the names of the maps the transition reads, in its order: ``"a"`` (the
            shortcut 1x1), ``"b"`` (the stem 1x1), ``"c1"`` ... ``"cn"`` (the 3x3 chain), e.g.
            ``("c4", "c2", "b", "a")``; concat_widths: their channels (per group).
    """

    kind: str
    in_channels: int
    hidden_channels: int
    block_channels: int
    depth: int
    concat_every: int
    cardinality: int
    out_channels: int
    concat: tuple[str, ...]
    concat_widths: tuple[int, ...]

    @property
    def concat_channels(self) -> int:
        """Width of one group's concatenation, :math:`2h + \\lfloor n/e \\rfloor h_b`."""
        return sum(self.concat_widths)

    @property
    def transition_in(self) -> int:
        """Channels the transition conv reads: g times :attr:`concat_channels`."""
        return self.cardinality * self.concat_channels

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every map the block computes before its transition, in computing order."""
        return ("a", "b", *(f"c{k}" for k in range(1, self.depth + 1)))


def elan_layout(block: ELAN | EELAN) -> ELANLayout:
    """The :class:`ELANLayout` of ``block``, read from its convolutions (no forward pass)."""
    if not isinstance(block, (ELAN, EELAN)):
        raise TypeError(f"expected an ELAN or an EELAN, got {type(block).__name__}")
    g = getattr(block, "cardinality", 1)
    hidden = block.stem_conv.conv.out_channels // g
    depth = len(block.blocks)
    block_channels = block.blocks[0].conv.out_channels // g if depth else hidden
    e = block.concat_every
    chain = [k for k in range(depth, 0, -1) if k % e == 0]  # the forward's outputs[::-1]
    return ELANLayout(
        kind="E-ELAN" if g > 1 else "ELAN", in_channels=block.stem_conv.conv.in_channels,
        hidden_channels=hidden, block_channels=block_channels, depth=depth, concat_every=e,
        cardinality=g, out_channels=block.transition.conv.out_channels // g,
        concat=(*(f"c{k}" for k in chain), "b", "a"),
        concat_widths=(*(block_channels for _ in chain), hidden, hidden))


_BW, _BH = 1.5, 0.62  # box size in diagram units


def _box(ax: Axes, x: float, y: float, text: str, role: str, fontsize: float,
         copies: int = 1, width: float = _BW) -> None:
    for k in reversed(range(min(copies, 3))):  # g groups drawn as a stack of cards
        d = 0.09 * k
        ax.add_patch(FancyBboxPatch((x - width / 2 + d, y - _BH / 2 - d), width, _BH,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=ELAN_COLORS[role], edgecolor="#333333",
                                    linewidth=0.8, zorder=2 + (copies - k)))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=10)


def _arrow(ax: Axes, start, end, color: str = "#333333", label: str | None = None,
           fontsize: float = 6) -> None:
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.1,
                            "shrinkA": 0, "shrinkB": 0})
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.06, label,
                fontsize=fontsize, color=color, ha="center", va="bottom")


def draw_elan(ax: Axes, block: ELAN | EELAN | ELANLayout, title: str | None = None,
              fontsize: float = 7) -> ELANLayout:
    """Draw an ELAN (Fig. 2c) or E-ELAN (Fig. 2d) block from its :func:`elan_layout`.

    The input on the left feeds the two 1x1 convs ``a`` (top) and ``b``; the chain of 3x3 convs
    ``c1 ... cn`` runs down from ``b``. Every map the transition reads has an arrow into the
    concatenation on the right, labelled with its place in the concatenation (``#1`` first) and
    its channels; a 3x3 output that is not concatenated is drawn pale, without an arrow. An
    E-ELAN's convs are drawn as stacks of g cards (g groups), followed by the shuffle, the g
    grouped transitions and their sum (merge cardinality).

    Returns:
        the layout that was drawn.
    """
    lay = block if isinstance(block, ELANLayout) else elan_layout(block)
    g, n = lay.cardinality, lay.depth
    groups = f", {g} groups" if g > 1 else ""  # the 3x3 convs; the 1x1 stems see all of x

    def width(c: int) -> str:
        return f"{g} x {c} ch" if g > 1 else f"{c} ch"

    rows = {"a": 0.0, "b": -1.0, **{f"c{k}": -1.0 - k for k in range(1, n + 1)}}
    bw = _BW + (0.5 if g > 1 else 0.0)  # room for "k groups"
    x_in, x_chain = -2.1, 0.0
    x_cat = 2.5 + bw - _BW
    x_tr, x_out = x_cat + 1.9, x_cat + 3.7
    y_mid = (rows["a"] + rows[f"c{n}" if n else "b"]) / 2
    _box(ax, x_in, y_mid, f"input\n{lay.in_channels} ch", "io", fontsize, width=1.2)
    _box(ax, x_chain, rows["a"], f"a: 1x1\n{width(lay.hidden_channels)}", "conv1x1",
         fontsize, copies=g, width=bw)
    _box(ax, x_chain, rows["b"], f"b: 1x1\n{width(lay.hidden_channels)}", "conv1x1",
         fontsize, copies=g, width=bw)
    for name in ("a", "b"):
        _arrow(ax, (x_in + 0.6, y_mid), (x_chain - bw / 2, rows[name]))
    for k in range(1, n + 1):
        name = f"c{k}"
        role = "conv3x3" if name in lay.concat else "unused"
        _box(ax, x_chain, rows[name], f"{name}: 3x3{groups}\n{width(lay.block_channels)}", role,
             fontsize, copies=g, width=bw)
        _arrow(ax, (x_chain, rows[name] + 1 - _BH / 2), (x_chain, rows[name] + _BH / 2))
    cat_top, cat_bottom = rows["a"] + _BH / 2, rows[f"c{n}" if n else "b"] - _BH / 2
    ax.add_patch(FancyBboxPatch((x_cat - 0.4, cat_bottom), 0.8, cat_top - cat_bottom,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=ELAN_COLORS["merge"], edgecolor="#333333",
                                linewidth=0.8, zorder=2))
    cat_text = "concat,\nshuffle" if g > 1 else "concat"
    ax.text(x_cat, y_mid, f"{cat_text}\n{lay.transition_in}\nch", ha="center", va="center",
            fontsize=fontsize, rotation=0, zorder=10)
    widths = dict(zip(lay.concat, lay.concat_widths))
    for place, name in enumerate(lay.concat, start=1):
        _arrow(ax, (x_chain + bw / 2 + 0.09 * (min(g, 3) - 1), rows[name]),
               (x_cat - 0.4, rows[name]), "#7A4F6D", f"#{place}: {width(widths[name])}",
               fontsize - 1)
    transition = (f"transition\n{g} x 1x1 (groups)\n{g} x {lay.out_channels} ch" if g > 1
                  else f"transition\n1x1\n{lay.out_channels} ch")
    _box(ax, x_tr, y_mid, transition, "conv1x1", fontsize, copies=g, width=2.1 if g > 1 else 1.4)
    _arrow(ax, (x_cat + 0.4, y_mid), (x_tr - (1.05 if g > 1 else 0.7), y_mid))
    out_text = f"sum of {g}\n{lay.out_channels} ch" if g > 1 else f"output\n{lay.out_channels} ch"
    _box(ax, x_out + 0.2, y_mid, out_text, "merge" if g > 1 else "io", fontsize, width=1.1)
    _arrow(ax, (x_tr + (1.05 if g > 1 else 0.7), y_mid), (x_out - 0.35, y_mid))
    ax.set_xlim(x_in - 0.7, x_out + 0.8)
    ax.set_ylim(cat_bottom - 0.3, rows["a"] + 0.6)
    ax.axis("off")
    concat = ", ".join(lay.concat)
    ax.set_title(title or f"{lay.kind}: n = {n}, e = {lay.concat_every}"
                          f"{f', g = {g}' if g > 1 else ''}; concat [{concat}]",
                 fontsize=fontsize + 1)
    return lay


# --------------------------------------------------------------------------------------------
# RepConv (§4.1): kernels and their sum
# --------------------------------------------------------------------------------------------
def draw_kernel_sum(axes: Sequence[Axes], kernels: Mapping[str, Tensor | np.ndarray],
                    total: str = "fused kernel", fontsize: float = 7,
                    cmap: str = "RdBu_r") -> np.ndarray:
    """Draw 3x3 kernels side by side, then their sum, on one colour scale.

    Args:
        axes: ``len(kernels) + 1`` axes: the terms, then the sum.
        kernels: title -> ``(3, 3)`` kernel (e.g. one output and one input channel of each
            branch of a RepConv, after its BatchNorm was folded in).
        total: title of the sum.

    Each cell shows its value; titles after the first start with ``+``, the sum's with ``=``.
    Returns the sum, ``(3, 3)``.
    """
    if len(axes) != len(kernels) + 1:
        raise ValueError(f"{len(kernels)} kernels need {len(kernels) + 1} axes, got {len(axes)}")
    arrays = [as_numpy(k).reshape(3, 3).astype(np.float64) for k in kernels.values()]
    summed = np.sum(arrays, axis=0)
    limit = max(np.abs(np.stack([*arrays, summed])).max(), 1e-12)
    titles = [*kernels, total]
    for k, (ax, array, name) in enumerate(zip(axes, [*arrays, summed], titles)):
        ax.imshow(array, cmap=cmap, vmin=-limit, vmax=limit)
        for (i, j), v in np.ndenumerate(array):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize - 1,
                    color="white" if abs(v) > 0.6 * limit else "black")
        prefix = "" if k == 0 else ("= " if k == len(arrays) else "+ ")
        ax.set_title(prefix + name, fontsize=fontsize)
        ax.set_xticks([])
        ax.set_yticks([])
    return summed


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
