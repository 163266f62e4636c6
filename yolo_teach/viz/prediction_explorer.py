"""Thresholds after training: confidence, NMS IoU and classes, and what they do to the metrics.

Validation keeps nearly every detection (confidence ≥ 0.001, COCO practice), because mAP is the
area under the whole precision-recall curve. A deployed detector keeps only the confident ones.
This module replays that last step on stored validation detections:

* :func:`filter_predictions` applies a confidence threshold, a class selection and class-wise
  NMS (:func:`~yolo_teach.nms.batched_nms`) to each image's stored candidates;
* :func:`explorer_metrics` measures the result over all images with :mod:`yolo_teach.metrics`:
  precision, recall and F1 at the threshold (:func:`~yolo_teach.metrics.detection_report`),
  and COCO's mAP50 and mAP50:95 (:func:`~yolo_teach.metrics.mean_average_precision`);
* :func:`prediction_explorer` is the widget over both, with one image drawn.

Raising the confidence threshold trades recall for precision, and also cuts the tail of the
precision-recall curve, so mAP can only fall: the reason validation measures at 0.001.

Predictions and targets are torchmetrics-style dicts, one per image: ``{"boxes": (N, 4) xyxy
pixels, "scores": (N,), "labels": (N,)}`` and ``{"boxes": (M, 4), "labels": (M,)}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from yolo_teach.metrics import detection_report, mean_average_precision
from yolo_teach.nms import batched_nms
from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import class_color, class_legend, draw_boxes, draw_canvas
from yolo_teach.viz.panel import WidgetPanel, show_figure
from yolo_teach.viz.widgets import _as_tensor


def hwc_image(image) -> np.ndarray:
    """An image as matplotlib draws it, ``(H, W, 3)`` or ``(H, W)``: a ``(3, H, W)`` or
    ``(1, H, W)`` tensor (as a data loader yields it) is transposed; values are kept."""
    x = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)  # (H, W, C)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]  # (H, W)
    return x


def _class_mask(labels: np.ndarray, classes: Iterable[int] | None) -> np.ndarray:
    if classes is None:
        return np.ones(len(labels), dtype=bool)
    return np.isin(labels, np.fromiter(classes, dtype=np.int64))


def select_classes(targets: Sequence[dict], classes: Iterable[int] | None) -> list[dict]:
    """Ground truth dicts with only the boxes of ``classes`` (all of them for ``None``)."""
    classes = None if classes is None else list(classes)
    out = []
    for target in targets:
        boxes = as_numpy(target["boxes"]).reshape(-1, 4)  # (M, 4)
        labels = as_numpy(target["labels"], np.int64).reshape(-1)  # (M,)
        keep = _class_mask(labels, classes)
        out.append({"boxes": boxes[keep], "labels": labels[keep]})
    return out


def filter_predictions(preds: Sequence[dict], conf: float = 0.25, iou: float = 0.45,
                       classes: Iterable[int] | None = None) -> list[dict]:
    """What a detector run at ``conf`` and ``iou`` keeps of stored low-threshold detections.

    Per image: drop detections with ``score < conf`` (``>=`` keeps, as
    :func:`~yolo_teach.metrics.detection_report` counts) or a class outside ``classes``, then run
    NMS within each class (:func:`~yolo_teach.nms.batched_nms`: a box is removed when its IoU
    with a better box of its class is greater than ``iou``).

    NMS cannot bring back what an earlier NMS removed: candidates stored after NMS at IoU 0.6
    behave the same for every ``iou >= 0.6``. Store them with ``iou_threshold=1.0`` (no
    suppression) to explore the whole range.

    Args:
        preds: one dict per image, ``boxes (N, 4)`` xyxy, ``scores (N,)``, ``labels (N,)``.
        classes: class indices to keep; ``None`` keeps every class.

    Returns:
        One dict per image, NumPy ``boxes (K, 4)`` float64, ``scores (K,)`` float64 and
        ``labels (K,)`` int64, by decreasing score.
    """
    classes = None if classes is None else list(classes)
    out = []
    for pred in preds:
        boxes = _as_tensor(pred["boxes"]).reshape(-1, 4)  # (N, 4)
        scores = _as_tensor(pred["scores"]).reshape(-1)  # (N,)
        labels = _as_tensor(pred["labels"], torch.long).reshape(-1)  # (N,)
        wanted = (scores >= conf) & torch.from_numpy(_class_mask(labels.numpy(), classes))
        candidates = torch.nonzero(wanted).flatten()  # (C,)
        keep = candidates[batched_nms(boxes[candidates], scores[candidates],
                                      labels[candidates], iou)]  # (K,)
        out.append({"boxes": boxes[keep].numpy(), "scores": scores[keep].numpy(),
                    "labels": labels[keep].numpy()})
    return out


def _select(pred: dict, classes: list[int] | None) -> dict:
    """A prediction dict's ``boxes``, ``scores`` and ``labels`` restricted to ``classes``."""
    labels = as_numpy(pred["labels"], np.int64).reshape(-1)
    keep = _class_mask(labels, classes)
    return {"boxes": as_numpy(pred["boxes"]).reshape(-1, 4)[keep],
            "scores": as_numpy(pred["scores"]).reshape(-1)[keep], "labels": labels[keep]}


def explorer_metrics(filtered: Sequence[dict], targets: Sequence[dict],
                     class_names: Sequence[str], conf: float = 0.0,
                     classes: Iterable[int] | None = None) -> dict:
    """Precision, recall and mAP over all images, for detections filtered at ``conf``.

    Only the ground truths (and detections) of ``classes`` count, so that switching a class off
    removes its misses too. Precision ``TP / (TP + FP)`` and recall ``TP / #GT`` count the
    detections with ``score >= conf``, matched at IoU 0.5
    (:func:`~yolo_teach.metrics.detection_report`); mAP50 and mAP (IoU .50:.95) are COCO's
    (:func:`~yolo_teach.metrics.mean_average_precision`, -1 when there is no ground truth).

    Returns:
        ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``, ``num_gt``,
        ``num_detections``, ``map_50``, ``map``, and ``report`` (the
        :class:`~yolo_teach.metrics.DetectionReport`, per-class counts and AP50).
    """
    classes = None if classes is None else list(classes)
    filtered = [{**p, **_select(p, classes)} for p in filtered]
    targets = select_classes(targets, classes)
    coco = mean_average_precision(filtered, targets)
    report = detection_report(filtered, targets, list(class_names), conf_threshold=conf,
                              iou_threshold=0.5)
    tp, fp, num_gt = int(report.tp.sum()), int(report.fp.sum()), int(report.num_gt.sum())
    return {
        "precision": report.precision,
        "recall": report.recall,
        "f1": report.f1,
        "tp": tp,
        "fp": fp,
        "fn": num_gt - tp,
        "num_gt": num_gt,
        "num_detections": report.detections_count,
        "map_50": coco["map_50"],
        "map": coco["map"],
        "report": report,
    }


def metrics_html(metrics: dict, class_names: Sequence[str], classes: Iterable[int]) -> str:
    """:func:`explorer_metrics` as a headline and a per-class table (chosen classes only)."""
    def value(x: float) -> str:
        return "–" if x < 0 else f"{x:.3f}"

    m, report = metrics, metrics["report"]
    head = (f"<b>all images</b>: precision <b>{m['precision']:.3f}</b> · recall "
            f"<b>{m['recall']:.3f}</b> · F1 {m['f1']:.3f} · mAP50 <b>{value(m['map_50'])}</b> · "
            f"mAP50:95 <b>{value(m['map'])}</b> (TP {m['tp']}, FP {m['fp']}, FN {m['fn']})")
    rows = []
    for k in classes:
        tp, fp, n = int(report.tp[k]), int(report.fp[k]), int(report.num_gt[k])
        p = tp / max(tp + fp, 1)
        r = tp / max(n, 1)
        ap = value(report.ap[k]) if n else "–"
        rows.append(f"<tr><td style='color:{class_color(k)};text-align:left'>"
                    f"<b>{class_names[k]}</b></td><td>{n}</td><td>{tp}</td><td>{fp}</td>"
                    f"<td>{p:.2f}</td><td>{r:.2f}</td><td>{ap}</td></tr>")
    style = "border-spacing:0.7em 0.1em;font-size:11px;line-height:1.35;text-align:right"
    table = (f"<table style='{style}'>"
             "<tr><th>class</th><th>GT</th><th>TP</th><th>FP</th><th>P</th><th>R</th>"
             "<th>AP50*</th></tr>" + "".join(rows) + "</table>"
             "<small>* all-points AP at IoU 0.5 of every kept detection (Darknet's); the "
             "headline mAP50 is COCO's 101-point mean.</small>")
    return head + table


def prediction_explorer(images, preds: Sequence[dict], targets: Sequence[dict],
                        class_names: Sequence[str], conf: float = 0.25, iou: float = 0.45,
                        figsize=(4.0, 4.0), dpi: int = 100) -> WidgetPanel:
    """Explore confidence and NMS thresholds and classes on stored validation detections.

    Args:
        images: one image per prediction dict (``(H, W, 3)``, ``(H, W)`` or ``(3, H, W)``),
            or ``None`` for flat canvases.
        preds: low-threshold detections per image (e.g. validation's, confidence ≥ 0.001).
        targets: ground truth per image.
        class_names: K names; one checkbox per class.

    Controls: ``conf`` and ``iou`` sliders, ``image`` (index), ``classes`` (a list of K
    checkboxes). The picture shows the chosen image's kept detections (solid, class colour,
    score) and the ground truth of the chosen classes (dashed); the numbers are
    :func:`explorer_metrics` over all images, recomputed only when a threshold or a class
    changes.

    Returns the container; ``.controls`` holds the controls, ``.update()`` redraws and returns
    ``{"filtered": filter_predictions(...), "metrics": explorer_metrics(...), "image": index}``,
    ``.figure`` is the matplotlib figure.
    """
    if images is not None and len(images) != len(preds):
        raise ValueError(f"{len(images)} images for {len(preds)} prediction dicts")
    if len(targets) != len(preds):
        raise ValueError(f"{len(targets)} targets for {len(preds)} prediction dicts")
    side = max([1.0] + [float(as_numpy(d["boxes"]).max(initial=0.0))
                        for d in (*preds, *targets)])
    canvas = (float(np.ceil(side)), float(np.ceil(side)))  # for images=None
    style, layout = {"description_width": "6em"}, widgets.Layout(width="22em")
    controls = {
        "conf": widgets.FloatSlider(value=conf, min=0.0, max=1.0, step=0.01,
                                    description="confidence", continuous_update=False,
                                    style=style, layout=layout),
        "iou": widgets.FloatSlider(value=iou, min=0.05, max=1.0, step=0.05,
                                   description="NMS IoU", continuous_update=False,
                                   style=style, layout=layout),
        "image": widgets.IntSlider(value=0, min=0, max=max(len(preds) - 1, 0),
                                   description="image", continuous_update=False, style=style,
                                   layout=layout),
        "classes": [widgets.Checkbox(value=True, description=name, indent=False,
                                     layout=widgets.Layout(width="auto"))
                    for name in class_names],
    }
    summary, detail = widgets.HTML(), widgets.HTML()
    picture = widgets.Image(format="png")
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.02)
    last: dict = {}  # the last (conf, iou, classes) and what it gave

    def update(change=None) -> dict:
        c_conf, c_iou = controls["conf"].value, controls["iou"].value
        index = controls["image"].value
        chosen = [k for k, box in enumerate(controls["classes"]) if box.value]
        key = (c_conf, c_iou, tuple(chosen))
        if last.get("key") != key:  # moving through images reuses the metrics
            filtered = filter_predictions(preds, c_conf, c_iou, chosen)
            metrics = explorer_metrics(filtered, targets, class_names, c_conf, chosen)
            last.update(key=key, filtered=filtered, metrics=metrics)
            summary.value = metrics_html(metrics, class_names, chosen)
        filtered, metrics = last["filtered"], last["metrics"]
        det, gt = filtered[index], select_classes([targets[index]], chosen)[0]
        ax.clear()
        image = None if images is None or images[index] is None else hwc_image(images[index])
        draw_canvas(ax, canvas if image is None else None, image)
        draw_boxes(ax, gt["boxes"], gt["labels"], linestyle="--", linewidth=1.2, text=False)
        draw_boxes(ax, det["boxes"], det["labels"], det["scores"], class_names, fontsize=7)
        class_legend(ax, list(class_names), fontsize=7, only=chosen,
                     extra=[("ground truth", {"color": "k", "linestyle": "--"})])
        n_gt = len(gt["boxes"])
        ax.set_title(f"image {index}: {len(det['boxes'])} kept, {n_gt} ground "
                     f"truth{'' if n_gt == 1 else 's'}", fontsize=9)
        n_candidates = len(as_numpy(preds[index]["scores"]).reshape(-1))
        detail.value = (f"image {index}: {n_candidates} stored detections → score ≥ "
                        f"{c_conf:.2f}, chosen classes, NMS at IoU {c_iou:.2f} → "
                        f"<b>{len(det['boxes'])}</b> kept")
        show_figure(picture, fig)
        return {"filtered": filtered, "metrics": metrics, "image": index}

    for widget in (controls["conf"], controls["iou"], controls["image"], *controls["classes"]):
        widget.observe(update, names="value")
    rows = [widgets.HBox([controls["conf"], controls["iou"], controls["image"]]),
            widgets.HBox(controls["classes"]),
            widgets.HBox([picture, widgets.VBox([summary, detail])])]
    ui = WidgetPanel("prediction-explorer", rows, picture, controls, update, fig,
                     texts=[summary, detail])
    update()
    return ui
