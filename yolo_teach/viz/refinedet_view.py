r"""Two-step regression in pictures (RefineDet, Zhang et al. CVPR 2018 §3; RefineDetLite §3).

A two-step detector regresses every anchor twice:

1. **default anchors**: Caffe's ``PriorBox`` boxes, ``model.priors(img_size)``, A per cell of
   every level;
2. **ARM-refined anchors**: the anchor refinement module moves each default anchor by its first
   offsets and says object / background; an anchor it calls background with probability above
   0.99 is dropped (negative anchor filtering, §3.2);
3. **ODM detections**: the object detection module classifies the refined anchors that are
   left and moves them a second time; confidence filter and NMS give the detections.

:func:`two_step` runs a detector on one image and keeps all three steps (:class:`TwoStep`);
:func:`level_selection`, :func:`two_step_counts` and :func:`draw_two_step` look at one level;
:func:`two_step_explorer` is the widget over them (an image slider, a level dropdown and the
objectness and score thresholds).

Only ``model.priors``, ``model.feature_sizes``, the loss's coder and filter threshold and the
detector's ``predict`` are used, so any two-step detector (RefineDet, RefineDetLite) works.
Boxes are ``xyxy`` pixels of the letterboxed network input (:func:`network_input`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.patheffects import withStroke

from yolo_teach.detectors import Detector
from yolo_teach.losses.refine_assign import FILTER_THRESHOLD, filtered_anchors
from yolo_teach.utils import as_numpy
from yolo_teach.viz.attention_widget import network_input
from yolo_teach.viz.draw import draw_boxes, draw_canvas
from yolo_teach.viz.panel import WidgetPanel, show_figure

OBJECT_CMAP = "spring"  # colour of an anchor = its ARM p(object), on a fixed 0..1 scale
FILTERED_COLOR = "#9A9A9A"  # anchors the ARM filtered (negative anchor filtering)
KEPT_COLOR = "#009E73"  # anchors left for the ODM
CENTRE_COLOR = "#FFFFFF"
MAX_BOXES = 40  # anchors drawn per panel, the most confident first


@dataclass
class TwoStep:
    """The two steps of a two-step detector on one image, one row per default anchor.

    Rows are in the model's order: level by level (finest first), row-major, the A anchors of a
    location innermost. NumPy arrays; boxes ``xyxy`` pixels of the network input.

    Attributes:
        picture: (S, S, 3) uint8, the letterboxed input.
        priors: (N, 4) default anchors.
        refined: (N, 4) the priors moved by the ARM's offsets.
        boxes: (N, 4) the refined anchors moved by the ODM's offsets: the final boxes.
        p_object: (N,) ARM softmax probability of "object".
        filtered: (N,) bool, ARM background probability > ``filter_threshold`` (§3.2).
        class_probs: (N, K) ODM softmax without its background column.
        level: (N,) int, the level of each row (:func:`anchor_levels`).
        map_sizes: per level the side of its map, an int or ``(h, w)``.
        anchors_per_location: A.
        detections: ``{"boxes" (n, 4), "scores" (n,), "labels" (n,)}`` after the detector's
            own decoding and NMS, at a low confidence threshold.
        class_names: K names.
        strides: per level, in pixels (``model.strides``, else ``S / side``).
        filter_threshold: the loss's negative anchor filtering threshold (0.99).
    """

    picture: np.ndarray
    priors: np.ndarray
    refined: np.ndarray
    boxes: np.ndarray
    p_object: np.ndarray
    filtered: np.ndarray
    class_probs: np.ndarray
    level: np.ndarray
    map_sizes: list
    anchors_per_location: int
    detections: dict
    class_names: list
    strides: tuple = ()
    filter_threshold: float = FILTER_THRESHOLD


def _hw(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def anchor_levels(map_sizes: Sequence, anchors_per_location: int) -> np.ndarray:
    """The level of every row: ``h_l w_l A`` rows for level ``l``, finest first.

    ``anchor_levels([2, 1], 2)`` is ``[0] * 8 + [1] * 2``.
    """
    counts = [h * w * anchors_per_location for h, w in map(_hw, map_sizes)]
    return np.repeat(np.arange(len(counts)), counts)  # (N,)


def _level_name(result: TwoStep, level: int) -> str:
    h, w = _hw(result.map_sizes[level])
    stride = result.strides[level] if result.strides else result.picture.shape[0] / h
    return f"stride {stride:g}, {h} x {w} cells"


@torch.no_grad()
def two_step(detector: Detector, image, class_names: Sequence[str] | None = None,
             conf_threshold: float = 0.01, iou_threshold: float = 0.45) -> TwoStep:
    r"""Run a two-step detector on one ``(H, W, 3)`` uint8 image and keep both regressions.

    The model runs in eval mode under ``torch.inference_mode`` (its mode is restored); the
    offsets are decoded with the loss's coder (SSD's, :math:`b = a + t_{xy} v_0 a_{wh}`, :math:`b_{wh} = a_{wh}
    e^{t_{wh} v_1}`): ARM offsets on the default anchors, ODM offsets on the refined ones
    (RefineDet §3). ``filtered`` is negative anchor filtering (§3.2). The detections come from
    ``detector.predict`` at ``conf_threshold`` (a second pass, with the detector's own decoder
    and NMS; low, so that a score slider can filter further).

    Raises:
        ValueError: when the model's rows do not match ``model.priors`` and
            ``model.feature_sizes``.
    """
    model, size = detector.model, detector.img_size
    tensor, picture = network_input(image, size)  # (1, 3, S, S), (S, S, 3)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(tensor.to(device))  # RefineOutput, rows (1, N, .)
    finally:
        model.train(was_training)
    priors = model.priors(size).to(device, out.arm_loc.dtype)  # (N, 4)
    rows = out.arm_loc.shape[1]
    if rows != len(priors):
        raise ValueError(f"{detector.name}: the model predicts {rows} rows but "
                         f"model.priors({size}) gives {len(priors)} anchors")
    map_sizes = list(model.feature_sizes(size))
    cells = sum(h * w for h, w in map(_hw, map_sizes))
    if rows % cells:
        raise ValueError(f"{rows} rows are not a whole number of anchors per location over "
                         f"the {cells} cells of maps {map_sizes}")
    criterion = detector.criterion
    threshold = getattr(criterion, "filter_threshold", FILTER_THRESHOLD)
    coder = criterion.coder
    refined = coder.decode(out.arm_loc[0], priors)  # (N, 4) the ARM's anchors
    boxes = coder.decode(out.odm_loc[0], refined)  # (N, 4) the ODM's boxes
    p_object = torch.softmax(out.arm_conf[0], dim=-1)[:, 1]  # (N,)
    filtered = filtered_anchors(out.arm_conf[0], threshold)  # (N,)
    class_probs = torch.softmax(out.odm_conf[0], dim=-1)[:, 1:]  # (N, K)
    detections = detector.predict(tensor.to(device), conf_threshold, iou_threshold)[0]
    strides = getattr(model, "strides", None)
    if strides is None or len(strides) != len(map_sizes):
        strides = [size / _hw(s)[0] for s in map_sizes]
    num_classes = class_probs.shape[1]
    return TwoStep(
        picture=picture, priors=as_numpy(priors), refined=as_numpy(refined),
        boxes=as_numpy(boxes), p_object=as_numpy(p_object), filtered=as_numpy(filtered, bool),
        class_probs=as_numpy(class_probs), level=anchor_levels(map_sizes, rows // cells),
        map_sizes=map_sizes, anchors_per_location=rows // cells,
        detections={"boxes": as_numpy(detections["boxes"]).reshape(-1, 4),
                    "scores": as_numpy(detections["scores"]),
                    "labels": as_numpy(detections["labels"], np.int64)},
        class_names=list(class_names) if class_names is not None
        else [str(k) for k in range(num_classes)],
        strides=tuple(float(s) for s in strides), filter_threshold=float(threshold))


def level_selection(result: TwoStep, level: int, objectness: float,
                    max_boxes: int = MAX_BOXES) -> np.ndarray:
    """Rows of ``level`` whose ARM p(object) is at least ``objectness``, most confident first,
    at most ``max_boxes``. With ``objectness`` above ``1 - filter_threshold`` (0.01) none of
    them is filtered (§3.2)."""
    rows = np.flatnonzero((result.level == level) & (result.p_object >= objectness))
    order = np.argsort(-result.p_object[rows], kind="stable")
    return rows[order][:max_boxes]


def two_step_counts(result: TwoStep, level: int, objectness: float, score: float,
                    max_boxes: int = MAX_BOXES) -> dict[str, int]:
    """What one view shows, counted: on ``level`` its ``anchors``, those ``filtered`` by the ARM
    (§3.2) and those ``kept`` for the ODM, those ``selected`` (p(object) >= ``objectness``) and
    ``drawn`` (at most ``max_boxes``); over the image, the ``detections`` with score >=
    ``score``."""
    on = result.level == level
    selected = int((on & (result.p_object >= objectness)).sum())
    return {
        "anchors": int(on.sum()),
        "filtered": int((on & result.filtered).sum()),
        "kept": int((on & ~result.filtered).sum()),
        "selected": selected,
        "drawn": min(selected, max_boxes),
        "detections": int((result.detections["scores"] >= score).sum()),
    }


def two_step_line(result: TwoStep, level: int, objectness: float, score: float,
                  max_boxes: int = MAX_BOXES) -> str:
    """:func:`two_step_counts` in one line of text."""
    c = two_step_counts(result, level, objectness, score, max_boxes)
    drawn = "" if c["drawn"] == c["selected"] else f", the {c['drawn']} best drawn"
    return (f"{_level_name(result, level)} x {result.anchors_per_location} anchors = "
            f"{c['anchors']} anchors: {c['filtered']} filtered by the ARM (background > "
            f"{result.filter_threshold:g}), {c['kept']} kept for the ODM; {c['selected']} with "
            f"p(object) ≥ {objectness:.2f}{drawn} · {c['detections']} detections with score ≥ "
            f"{score:.2f} (all levels)")


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)


def _draw_anchor_boxes(ax: Axes, boxes: np.ndarray, p_object: np.ndarray, norm: Normalize
                       ) -> None:
    """One thin ``Rectangle`` per box in its p(object) colour, with a dark edge so that it
    shows on any image; the most confident drawn last (on top)."""
    cmap, edge = colormaps[OBJECT_CMAP], [withStroke(linewidth=2.0, foreground="black")]
    for (x1, y1, x2, y2), p in zip(boxes[::-1], p_object[::-1]):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, edgecolor=to_hex(cmap(norm(p))),
                               facecolor="none", linewidth=1.0, path_effects=edge))


def draw_two_step(axes: Sequence[Axes], result: TwoStep, level: int, objectness: float = 0.5,
                  score: float = 0.3, max_boxes: int = MAX_BOXES,
                  fontsize: float = 7) -> dict[str, int]:
    """The three steps of one level on three axes.

    1. *default anchors*: the :func:`level_selection` default boxes, coloured by their ARM
       p(object) (one fixed 0..1 colour scale, bar below), over every anchor centre of the
       level (white dots);
    2. *ARM-refined*: the same anchors after the ARM's offsets; each location as a dot, grey
       when the ARM filtered all its A anchors (§3.2), green when it kept them all, half and
       half when it filtered some;
    3. *ODM detections*: the detections (all levels) with score >= ``score``, in class colours.

    Returns :func:`two_step_counts`.
    """
    ax_prior, ax_refined, ax_det = axes
    counts = two_step_counts(result, level, objectness, score, max_boxes)
    chosen = level_selection(result, level, objectness, max_boxes)
    norm = Normalize(0.0, 1.0)
    on = np.flatnonzero(result.level == level)  # rows of the level
    a = result.anchors_per_location
    centres = _centres(result.priors[on[::a]])  # (h w, 2): one per location
    kept_here = (~result.filtered[on]).reshape(-1, a)  # (h w, A)
    location_kind = kept_here.any(axis=1).astype(int) + kept_here.all(axis=1)  # (h w,) 0, 1, 2
    name = _level_name(result, level)
    dot = 3.5 + result.strides[level] / 16  # points: bigger dots for coarser levels
    nothing = f"no anchor with p(object) ≥ {objectness:.2f}"

    # 1. default anchors
    draw_canvas(ax_prior, image=result.picture)
    ax_prior.plot(centres[:, 0], centres[:, 1], "o", color=CENTRE_COLOR, markersize=0.7 * dot,
                  markeredgecolor="black", markeredgewidth=0.3, linestyle="none")
    _draw_anchor_boxes(ax_prior, result.priors[chosen], result.p_object[chosen], norm)
    ax_prior.set_title(f"1. default anchors · {name}\n{counts['drawn']} of "
                       f"{counts['anchors']} with p(object) ≥ {objectness:.2f}",
                       fontsize=fontsize + 1)
    bar = ax_prior.inset_axes([0.32, -0.075, 0.64, 0.035])
    colorbar = ax_prior.figure.colorbar(ScalarMappable(norm, OBJECT_CMAP), cax=bar,
                                        orientation="horizontal")
    colorbar.ax.tick_params(labelsize=fontsize, length=2, pad=1)
    ax_prior.text(0.3, -0.058, "ARM p(object)", transform=ax_prior.transAxes, ha="right",
                  va="center", fontsize=fontsize)

    # 2. ARM-refined anchors; each location's dot: grey = its anchors filtered, green = kept
    draw_canvas(ax_refined, image=result.picture)
    styles = {  # kind -> (label, face, alt face): all filtered, some, none
        0: ("all filtered", FILTERED_COLOR, FILTERED_COLOR),
        1: ("some filtered", KEPT_COLOR, FILTERED_COLOR),
        2: ("all kept", KEPT_COLOR, KEPT_COLOR),
    }
    handles = []
    for kind, (label, face, alt) in styles.items():
        at = location_kind == kind
        style = {"marker": "o", "markersize": dot, "markerfacecolor": face,
                 "markerfacecoloralt": alt, "fillstyle": "left", "markeredgecolor": "white",
                 "markeredgewidth": 0.4, "linestyle": "none"}
        ax_refined.plot(centres[at, 0], centres[at, 1], **style)
        handles.append(Line2D([], [], label=f"{label} ({int(at.sum())})",
                              **{**style, "markersize": 7}))
    _draw_anchor_boxes(ax_refined, result.refined[chosen], result.p_object[chosen], norm)
    ax_refined.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3,
                      fontsize=fontsize, handletextpad=0.1, columnspacing=0.6, frameon=False,
                      title=f"locations, by their {a} anchors", title_fontsize=fontsize)
    ax_refined.set_title(f"2. ARM-refined · {name}\n{counts['filtered']} anchors filtered "
                         f"(background > {result.filter_threshold:g}, §3.2), "
                         f"{counts['kept']} kept", fontsize=fontsize + 1)
    if not len(chosen):
        for ax in (ax_prior, ax_refined):
            ax.text(0.5, 0.5, nothing, transform=ax.transAxes, ha="center", va="center",
                    fontsize=fontsize, bbox={"facecolor": "white", "alpha": 0.8,
                                             "edgecolor": "none"})

    # 3. ODM detections
    det = result.detections
    keep = det["scores"] >= score
    draw_canvas(ax_det, image=result.picture)
    draw_boxes(ax_det, det["boxes"][keep], det["labels"][keep], det["scores"][keep],
               result.class_names, fontsize=fontsize)
    ax_det.set_title(f"3. ODM detections (all levels)\n{counts['detections']} with score ≥ "
                     f"{score:.2f}", fontsize=fontsize + 1)
    return counts


def two_step_explorer(detector: Detector, images: Sequence, class_names: Sequence[str],
                      image: int = 0, level: int = 0, objectness: float = 0.5,
                      score: float = 0.3, max_boxes: int = MAX_BOXES,
                      dpi: int = 100) -> WidgetPanel:
    """Look at RefineDet's two-step regression, one image and one level at a time.

    Args:
        detector: a two-step detector (RefineDet, RefineDetLite).
        images: ``(H, W, 3)`` uint8 images, letterboxed to the detector's input.
        class_names: K names, for the detections' tags.
        image, level, objectness, score: what the widget shows first.

    Controls: ``image`` (a slider over ``images``), ``level`` (a dropdown, "stride 8 (16 x
    16)"), ``objectness`` (the ARM p(object) of the anchors drawn) and ``score`` (of the
    detections drawn). The picture is :func:`draw_two_step`, the text :func:`two_step_line`.
    :func:`two_step` runs once per image (cached): moving a threshold only redraws.

    Returns the container; ``.update()`` redraws and returns ``{"image", "level",
    "objectness", "score", "result", "counts"}``.
    """
    if not len(images):
        raise ValueError("two_step_explorer needs at least one image")
    cache: dict[int, TwoStep] = {}

    def computed(index: int) -> TwoStep:
        if index not in cache:
            cache[index] = two_step(detector, images[index], class_names)
        return cache[index]

    first = computed(image)
    levels = [(f"stride {s:g} ({h} x {w})", k) for k, (s, (h, w))
              in enumerate(zip(first.strides, map(_hw, first.map_sizes)))]
    style, layout = {"description_width": "6em"}, widgets.Layout(width="22em")
    controls = {
        "image": widgets.IntSlider(value=image, min=0, max=len(images) - 1, description="image",
                                   continuous_update=False, style=style, layout=layout),
        "level": widgets.Dropdown(options=levels, value=level, description="level",
                                  style=style, layout=layout),
        "objectness": widgets.FloatSlider(value=objectness, min=0.01, max=0.99, step=0.01,
                                          description="p(object) ≥", continuous_update=False,
                                          style=style, layout=layout),
        "score": widgets.FloatSlider(value=score, min=0.05, max=0.95, step=0.01,
                                     description="score ≥", continuous_update=False,
                                     style=style, layout=layout),
    }
    text = widgets.HTML()
    picture = widgets.Image(format="png")
    fig = Figure(figsize=(12, 4.2), dpi=dpi)

    def update(change=None) -> dict:
        index, lvl = controls["image"].value, controls["level"].value
        obj, sc = controls["objectness"].value, controls["score"].value
        result = computed(index)
        fig.clear()
        axes = fig.subplots(1, 3)
        counts = draw_two_step(axes, result, lvl, obj, sc, max_boxes)
        fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.12, wspace=0.06)
        text.value = f"image {index}: {two_step_line(result, lvl, obj, sc, max_boxes)}"
        show_figure(picture, fig)
        return {"image": index, "level": lvl, "objectness": obj, "score": sc,
                "result": result, "counts": counts}

    for control in controls.values():
        control.observe(update, names="value")
    rows = [widgets.HBox([controls["image"], controls["level"]]),
            widgets.HBox([controls["objectness"], controls["score"]]), picture, text]
    ui = WidgetPanel("two-step-explorer", rows, picture, controls, update, fig, texts=[text])
    update()
    return ui


__all__ = [
    "TwoStep",
    "anchor_levels",
    "draw_two_step",
    "level_selection",
    "two_step",
    "two_step_counts",
    "two_step_explorer",
    "two_step_line",
]
