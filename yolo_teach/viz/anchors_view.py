"""Box sizes and k-means anchors in pictures: the (w, h) scatter, mean IoU against k, anchor shapes.

YOLOv2 §"Dimension Clusters" (Redmon & Farhadi 2017, Figure 2) clusters the training boxes'
widths and heights with the distance ``1 - IoU`` and plots the average IoU of each box with its
closest centroid against the number of clusters ``k``, next to the centroids drawn as boxes.
This module computes those numbers with :mod:`yolo_teach.anchors` and draws them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes

from yolo_teach.anchors import anchor_fitness, kmeans_anchors
from yolo_teach.metrics import COCO_AREA_RANGES
from yolo_teach.viz.draw import class_color, draw_boxes, draw_canvas

SIZE_BUCKETS = ("small", "medium", "large")


def box_sizes(dataset) -> np.ndarray:
    """Widths and heights of every box of a dataset. ``boxes`` lists of ``(N_i, 4)`` xyxy ->
    ``(sum N_i, 2)`` float64 ``(w, h)`` in pixels."""
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in dataset.boxes]
    xyxy = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    return xyxy[:, 2:] - xyxy[:, :2]  # (N, 2)


def size_bucket_counts(wh) -> dict[str, int]:
    """How many boxes fall in each COCO size bucket, by box area ``w h`` in px².

    COCO (Lin et al. 2014): small ``< 32²``, medium ``32²`` to ``96²``, large ``>= 96²``
    (``yolo_teach.metrics.COCO_AREA_RANGES``). Intervals are half-open ``[lo, hi)`` so that
    every box is counted once. ``(N, 2) -> {"small": n_s, "medium": n_m, "large": n_l}``.
    """
    area = np.asarray(wh, np.float64).reshape(-1, 2).prod(1)  # (N,)
    counts = {}
    for name in SIZE_BUCKETS:
        lo, hi = COCO_AREA_RANGES[name]
        counts[name] = int(np.count_nonzero((area >= lo) & (area < hi)))
    return counts


def fitness_by_k(wh, ks: Iterable[int] = range(1, 10), seed: int = 0
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """k-means anchors and their mean best IoU for each ``k`` (YOLOv2 Figure 2, left).

    Returns:
        ``(anchors, fitness)``: a list with the ``(k, 2)`` anchors of each ``k`` (sorted by
        area, :func:`kmeans_anchors`) and the ``(len(ks),)`` :func:`anchor_fitness` values.
    """
    anchors = [kmeans_anchors(wh, k=int(k), seed=seed) for k in ks]
    return anchors, np.array([anchor_fitness(wh, a) for a in anchors])


def draw_wh_scatter(ax: Axes, wh, anchors=None, labels=None, reference=None,
                    reference_name: str = "reference", max_points: int = 2000,
                    seed: int = 0) -> Axes:
    """Box widths against heights, with anchors on top.

    Args:
        wh: ``(N, 2)`` box sizes in pixels; at most ``max_points`` are drawn (a seeded random
            subset), small dots in the class colour when ``labels (N,)`` are given.
        anchors: ``(A, 2)`` drawn as black crosses, e.g. from :func:`kmeans_anchors`.
        reference: ``(R, 2)`` other anchors (e.g. YOLOv3's, rescaled) drawn as open squares.
    The dotted curves ``w h = 32²`` and ``w h = 96²`` separate COCO's small, medium and large.
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    show = np.arange(len(wh))
    if len(wh) > max_points:
        show = np.sort(np.random.default_rng(seed).choice(len(wh), max_points, replace=False))
    colors = "#7F7F7F" if labels is None else [class_color(k) for k in np.asarray(labels)[show]]
    ax.scatter(wh[show, 0], wh[show, 1], s=4, c=colors, alpha=0.5, linewidths=0)
    top = max(float(wh.max(initial=1.0)), 1.0) * 1.05
    w = np.linspace(1, top, 200)
    for side in (32, 96):
        ax.plot(w, side**2 / w, ":", color="#555555", linewidth=0.8)
        ax.text(side, side, f" {side}²", fontsize=7, color="#555555")
    if reference is not None:
        r = np.asarray(reference, np.float64).reshape(-1, 2)
        ax.scatter(r[:, 0], r[:, 1], s=40, marker="s", facecolors="none", edgecolors="#D55E00",
                   linewidths=1.5, label=reference_name)  # fmt: skip
    if anchors is not None:
        a = np.asarray(anchors, np.float64).reshape(-1, 2)
        ax.scatter(a[:, 0], a[:, 1], s=60, marker="x", color="black", linewidths=2,
                   label=f"k-means, k = {len(a)}")  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("box width (px)")
    ax.set_ylabel("box height (px)")
    if anchors is not None or reference is not None:
        ax.legend(fontsize=7, loc="upper left")
    return ax


def draw_fitness_curve(ax: Axes, ks: Sequence[int], fitness, reference: dict | None = None
                       ) -> Axes:
    """Mean best IoU against the number of anchors ``k`` (YOLOv2 Figure 2, left).

    ``reference`` maps a name to ``(k, fitness)`` points drawn as labelled markers (e.g. the
    official YOLOv3 anchors).
    """
    ax.plot(list(ks), fitness, "o-", color="#0072B2", label="k-means (1 − IoU)")
    for (name, (k, value)), marker in zip((reference or {}).items(), "sD^v"):
        ax.plot([k], [value], marker, color="#D55E00", label=name)
    ax.set_xlabel("number of anchors k")
    ax.set_ylabel("mean IoU with the best anchor")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def draw_anchor_shapes(ax: Axes, anchors, size: int, color: str | None = None,
                       linestyle: str = "-") -> Axes:
    """Anchors as boxes centred on a ``size x size`` canvas (YOLOv2 Figure 2, right).

    ``anchors (A, 2)`` are ``(w, h)`` in pixels; each becomes the ``xyxy`` box
    ``(S/2 - w/2, S/2 - h/2, S/2 + w/2, S/2 + h/2)`` drawn with :func:`draw_boxes`.
    """
    wh = np.asarray(anchors, np.float64).reshape(-1, 2)
    centre = size / 2
    xyxy = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)  # (A, 4)
    draw_canvas(ax, (size, size))  # harmless when called again to overlay a second set
    labels = None if color is not None else np.arange(len(wh))
    draw_boxes(ax, xyxy, labels, color=color, linestyle=linestyle, linewidth=1.2, text=False)
    return ax
