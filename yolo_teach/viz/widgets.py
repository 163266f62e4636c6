"""Two ipywidgets, thin views over tested functions: the IoU playground and the NMS explorer.

Each widget is built from core ``ipywidgets`` (sliders, a dropdown, ``HTML``, ``Image``) and a
matplotlib ``Figure`` that is redrawn on every change and shown as a PNG in the ``Image`` widget
(this works with any matplotlib backend, and without pyplot's figure manager). The numbers
come from pure functions (:func:`yolo_teach.viz.geometry.iou_family_values`, :func:`apply_nms`)
that the tests check against ``yolo_teach.boxes`` and ``yolo_teach.nms``.

Both functions return the widget container with three extra attributes, so that tests (and curious
students) can drive them without a browser: ``controls`` (a dict of the input widgets; setting a
``.value`` redraws), ``update()`` (redraw now; returns what was drawn) and ``figure`` (the
matplotlib figure, e.g. to ``savefig`` a view for slides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from yolo_teach.boxes import box_convert, box_iou
from yolo_teach.nms import batched_nms, diou_nms, nms, soft_nms
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import (
    SUPPRESSED_COLOR,
    class_legend,
    draw_boxes,
    draw_canvas,
)
from yolo_teach.viz.geometry import draw_iou_geometry, iou_family_values, values_table_html
from yolo_teach.viz.panel import WidgetPanel, show_figure

# ----------------------------------------------------------------------------- NMS, the pure part
NMS_METHODS = {
    "greedy": "greedy NMS (all classes)",
    "batched": "per-class NMS (batched_nms)",
    "soft_linear": "soft-NMS, linear",
    "soft_gaussian": "soft-NMS, Gaussian",
    "diou": "DIoU-NMS",
}


@dataclass(frozen=True)
class NMSResult:
    """What one NMS setting keeps, as indices into the boxes it was given.

    ``keep (K,)`` in the order the boxes were selected, ``scores (K,)`` their scores after NMS
    (decayed for soft-NMS, unchanged otherwise), ``candidates (C,)`` the boxes that passed the
    confidence threshold before NMS, in index order.
    """

    keep: np.ndarray
    scores: np.ndarray
    candidates: np.ndarray

    @property
    def suppressed(self) -> np.ndarray:
        """Candidates that NMS removed, in index order."""
        return np.setdiff1d(self.candidates, self.keep)


def _as_tensor(x, dtype=torch.float64) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(as_numpy(x), dtype=dtype)


def apply_nms(boxes, scores, labels, method: str = "greedy", conf: float = 0.25,
              iou: float = 0.45, sigma: float = 0.5) -> NMSResult:
    """Confidence threshold, then one of the NMS variants of :mod:`yolo_teach.nms`.

    Args:
        boxes: ``(N, 4)`` xyxy; scores ``(N,)``; labels ``(N,)`` class indices.
        method: a key of ``NMS_METHODS``: ``"greedy"`` (:func:`nms`, classes ignored),
            ``"batched"`` (:func:`batched_nms`, per class), ``"soft_linear"`` / ``"soft_gaussian"``
            (:func:`soft_nms`; ``iou`` is the linear rule's N_t, ``sigma`` the Gaussian's σ) or
            ``"diou"`` (:func:`diou_nms`).
        conf: boxes with ``score < conf`` are dropped first. For soft-NMS it is also the final
            threshold on the decayed scores (at least 0.001, the library's default).
        iou: the IoU threshold (DIoU for DIoU-NMS); overlaps greater than it suppress.

    Returns:
        :class:`NMSResult` with indices into the original ``boxes``.
    """
    if method not in NMS_METHODS:
        raise ValueError(f"method must be one of {tuple(NMS_METHODS)}, got {method!r}")
    boxes_t = _as_tensor(boxes).reshape(-1, 4)  # (N, 4)
    scores_t = _as_tensor(scores).reshape(-1)  # (N,)
    labels_t = _as_tensor(labels, torch.long).reshape(-1)  # (N,)
    candidates = torch.nonzero(scores_t >= conf).flatten()  # (C,)
    b, s, lab = boxes_t[candidates], scores_t[candidates], labels_t[candidates]
    if method.startswith("soft"):
        keep, new_scores = soft_nms(b, s, iou_threshold=iou, sigma=sigma,
                                    method=method.removeprefix("soft_"),
                                    score_threshold=max(conf, 1e-3))
    else:
        if method == "greedy":
            keep = nms(b, s, iou)
        elif method == "batched":
            keep = batched_nms(b, s, lab, iou)
        else:
            keep = diou_nms(b, s, iou)
        new_scores = s[keep]
    return NMSResult(keep=candidates[keep].numpy(), scores=new_scores.numpy().astype(np.float64),
                     candidates=candidates.numpy())


def greedy_nms_steps(boxes, scores, iou_threshold: float) -> list[tuple[int, np.ndarray]]:
    """Greedy NMS replayed one step at a time, for pictures: ``[(kept, removed_now), ...]``.

    Step t keeps the best box not yet removed and removes every remaining box whose IoU with it
    is greater than ``iou_threshold``. The kept indices, in order, equal :func:`yolo_teach.nms.nms`
    (same stable score order, same strict ``>``).
    """
    boxes_t = _as_tensor(boxes).reshape(-1, 4)
    scores_t = _as_tensor(scores).reshape(-1)
    if len(boxes_t) == 0:
        return []
    overlap = box_iou(boxes_t, boxes_t)  # (N, N)
    removed = torch.zeros(len(boxes_t), dtype=torch.bool)
    steps = []
    order = torch.sort(scores_t, descending=True, stable=True).indices  # ties: lower index first
    for i in order.tolist():
        if removed[i]:
            continue
        removed[i] = True  # kept, and out of the pool
        now = (overlap[i] > iou_threshold) & ~removed  # (N,)
        removed |= now
        steps.append((i, torch.nonzero(now).flatten().numpy()))
    return steps


# ----------------------------------------------------------------------------- widgets
def iou_playground(gt=(120.0, 120.0, 260.0, 220.0), pred=(200.0, 170.0, 330.0, 330.0),
                   canvas: float = 400.0, figsize=(4.8, 3.0), dpi: int = 100) -> WidgetPanel:
    """Move and resize a prediction against a fixed ground truth; read IoU, GIoU, DIoU, CIoU.

    ``gt`` and ``pred`` are ``xyxy`` boxes on a ``canvas x canvas`` picture. Four sliders set the
    prediction's ``cx, cy, w, h``; the picture shows the boxes, their intersection, the enclosing
    box C, the centre distance ρ and the diagonal c; the table gives the four values and the
    losses (1 - value), all from :func:`yolo_teach.viz.geometry.iou_family_values`.

    Returns the container; ``.controls`` are the sliders and ``.update()`` redraws and returns
    the dict of values.
    """
    gt = as_numpy(gt).reshape(4)
    cx, cy, w, h = box_convert(as_numpy(pred).reshape(4), "xyxy", "cxcywh").tolist()
    style, layout = {"description_width": "2.5em"}, widgets.Layout(width="24em")
    controls = {
        name: widgets.FloatSlider(value=value, min=lo, max=canvas, step=1.0, description=name,
                                  continuous_update=False, style=style, layout=layout,
                                  readout_format=".0f")
        for name, value, lo in (("cx", cx, 0.0), ("cy", cy, 0.0), ("w", w, 1.0), ("h", h, 1.0))
    }
    table, picture = widgets.HTML(), widgets.Image(format="png")
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.02, right=0.62, top=0.98, bottom=0.02)

    def update(change=None) -> dict[str, float]:
        cxcywh = np.array([controls[k].value for k in ("cx", "cy", "w", "h")])
        pred_xyxy = box_convert(cxcywh, "cxcywh", "xyxy")
        values = iou_family_values(pred_xyxy, gt)
        table.value = values_table_html(values)
        ax.clear()
        draw_iou_geometry(ax, pred_xyxy, gt, limits=(0, 0, canvas, canvas))
        ax.set_xticks([])
        ax.set_yticks([])
        show_figure(picture, fig)
        return values

    for slider in controls.values():
        slider.observe(update, names="value")
    ui = WidgetPanel("iou-playground", [widgets.HBox([widgets.VBox([*controls.values(), table]),
                                                     picture])],
                     picture, controls, update, fig, texts=[table])
    update()
    return ui


def nms_explorer(boxes, scores, labels, image=None, class_names: Sequence[str] | None = None,
                 gt_boxes=None, size: tuple[int, int] | None = None, conf: float = 0.25,
                 iou: float = 0.45, method: str = "greedy", figsize=(4.0, 4.0),
                 dpi: int = 100) -> WidgetPanel:
    """Explore NMS: confidence and IoU thresholds, and the method, on one image's detections.

    ``boxes (N, 4)`` xyxy, ``scores (N,)``, ``labels (N,)``; optional ``image`` (or a flat canvas
    of ``size = (width, height)``, by default just large enough for the boxes) and ``gt_boxes``
    drawn dashed. Kept boxes are drawn in their class colour with their score after NMS (decayed
    for soft-NMS); boxes removed by NMS are grey and dotted; boxes under the confidence threshold
    are not drawn.

    Returns the container; ``.controls`` holds ``method``, ``conf``, ``iou`` and ``sigma`` and
    ``.update()`` redraws and returns the :class:`NMSResult`.
    """
    boxes, scores = as_numpy(boxes).reshape(-1, 4), as_numpy(scores).reshape(-1)
    labels = as_numpy(labels, np.int64).reshape(-1)
    if image is None and size is None:
        side = float(np.ceil(max(boxes.max(initial=1.0), 1.0)))
        size = (side, side)
    style = {"description_width": "6.5em"}
    layout = widgets.Layout(width="22em")
    controls = {
        "method": widgets.Dropdown(options=[(v, k) for k, v in NMS_METHODS.items()], value=method,
                                   description="method", style=style, layout=layout),
        "conf": widgets.FloatSlider(value=conf, min=0.0, max=1.0, step=0.05, style=style,
                                    description="confidence", continuous_update=False,
                                    layout=layout),
        "iou": widgets.FloatSlider(value=iou, min=0.05, max=0.95, step=0.05, style=style,
                                   description="IoU thr.", continuous_update=False, layout=layout),
        "sigma": widgets.FloatSlider(value=0.5, min=0.05, max=1.0, step=0.05, style=style,
                                     description="σ (Gauss)", continuous_update=False,
                                     layout=layout),
    }
    summary, picture = widgets.HTML(), widgets.Image(format="png")
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.02)

    def update(change=None) -> NMSResult:
        c = {k: w.value for k, w in controls.items()}
        res = apply_nms(boxes, scores, labels, c["method"], c["conf"], c["iou"], c["sigma"])
        ax.clear()
        draw_canvas(ax, size, image)
        if gt_boxes is not None:
            draw_boxes(ax, gt_boxes, color="black", linestyle="--", linewidth=1.0, text=False)
        draw_boxes(ax, boxes[res.suppressed], color=SUPPRESSED_COLOR, linestyle=":",
                   linewidth=1.0, text=False)
        draw_boxes(ax, boxes[res.keep], labels[res.keep], res.scores, class_names, fontsize=7)
        if class_names is not None:
            class_legend(ax, class_names, fontsize=7)
        ax.set_title(NMS_METHODS[c["method"]], fontsize=9)
        summary.value = (f"<b>{len(res.candidates)}</b> boxes with score ≥ {c['conf']:.2f} → "
                         f"<b>{len(res.keep)}</b> kept, <b>{len(res.suppressed)}</b> removed")
        show_figure(picture, fig)
        return res

    for widget in controls.values():
        widget.observe(update, names="value")
    rows = [widgets.HBox([controls["method"], controls["conf"]]),
            widgets.HBox([controls["iou"], controls["sigma"]]), summary, picture]
    ui = WidgetPanel("nms-explorer", rows, picture, controls, update, fig, texts=[summary])
    update()
    return ui
