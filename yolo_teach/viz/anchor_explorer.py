"""Which anchors, at which cells, learn each ground truth: the assignment rules in pictures.

An anchor-based head predicts one box per anchor ``a`` at every cell ``(g_y, g_x)`` of every
output map. Training makes only a few of them *responsible* for a ground truth, and the rule
that picks them is what changed most from YOLOv2 to YOLOv5
(:mod:`yolo_teach.losses.assign`):

* ``"single"`` (YOLOv2/v3): the one anchor whose shape fits best, over all scales, at the cell
  containing the centre;
* ``"multi"`` (YOLOv4): every anchor with shape IoU > 0.213, plus the best, at the centre cell;
* ``"neighbours"`` (YOLOv5): every anchor with side ratios < 4, at the centre cell and the two
  neighbour cells nearest to the centre.

:func:`responsibilities` runs the library's assigner on one image and lists each responsible
prediction with what a picture needs (the cell and the anchor in pixels and in grid units);
:func:`draw_responsibilities` draws one scale and :func:`anchor_explorer` is the widget over
both. Every box is ``xyxy`` in pixels of the network input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from yolo_teach.anchors import anchors_to_grid, wh_iou
from yolo_teach.detectors import split_anchors
from yolo_teach.losses.assign import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    describe_assignment,
)
from yolo_teach.losses.recipes import MULTI_ANCHOR_IOU
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import class_color, class_legend, draw_boxes, draw_canvas
from yolo_teach.viz.panel import WidgetPanel, scrolling, show_figure
from yolo_teach.viz.prediction_explorer import hwc_image

RULES = {
    "single": "single: best anchor, centre cell (YOLOv2/v3)",
    "multi": "multi: IoU > 0.213, centre cell (YOLOv4)",
    "neighbours": "neighbours: ratio < 4, 3 cells (YOLOv5)",
}  # the rules of build_detector(assign=...), with the widget's labels


def make_assigner(rule: str):
    """The assigner of a rule, with the thresholds :func:`~yolo_teach.detectors.build_detector`
    uses: ``"single"``, ``"multi"`` (IoU > 0.213) or ``"neighbours"`` (ratio < 4)."""
    if rule == "single":
        return SingleAnchorAssigner()
    if rule == "multi":
        return MultiAnchorAssigner(iou_threshold=MULTI_ANCHOR_IOU)
    if rule == "neighbours":
        return NeighbourCellAssigner(anchor_t=4.0)
    raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")


def image_size(img_size: int | Sequence[int]) -> tuple[int, int]:
    """``img_size`` as ``(width, height)``: a number is a square input."""
    if isinstance(img_size, (int, float, np.integer)):
        return int(img_size), int(img_size)
    width, height = img_size
    return int(width), int(height)


def grid_sizes(img_size: int | Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """The ``(H, W)`` cells of each output map: ``ceil(size / stride)`` (416 px at strides
    8, 16, 32 -> 52, 26, 13)."""
    width, height = image_size(img_size)
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def centre_cell(centre, stride: int, grid_size: tuple[int, int]) -> tuple[int, int]:
    """The cell ``(gy, gx)`` containing a point ``(x, y)`` px: ``floor(c / stride)``, kept on
    the ``(H, W)`` map as the assigners keep it."""
    h, w = grid_size
    return (min(max(math.floor(centre[1] / stride), 0), h - 1),
            min(max(math.floor(centre[0] / stride), 0), w - 1))


def responsibilities(boxes, labels, anchors, strides: Sequence[int],
                     img_size: int | Sequence[int], rule: str = "single") -> list[dict]:
    """Every prediction responsible for a ground truth of one image, under one rule.

    Builds the ``(M, 6)`` targets ``[0, class, x1, y1, x2, y2]``, calls the library's assigner
    (:func:`make_assigner`) and expands :func:`~yolo_teach.losses.describe_assignment`'s
    ``(scale, anchor, gy, gx, gt)`` tuples with what a picture or a table needs.

    Args:
        boxes: ``(M, 4)`` ground truth, xyxy pixels of the network input.
        labels: ``(M,)`` their classes.
        anchors: per scale ``(A, 2)`` anchor ``(w, h)`` in pixels (e.g.
            :func:`~yolo_teach.detectors.official_anchors`), or one array to split over the scales
            (:func:`~yolo_teach.detectors.split_anchors`).
        strides: one per scale, e.g. ``(8, 16, 32)``.
        img_size: side of the square input, or ``(width, height)``.
        rule: ``"single"``, ``"multi"`` or ``"neighbours"``.

    Returns:
        One dict per responsible prediction, sorted by ground truth, scale, anchor and cell:
        ``gt`` (row of ``boxes``), ``label``, ``box`` (its xyxy), ``scale`` (index),
        ``stride``, ``grid_size`` ``(H, W)``, ``anchor`` (index within the scale),
        ``anchor_px`` and ``anchor_grid`` (its ``(w, h)`` in pixels and in cells of that
        stride), ``cell`` ``(gy, gx)``, ``at_centre`` (the cell contains the ground truth's
        centre; ``False`` for the neighbours rule's extra cells), ``cell_box`` (the cell, xyxy
        pixels),
        ``anchor_box`` (the anchor centred in the cell, xyxy pixels), ``shape_iou`` (IoU of
        the ground truth's and the anchor's ``(w, h)``, the single and multi rules' measure)
        and ``ratio`` (``max(w/p_w, p_w/w, h/p_h, p_h/h)``, the neighbours rule's measure).
    """
    boxes = as_numpy(boxes).reshape(-1, 4)  # (M, 4)
    labels = as_numpy(labels, np.int64).reshape(len(boxes))  # (M,)
    anchors = split_anchors(anchors, len(strides))  # per scale (A, 2) float32 pixels
    grids = grid_sizes(img_size, strides)
    targets = torch.zeros(len(boxes), 6, dtype=torch.float64)  # (M, 6) [b, class, x1, y1, x2, y2]
    targets[:, 1] = torch.from_numpy(labels.astype(np.float64))
    targets[:, 2:] = torch.from_numpy(boxes)
    anchors64 = [a.double() for a in anchors]
    assignment = make_assigner(rule)(targets, anchors64, tuple(strides), grids)
    gt_wh = boxes[:, 2:] - boxes[:, :2]  # (M, 2)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (M, 2) x, y
    rows = []
    for scale, a, gy, gx, g in describe_assignment(assignment):
        stride = int(strides[scale])
        anchor_px = anchors64[scale][a].numpy()  # (2,)
        x0, y0 = gx * stride, gy * stride  # the cell's top-left corner
        cx, cy = x0 + stride / 2, y0 + stride / 2  # its centre
        w, h = gt_wh[g]
        pw, ph = anchor_px
        rows.append({
            "gt": g,
            "label": int(labels[g]),
            "box": tuple(float(v) for v in boxes[g]),
            "scale": scale,
            "stride": stride,
            "grid_size": grids[scale],
            "anchor": a,
            "anchor_px": (float(pw), float(ph)),
            "anchor_grid": tuple(float(v) for v in anchors_to_grid(anchor_px, stride)),
            "cell": (gy, gx),
            "at_centre": (gy, gx) == centre_cell(centre[g], stride, grids[scale]),
            "cell_box": (float(x0), float(y0), float(x0 + stride), float(y0 + stride)),
            "anchor_box": tuple(float(v) for v in (cx - pw / 2, cy - ph / 2,
                                                   cx + pw / 2, cy + ph / 2)),
            "shape_iou": float(wh_iou(gt_wh[g], anchor_px)[0, 0]),
            "ratio": float(max(w / pw, pw / w, h / ph, ph / h)),
        })
    return rows


# ----------------------------------------------------------------------------- drawing
def _grid_lines(ax: Axes, stride: int, size: tuple[int, int], on_image: bool) -> None:
    """The cell borders of one map, as one ``LineCollection``."""
    width, height = size
    xs, ys = np.arange(0, width + 1, stride), np.arange(0, height + 1, stride)
    segments = [[(x, 0), (x, height)] for x in xs] + [[(0, y), (width, y)] for y in ys]
    color = (1, 1, 1, 0.45) if on_image else (0.55, 0.55, 0.55, 0.6)
    ax.add_collection(LineCollection(segments, colors=[color], linewidths=0.5))


def _ticks(ax: Axes, stride: int, size: tuple[int, int], units: str) -> None:
    """Axis ticks in pixels, or at cell centres labelled with the cell index (``gx``, ``gy``)."""
    width, height = size
    for axis, extent, name in ((ax.xaxis, width, "x"), (ax.yaxis, height, "y")):
        if units == "grid":
            cells = math.ceil(extent / stride)
            every = max(1, math.ceil(cells / 8))  # at most about 8 labels
            index = np.arange(0, cells, every)
            axis.set_ticks(index * stride + stride / 2, [str(i) for i in index])
            axis.set_label_text(f"g{name} (cells of stride {stride})", fontsize=7)
        else:
            step = stride * max(1, math.ceil(extent / stride / 8))
            at = np.arange(0, extent + 1, step)
            axis.set_ticks(at, [f"{v:g}" for v in at])
            axis.set_label_text(f"{name} (px)", fontsize=7)
        axis.set_tick_params(labelsize=7, length=2)


def _size_text(wh: tuple[float, float], units: str) -> str:
    return f"{wh[0]:.3g}×{wh[1]:.3g}" + (" px" if units == "px" else " cells")


def draw_responsibilities(ax: Axes, rows: Sequence[dict], boxes, labels, scale: int,
                          stride: int, img_size: int | Sequence[int], image=None,
                          class_names: Sequence[str] | None = None, units: str = "px") -> Axes:
    """One output map's assignment: its grid, the ground truths, their cells and anchors.

    ``rows`` are :func:`responsibilities`' dicts (those of other scales are skipped). Colours tell
    the ground truths apart here (the tags give the classes): ground truth ``g`` is dashed in
    colour ``g`` with its centre as a dot; its responsible cells are shaded and its responsible
    anchors are solid boxes centred in those cells (thinner at a neighbour cell), tagged at the
    centre cell with ``a<index>`` and their size in ``units`` (``"px"`` or ``"grid"``, which
    also picks the axis ticks).
    """
    size = image_size(img_size)
    boxes = as_numpy(boxes).reshape(-1, 4)  # (M, 4)
    labels = as_numpy(labels, np.int64).reshape(len(boxes))  # (M,)
    draw_canvas(ax, size, image, ticks=True)
    _grid_lines(ax, stride, size, on_image=image is not None)
    here = [r for r in rows if r["scale"] == scale]
    shaded = set()
    for r in here:  # several anchors of one ground truth share a cell: shade it once
        if (r["gt"], r["cell"]) not in shaded:
            shaded.add((r["gt"], r["cell"]))
            x1, y1, x2, y2 = r["cell_box"]
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor=class_color(r["gt"]),
                                   alpha=0.35, edgecolor="none"))
    for r in here:  # tagged at the centre cell; thinner at a neighbour cell
        wh = r["anchor_px"] if units == "px" else r["anchor_grid"]
        tag = f"a{r['anchor']} {_size_text(wh, units)}"
        draw_boxes(ax, [r["anchor_box"]], [0], class_names=[tag], color=class_color(r["gt"]),
                   linewidth=1.0 if r["at_centre"] else 0.6, alpha=1.0 if r["at_centre"] else 0.6,
                   text=r["at_centre"], fontsize=7)
    for g, (box, label) in enumerate(zip(boxes, labels)):
        name = class_names[label] if class_names is not None else str(label)
        draw_boxes(ax, [box], [0], class_names=[f"#{g} {name}"], color=class_color(g),
                   linestyle="--", linewidth=1.8, fontsize=7)
        ax.plot(*(box[:2] + box[2:]) / 2, "o", color=class_color(g), markersize=3,
                markeredgecolor="white", markeredgewidth=0.5)
    _ticks(ax, stride, size, units)
    h, w = grid_sizes(img_size, [stride])[0]
    ax.set_title(f"stride {stride}: {h}×{w} cells, {len(here)} responsible", fontsize=8)
    return ax


def assignment_table_html(rows: Sequence[dict], num_gt: int, labels=None,
                          class_names: Sequence[str] | None = None) -> str:
    """:func:`responsibilities`' rows as an HTML table, and the ground truths nobody learns."""
    def gt_name(g: int) -> str:
        if labels is None:
            return f"#{g}"
        label = int(as_numpy(labels, np.int64).reshape(-1)[g])
        return f"#{g} " + (class_names[label] if class_names is not None else str(label))

    head = ("<tr><th>gt</th><th>stride (map)</th><th>anchor</th><th>w×h px</th>"
            "<th>w×h cells</th><th>cell (gy, gx)</th><th>which cell</th><th>shape IoU</th>"
            "<th>ratio</th></tr>")
    body = []
    for r in rows:
        color = class_color(r["gt"])
        h, w = r["grid_size"]
        body.append(
            f"<tr><td style='color:{color}'><b>{gt_name(r['gt'])}</b></td>"
            f"<td>{r['stride']} ({h}×{w})</td><td>{r['anchor']}</td>"
            f"<td>{r['anchor_px'][0]:.1f}×{r['anchor_px'][1]:.1f}</td>"
            f"<td>{r['anchor_grid'][0]:.2f}×{r['anchor_grid'][1]:.2f}</td>"
            f"<td>({r['cell'][0]}, {r['cell'][1]})</td>"
            f"<td>{'centre' if r['at_centre'] else 'neighbour'}</td><td>{r['shape_iou']:.3f}</td>"
            f"<td>{r['ratio']:.2f}</td></tr>")
    orphans = sorted(set(range(num_gt)) - {r["gt"] for r in rows})
    note = "" if not orphans else (
        "<p>No responsible prediction (not learned on these maps): "
        + ", ".join(gt_name(g) for g in orphans) + "</p>")
    style = "border-spacing:0.7em 0.1em;font-size:11px;line-height:1.35;text-align:right"
    return f"<table style='{style}'>{head}{''.join(body)}</table>{note}"


# ----------------------------------------------------------------------------- the widget
def anchor_explorer(image, boxes, labels, anchors, strides: Sequence[int],
                    img_size: int | Sequence[int], class_names: Sequence[str] | None = None,
                    rule: str = "single", panel_size: float = 3.2,
                    dpi: int = 100) -> WidgetPanel:
    """Explore target assignment on one image: rule, scale, and units of the anchors.

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` image at the network input size, or ``None`` for a
            flat canvas of ``img_size``.
        boxes, labels: ``(M, 4)`` ground truth xyxy pixels and ``(M,)`` classes.
        anchors, strides, img_size: as in :func:`responsibilities`.
        class_names: names for the tags and the table.
        rule: the rule shown first.

    Controls: ``rule`` (single / multi / neighbours), ``scale`` (``-1`` for every scale side by
    side, or one scale index) and ``units`` (``"px"`` or ``"grid"``). Each panel is
    :func:`draw_responsibilities`; the table is :func:`assignment_table_html`.

    Returns the container; ``.controls`` holds the three controls, ``.update()`` redraws and
    returns the rows drawn (those of the chosen scales), ``.figure`` is the matplotlib figure.
    """
    boxes = as_numpy(boxes).reshape(-1, 4)
    labels = as_numpy(labels, np.int64).reshape(len(boxes))
    image = None if image is None else hwc_image(image)
    strides = tuple(int(s) for s in strides)
    grids = grid_sizes(img_size, strides)
    style = {"description_width": "3.5em"}
    scales = [("all scales", -1)] + [(f"stride {s} ({h}×{w})", k)
                                     for k, (s, (h, w)) in enumerate(zip(strides, grids))]
    controls = {
        "rule": widgets.Dropdown(options=[(v, k) for k, v in RULES.items()], value=rule,
                                 description="rule", style=style,
                                 layout=widgets.Layout(width="24em")),
        "scale": widgets.Dropdown(options=scales, value=-1, description="scale", style=style,
                                  layout=widgets.Layout(width="16em")),
        "units": widgets.ToggleButtons(options=[("pixels", "px"), ("grid units", "grid")],
                                       value="px", style={"button_width": "7.5em"}),
    }
    summary, table, picture = widgets.HTML(), widgets.HTML(), widgets.Image(format="png")
    fig = Figure(dpi=dpi)
    cache: dict[str, list[dict]] = {}  # rule -> rows: only the rule changes the assignment

    def update(change=None) -> list[dict]:
        c = {k: w.value for k, w in controls.items()}
        if c["rule"] not in cache:
            cache[c["rule"]] = responsibilities(boxes, labels, anchors, strides, img_size,
                                                c["rule"])
        rows = cache[c["rule"]]
        chosen = range(len(strides)) if c["scale"] == -1 else [c["scale"]]
        shown = [r for r in rows if r["scale"] in chosen]
        fig.clear()
        fig.set_size_inches(panel_size * len(chosen), panel_size + 0.3)
        axes = fig.subplots(1, len(chosen), squeeze=False)[0]
        for ax, k in zip(axes, chosen):
            draw_responsibilities(ax, rows, boxes, labels, k, strides[k], img_size, image,
                                  class_names, c["units"])
        class_legend(axes[-1], [], fontsize=7, extra=[
            ("ground truth", {"color": "k", "linestyle": "--"}),
            ("anchor in a cell", {"color": "k", "linewidth": 1.0}),
            ("responsible cell", {"color": "k", "linewidth": 6, "alpha": 0.35}),
        ])
        fig.tight_layout(pad=0.4)
        per_scale = ", ".join(f"{sum(r['scale'] == k for r in rows)} at stride {s}"
                              for k, s in enumerate(strides))
        summary.value = (f"{RULES[c['rule']]}: <b>{len(boxes)}</b> ground truths → "
                         f"<b>{len(rows)}</b> responsible predictions ({per_scale})")
        table.value = assignment_table_html(shown, len(boxes), labels, class_names)
        show_figure(picture, fig)
        return shown

    for widget in controls.values():
        widget.observe(update, names="value")
    rows = [widgets.HBox(list(controls.values())), summary, picture, scrolling(table)]
    ui = WidgetPanel("anchor-explorer", rows, picture, controls, update, fig,
                     texts=[summary, table])
    update()
    return ui
