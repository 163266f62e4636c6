"""Matplotlib drawing of boxes on an axes: one class palette for every notebook.

Every box is ``xyxy`` in pixels, drawn in image coordinates: the origin is the top-left corner
and ``y`` grows downwards (:func:`draw_canvas` sets the axes up that way). Conventions used by
all notebooks, so that a picture reads the same everywhere:

* a class always has the same colour, :func:`class_color` (the colour-blind-safe Okabe-Ito
  palette, then matplotlib's ``tab10``);
* ground truth is dashed, predictions are solid with ``name score`` on a coloured tag;
* boxes removed by NMS are thin, grey and dotted.

Each function draws on the ``ax`` it is given and returns it; a box is one ``Rectangle`` patch,
a label is one text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from yolo_teach.utils import as_numpy

# Okabe & Ito (2008) colour-blind-safe colours (black left out: invisible on dark images),
# followed by tab10 colours that differ from them.
CLASS_COLORS = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#9467BD",  # purple (tab10)
    "#8C564B",  # brown (tab10)
    "#7F7F7F",  # grey (tab10)
)
SUPPRESSED_COLOR = "#9A9A9A"
CANVAS_COLOR = "#EDEDED"


def class_color(label: int) -> str:
    """The colour of class ``label`` (the palette repeats after ``len(CLASS_COLORS)`` classes)."""
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def draw_canvas(ax: Axes, size: tuple[int, int] | None = None, image=None,
                color: str = CANVAS_COLOR, ticks: bool = False) -> Axes:
    """Set ``ax`` up as an image of ``size = (width, height)`` pixels, origin at the top left.

    With ``image`` (``(H, W)`` or ``(H, W, 3)``, integers in [0, 255] or floats in [0, 1]) the
    image is shown and its shape gives the size; a 2-D image is drawn on that fixed grey scale
    (black is 0, white 255 or 1), not stretched to its own range. Without an image the canvas is a
    flat ``color``.
    """
    if image is not None:
        image = np.asarray(image)
        height, width = image.shape[:2]
        grey = {}
        if image.ndim == 2:  # a fixed grey scale, so that a dark image stays dark
            vmax = 255 if np.issubdtype(image.dtype, np.integer) else 1
            grey = {"cmap": "gray", "vmin": 0, "vmax": vmax}
        ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest", **grey)
    else:
        if size is None:
            raise ValueError("draw_canvas needs a size (width, height) or an image")
        width, height = size
        ax.set_facecolor(color)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, as in an image
    ax.set_aspect("equal")
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    return ax


def box_text(label: int | None, score: float | None,
             class_names: Sequence[str] | None = None) -> str:
    """The tag of a box: ``"name 0.87"``, ``"name"``, ``"0.87"`` or ``""``."""
    parts = []
    if label is not None:
        parts.append(class_names[int(label)] if class_names is not None else str(int(label)))
    if score is not None:
        parts.append(f"{float(score):.2f}")
    return " ".join(parts)


def draw_boxes(ax: Axes, boxes, labels=None, scores=None, class_names: Sequence[str] | None = None,
               *, color: str | None = None, linestyle: str = "-", linewidth: float = 1.5,
               alpha: float = 1.0, fill: bool = False, text: bool = True,
               fontsize: float = 7) -> Axes:
    """Draw ``xyxy`` boxes ``(N, 4)`` on ``ax``, one ``Rectangle`` patch each.

    Args:
        boxes: ``(N, 4)`` xyxy pixels (tensor, array or list).
        labels: ``(N,)`` class indices; they pick the colour (unless ``color`` is given) and the
            name in the tag.
        scores: ``(N,)`` confidences, written in the tag with two decimals.
        class_names: names for the tags; class indices are written without them.
        color: one colour for every box (overrides the class palette).
        fill: also fill each box with its colour at 15 % opacity.
        text: write the ``name score`` tag at the top-left corner of each box.
    """
    boxes = as_numpy(boxes).reshape(-1, 4)
    n = len(boxes)
    labels = None if labels is None else as_numpy(labels, np.int64).reshape(n)
    scores = None if scores is None else as_numpy(scores).reshape(n)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        c = color or (class_color(labels[i]) if labels is not None else CLASS_COLORS[0])
        rgb = to_rgb(c)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, edgecolor=(*rgb, alpha),
                               facecolor=(*rgb, 0.15 * alpha) if fill else "none",
                               linestyle=linestyle, linewidth=linewidth))
        tag = box_text(None if labels is None else labels[i],
                       None if scores is None else scores[i], class_names)
        if text and tag:
            ax.text(x1, y1, tag, fontsize=fontsize, color="white", va="bottom", ha="left",
                    alpha=alpha, clip_on=True,
                    bbox={"facecolor": c, "edgecolor": "none", "pad": 1.0, "alpha": 0.85 * alpha})
    return ax


def class_legend(ax: Axes, class_names: Sequence[str], loc: str = "upper right",
                 extra: Sequence[tuple[str, dict]] = (), fontsize: float = 7,
                 only: Sequence[int] | None = None) -> Axes:
    """A legend with one coloured line per class (or per class index in ``only``), plus
    ``extra`` ``(text, Line2D kwargs)`` entries (e.g. ``("ground truth", {"color": "k",
    "linestyle": "--"})``)."""
    handles = [Line2D([], [], color=class_color(k), linewidth=2, label=name)
               for k, name in enumerate(class_names) if only is None or k in only]
    handles += [Line2D([], [], label=text, **style) for text, style in extra]
    ax.legend(handles=handles, loc=loc, fontsize=fontsize, framealpha=0.85)
    return ax


def draw_nms_step(ax: Axes, boxes, scores, labels, steps: Sequence[tuple[int, np.ndarray]],
                  k: int, class_names: Sequence[str] | None = None) -> Axes:
    """The state of greedy NMS after step ``k`` (0-based) of ``steps``.

    ``steps`` is what :func:`yolo_teach.viz.widgets.greedy_nms_steps` returns: for each step the
    index of the box kept and the indices it suppressed. Drawn: boxes kept before this step
    (solid, class colour), the box kept now (thick), the boxes it removes now (red, dotted),
    boxes removed earlier (not drawn) and boxes still waiting (thin grey with their score).
    """
    boxes, scores = as_numpy(boxes).reshape(-1, 4), as_numpy(scores).reshape(-1)
    labels = as_numpy(labels, np.int64).reshape(-1)
    kept_before = [i for i, _ in steps[:k]]
    gone = set(int(j) for _, s in steps[: k + 1] for j in s)
    current, removed_now = steps[k][0], as_numpy(steps[k][1], np.int64)
    waiting = [i for i in range(len(boxes))
               if i not in gone and i not in kept_before and i != current]
    draw_boxes(ax, boxes[waiting], scores=scores[waiting], color=SUPPRESSED_COLOR, linewidth=0.8,
               fontsize=5)
    draw_boxes(ax, boxes[removed_now], color="#D62728", linestyle=":", linewidth=1.5, text=False)
    draw_boxes(ax, boxes[kept_before], labels[kept_before], scores[kept_before], class_names,
               linewidth=1.5, fontsize=5)
    draw_boxes(ax, boxes[[current]], labels[[current]], scores[[current]], class_names,
               linewidth=3, fill=True, fontsize=6)
    ax.set_title(f"step {k + 1}: keep {scores[current]:.2f}, remove {len(removed_now)}",
                 fontsize=8)
    return ax
