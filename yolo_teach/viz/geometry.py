"""Pictures and numbers of the IoU family: IoU, GIoU, DIoU and CIoU of a prediction and a target.

For a predicted box ``B`` and a ground truth ``B^gt`` (both ``xyxy``) the pictures show what each
member of the family looks at (Rezatofighi et al. 2019, "Generalized Intersection over Union";
Zheng et al. 2020, "Distance-IoU Loss"; seed 004 eq. 9-11):

* the intersection ``B ∩ B^gt`` (IoU);
* the smallest enclosing box ``C`` (GIoU: the part of C that neither box covers);
* the distance ``ρ`` between the two centres and the diagonal ``c`` of C (DIoU: ``ρ²/c²``);
* the aspect ratios (CIoU: ``α v``).

The numbers always come from :mod:`yolo_teach.boxes`; this module only arranges and draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from yolo_teach.boxes import (
    box_convert,
    box_iou,
    complete_box_iou,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loss,
    generalized_box_iou,
    generalized_box_iou_loss,
)
from yolo_teach.utils import as_numpy

IOU_FAMILY = ("iou", "giou", "diou", "ciou")
IOU_FAMILY_NAMES = {"iou": "IoU", "giou": "GIoU", "diou": "DIoU", "ciou": "CIoU"}
IOU_FAMILY_COLORS = {"iou": "#0072B2", "giou": "#E69F00", "diou": "#009E73", "ciou": "#CC79A7"}
GT_COLOR = "#009E73"
PRED_COLOR = "#D55E00"
RHO_COLOR = "#D62728"
C_COLOR = "#444444"


def _pair(box) -> torch.Tensor:
    return torch.as_tensor(as_numpy(box).reshape(1, 4), dtype=torch.float64)  # (1, 4)


def iou_family_values(pred_xyxy, gt_xyxy) -> dict[str, float]:
    """IoU, GIoU, DIoU, CIoU of one predicted box against one ground truth, and their losses.

    Returns a dict of floats:

    * ``iou``, ``giou``, ``diou``, ``ciou`` (from the pairwise functions of ``yolo_teach.boxes``);
    * ``iou_loss`` = 1 - IoU and ``giou_loss``, ``diou_loss``, ``ciou_loss`` (from the library's
      loss functions, which are 1 - value);
    * the penalty each variant adds: ``enclosure`` = IoU - GIoU = ``|C \\ (B ∪ B^gt)| / |C|``,
      ``rho2_c2`` = IoU - DIoU = ``ρ²/c²`` and ``alpha_v`` = DIoU - CIoU = ``α v``.
    """
    p, g = _pair(pred_xyxy), _pair(gt_xyxy)
    out = {
        "iou": float(box_iou(p, g)[0, 0]),
        "giou": float(generalized_box_iou(p, g)[0, 0]),
        "diou": float(distance_box_iou(p, g)[0, 0]),
        "ciou": float(complete_box_iou(p, g)[0, 0]),  # prediction first: it plays w, h in v
    }
    out["iou_loss"] = 1.0 - out["iou"]
    out["giou_loss"] = float(generalized_box_iou_loss(p, g)[0])
    out["diou_loss"] = float(distance_box_iou_loss(p, g)[0])
    out["ciou_loss"] = float(complete_box_iou_loss(p, g)[0])
    out["enclosure"] = out["iou"] - out["giou"]
    out["rho2_c2"] = out["iou"] - out["diou"]
    out["alpha_v"] = out["diou"] - out["ciou"]
    return out


def box_geometry(pred_xyxy, gt_xyxy) -> dict:
    """The pieces the pictures draw, computed directly with NumPy (floats and ``xyxy`` tuples).

    ``intersection`` (``None`` when the boxes do not overlap), ``enclosing`` (C), the two
    ``centre_pred`` / ``centre_gt``, their distance ``rho`` and the diagonal ``c`` of C.
    """
    p, g = as_numpy(pred_xyxy).reshape(4), as_numpy(gt_xyxy).reshape(4)
    ix1, iy1 = max(p[0], g[0]), max(p[1], g[1])
    ix2, iy2 = min(p[2], g[2]), min(p[3], g[3])
    intersection = (ix1, iy1, ix2, iy2) if ix2 > ix1 and iy2 > iy1 else None
    enclosing = (min(p[0], g[0]), min(p[1], g[1]), max(p[2], g[2]), max(p[3], g[3]))
    centre_pred = ((p[0] + p[2]) / 2, (p[1] + p[3]) / 2)
    centre_gt = ((g[0] + g[2]) / 2, (g[1] + g[3]) / 2)
    rho = float(np.hypot(centre_pred[0] - centre_gt[0], centre_pred[1] - centre_gt[1]))
    c = float(np.hypot(enclosing[2] - enclosing[0], enclosing[3] - enclosing[1]))
    return {"intersection": intersection, "enclosing": enclosing, "centre_pred": centre_pred,
            "centre_gt": centre_gt, "rho": rho, "c": c}


def iou_family_curves(gt_xyxy, size: tuple[float, float], centres) -> dict[str, np.ndarray]:
    """IoU, GIoU, DIoU, CIoU of a ``size = (w, h)`` predicted box placed at each of ``centres``.

    ``centres (N, 2)`` -> a dict of ``(N,)`` arrays, one per member of the family, computed in one
    call of each pairwise library function (``(N, 4)`` predictions against ``(1, 4)``).
    """
    centres = as_numpy(centres).reshape(-1, 2)
    wh = np.broadcast_to(np.asarray(size, dtype=np.float64), centres.shape)
    preds = torch.as_tensor(box_convert(np.concatenate([centres, wh], 1), "cxcywh", "xyxy"))
    g = _pair(gt_xyxy)  # (1, 4)
    fns = {"iou": box_iou, "giou": generalized_box_iou, "diou": distance_box_iou,
           "ciou": complete_box_iou}
    return {k: fn(preds, g)[:, 0].numpy() for k, fn in fns.items()}  # (N, 1) -> (N,)


def draw_iou_geometry(ax: Axes, pred_xyxy, gt_xyxy, *, intersection: bool = True,
                      enclosing: bool = True, distances: bool = True, legend: bool = True,
                      pad: float = 0.08, limits: tuple[float, float, float, float] | None = None,
                      fontsize: float = 8) -> Axes:
    """Draw a prediction against its ground truth with what the IoU family measures.

    Patches: the ground truth (green), the prediction (vermillion), the intersection (hatched,
    when they overlap) and the enclosing box C (dashed grey). Lines: ``ρ`` between the centres
    (red) and the diagonal ``c`` of C (dashed grey). The view is C with a margin of ``pad`` times
    its size, or ``limits = (x1, y1, x2, y2)`` for a fixed view (the playground uses one).
    """
    geo = box_geometry(pred_xyxy, gt_xyxy)
    p, g = as_numpy(pred_xyxy).reshape(4), as_numpy(gt_xyxy).reshape(4)
    if enclosing:
        x1, y1, x2, y2 = geo["enclosing"]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=C_COLOR,
                               linestyle="--", linewidth=1.0, label="C (enclosing box)"))
    ax.add_patch(Rectangle((g[0], g[1]), g[2] - g[0], g[3] - g[1],
                           facecolor=(*to_rgb(GT_COLOR), .12), edgecolor=GT_COLOR, linewidth=2,
                           label="ground truth $B^{gt}$"))
    ax.add_patch(Rectangle((p[0], p[1]), p[2] - p[0], p[3] - p[1],
                           facecolor=(*to_rgb(PRED_COLOR), .12), edgecolor=PRED_COLOR, linewidth=2,
                           label="prediction $B$"))
    if intersection and geo["intersection"] is not None:
        x1, y1, x2, y2 = geo["intersection"]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor="none", edgecolor="#0072B2",
                               hatch="///", linewidth=0.0, label="$B \\cap B^{gt}$"))
    if distances:
        (px, py), (gx, gy) = geo["centre_pred"], geo["centre_gt"]
        ax.plot([gx, px], [gy, py], color=RHO_COLOR, linewidth=1.5, marker="o", markersize=3,
                label="ρ: centre distance")
        x1, y1, x2, y2 = geo["enclosing"]
        ax.plot([x1, x2], [y1, y2], color=C_COLOR, linewidth=1.0, linestyle=":",
                label="c: diagonal of C")
    if limits is None:
        x1, y1, x2, y2 = geo["enclosing"]
        mx, my = pad * (x2 - x1) + 1, pad * (y2 - y1) + 1
        limits = (x1 - mx, y1 - my, x2 + mx, y2 + my)
    ax.set_xlim(limits[0], limits[2])
    ax.set_ylim(limits[3], limits[1])  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=fontsize, frameon=False)
    return ax


def plot_iou_curves(ax: Axes, x, curves: dict[str, np.ndarray],
                    keys: Sequence[str] = IOU_FAMILY, xlabel: str = "",
                    fontsize: float = 8) -> Axes:
    """One line per member of the family (``curves``: :func:`iou_family_curves`) against ``x``."""
    x = as_numpy(x)
    for key in keys:
        ax.plot(x, curves[key], color=IOU_FAMILY_COLORS[key], label=IOU_FAMILY_NAMES[key],
                linewidth=1.8, linestyle="--" if key == "ciou" else "-")
    ax.axhline(0, color="k", linewidth=0.6)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel("value", fontsize=fontsize)
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=fontsize)
    return ax


def values_table_html(values: dict[str, float]) -> str:
    """The four overlaps and their losses (from :func:`iou_family_values`) as a small HTML table."""
    rows = "".join(
        f"<tr><td>{IOU_FAMILY_NAMES[k]}</td><td style='text-align:right'>{values[k]:+.4f}</td>"
        f"<td style='text-align:right'>{values[k + '_loss']:.4f}</td></tr>" for k in IOU_FAMILY)
    extra = (f"<tr><td colspan=3 style='font-size:85%'>|C∖(B∪B<sup>gt</sup>)|/|C| = "
             f"{values['enclosure']:.4f}, ρ²/c² = {values['rho2_c2']:.4f}, "
             f"αv = {values['alpha_v']:.4f}</td></tr>")
    return ("<table><tr><th></th><th>value</th><th>loss = 1 − value</th></tr>"
            f"{rows}{extra}</table>")
