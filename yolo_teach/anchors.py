"""Anchor boxes: k-means with the 1 − IoU distance, unit conversions, and how to judge anchors.

The official priors are facts of each model, declared in its file
(:class:`yolo_teach.registry.AnchorSet`, e.g. ``yolo_teach.models.yolov3.ANCHORS``).

YOLOv2 §"Dimension Clusters" replaces hand-picked priors by k-means on the training boxes' widths
and heights, with a distance that does not favour big boxes:

.. math:: d(\\text{box}, \\text{centroid}) = 1 - \\text{IoU}(\\text{box}, \\text{centroid})

where both boxes share one centre, so the IoU only depends on the ``(w, h)`` pairs
(:func:`wh_iou`). YOLOv3 §2.3 keeps the idea with 9 clusters, 3 per output scale.

Units. An anchor is a ``(w, h)`` pair, but the cfg files do not agree on the unit:

- YOLOv2 cfgs give anchors in *grid cells* of the stride-32 output (``1.3221`` cells is
  ``1.3221 * 32 = 42.3`` px at any input size);
- YOLOv3/v4 cfgs give anchors in *pixels* of the network input (416 for YOLOv3, 608 for
  ``yolov4.cfg``); each scale divides by its own stride (8, 16, 32) to get cells.

:func:`anchors_to_grid` and :func:`anchors_to_pixels` convert between the two.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
def anchors_to_grid(anchors_px, stride) -> np.ndarray:
    """Pixels -> grid cells: :math:`(w, h) / \\text{stride}`.

    ``stride`` is a number, or one value per anchor shaped ``(A, 1)`` (e.g. YOLOv3's 9 anchors
    with strides ``8, 8, 8, 16, 16, 16, 32, 32, 32``). Example: YOLOv3's ``(116, 90)`` px at
    stride 32 is ``(3.625, 2.8125)`` cells of the 13 x 13 map. ``(A, 2) -> (A, 2)``.
    """
    return np.asarray(anchors_px, dtype=np.float64) / np.asarray(stride, dtype=np.float64)


def anchors_to_pixels(anchors_grid, stride) -> np.ndarray:
    """Grid cells -> pixels: :math:`(w, h) \\cdot \\text{stride}`.

    Example: YOLOv2's first VOC anchor ``(1.3221, 1.73145)`` cells at stride 32 is
    ``(42.31, 55.41)`` px. ``(A, 2) -> (A, 2)``.
    """
    return np.asarray(anchors_grid, dtype=np.float64) * np.asarray(stride, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# IoU of (w, h) pairs and anchor quality
# --------------------------------------------------------------------------------------------
def wh_iou(wh1, wh2) -> np.ndarray:
    """Pairwise IoU of boxes given by ``(w, h)`` only, all centred at the same point.

    .. math:: \\text{IoU} = \\frac{\\min(w_1, w_2)\\min(h_1, h_2)}
                                  {w_1 h_1 + w_2 h_2 - \\min(w_1, w_2)\\min(h_1, h_2)}

    Args:
        wh1: ``(N, 2)`` widths and heights.
        wh2: ``(M, 2)`` widths and heights (same unit).

    Returns:
        ``(N, M)`` float64 IoU.
    """
    wh1 = np.asarray(wh1, dtype=np.float64).reshape(-1, 2)[:, None, :]  # (N, 1, 2)
    wh2 = np.asarray(wh2, dtype=np.float64).reshape(-1, 2)[None, :, :]  # (1, M, 2)
    inter = np.minimum(wh1, wh2).prod(-1)  # (N, M)
    union = wh1.prod(-1) + wh2.prod(-1) - inter  # (N, M)
    return inter / np.maximum(union, 1e-12)


def anchor_fitness(wh, anchors, threshold: float = 0.0) -> float:
    """Mean over boxes of the best anchor IoU, the "Avg IOU" of YOLOv2 Table 1.

    .. math:: F = \\frac{1}{N}\\sum_i b_i\\,[b_i \\ge t], \\qquad b_i = \\max_j
              \\text{IoU}(\\text{box}_i, \\text{anchor}_j)

    With ``threshold`` ``t = 0`` this is exactly the k-means objective (YOLOv2 reports 61.0 for 5
    cluster priors vs 60.9 for 9 hand-picked ones on VOC). A ``t > 0`` gives boxes no anchor can
    be assigned to no credit, as YOLOv5's ``anchor_fitness`` does.

    # NOTE(paper): YOLOv5 measures the fit with a ratio metric, ``min(w/w_a, w_a/w, h/h_a,
    # h_a/h)``, because its loss bounds the w/h ratio to 4; we use IoU, the paper's distance.
    """
    best = wh_iou(wh, anchors).max(1)  # (N,)
    return float(np.mean(np.where(best >= threshold, best, 0.0)))


def best_possible_recall(wh, anchors, threshold: float = 0.213) -> float:
    """Fraction of boxes that have at least one anchor with :math:`\\text{IoU} > t`.

    YOLOv4 assigns a ground truth to every anchor with IoU(truth, anchor) > IoU_threshold
    (§4.1: threshold 0.213, found by the genetic search). A box below the threshold for every
    anchor can only be learned through its single best anchor; a BPR well below 1 says the
    anchors do not fit the data.
    """
    best = wh_iou(wh, anchors).max(1)  # (N,)
    return float(np.mean(best > threshold))


# --------------------------------------------------------------------------------------------
# k-means with the 1 - IoU distance
# --------------------------------------------------------------------------------------------
def _kmeanspp_init(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with :math:`d = 1 - \\text{IoU}`.

    First centroid uniform, each next one drawn with probability proportional to
    :math:`d(x)^2`, the distance to the nearest centroid chosen so far. ``(N, 2) -> (k, 2)``.
    """
    centroids = [wh[rng.integers(len(wh))]]
    d = 1 - wh_iou(wh, centroids[0])[:, 0]  # (N,)
    for _ in range(1, k):
        weights = d**2
        total = weights.sum()
        p = weights / total if total > 0 else np.full(len(wh), 1 / len(wh))
        centroid = wh[rng.choice(len(wh), p=p)]
        centroids.append(centroid)
        d = np.minimum(d, 1 - wh_iou(wh, centroid)[:, 0])
    return np.stack(centroids)  # (k, 2)


def _lloyd(wh: np.ndarray, centroids: np.ndarray, iters: int, statistic: Callable) -> np.ndarray:
    """Alternate assignment (highest IoU = smallest 1 − IoU) and centroid update until stable."""
    centroids = centroids.copy()
    for _ in range(iters):
        assign = wh_iou(wh, centroids).argmax(1)  # (N,)
        updated = centroids.copy()
        for j in range(len(centroids)):
            members = wh[assign == j]
            if len(members):
                updated[j] = statistic(members, axis=0)
            else:  # empty cluster: restart it at the box the others fit worst
                updated[j] = wh[wh_iou(wh, updated).max(1).argmin()]
        if np.allclose(updated, centroids, rtol=1e-9, atol=0):
            return updated
        centroids = updated
    return centroids


def kmeans_anchors(
    wh,
    k: int = 9,
    seed: int = 0,
    iters: int = 300,
    n_init: int = 3,
    statistic: Callable = np.median,
) -> np.ndarray:
    """Cluster box sizes into ``k`` anchors with k-means and the 1 − IoU distance (YOLOv2).

    Steps: drop boxes with a non-positive side; ``n_init`` times, seed with k-means++
    (:math:`P(x) \\propto d(x)^2`) and run Lloyd iterations (assign each box to the centroid of
    highest IoU, move each centroid to the ``statistic`` of its boxes); keep the run with the best
    :func:`anchor_fitness`; sort by area.

    The update uses the **median** by default. With :math:`d = 1 - \\text{IoU}` no closed form
    gives the optimal centroid (the mean minimises squared *Euclidean* distance, not this one);
    the per-axis median is robust to the long tail of huge boxes that real datasets have, and is
    what the widely used darknet-era k-means scripts do. Pass ``statistic=np.mean`` to compare.

    Args:
        wh: ``(N, 2)`` box widths and heights (pixels or cells; anchors come out in that unit).
        k: number of anchors (YOLOv2: 5, YOLOv3: 9, tiny: 6).
        seed: seed of ``np.random.default_rng``; same seed and data, same anchors.
        iters: maximum Lloyd iterations per run.
        n_init: number of seeded runs.
        statistic: ``f(members (n, 2), axis=0) -> (2,)`` centroid update.

    Returns:
        ``(k, 2)`` float64 anchors sorted by area ``w h``.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(1) & np.isfinite(wh).all(1)]
    if len(wh) < k:
        raise ValueError(f"need at least k={k} boxes with positive sides, got {len(wh)}")
    rng = np.random.default_rng(seed)
    best, best_fitness = None, -1.0
    for _ in range(n_init):
        centroids = _lloyd(wh, _kmeanspp_init(wh, k, rng), iters, statistic)
        fitness = anchor_fitness(wh, centroids)
        if fitness > best_fitness:
            best, best_fitness = centroids, fitness
    return best[np.argsort(best.prod(1), kind="stable")]


# --------------------------------------------------------------------------------------------
# AutoAnchor (YOLOv5): check the anchors against the data, re-fit them when they do not fit
# --------------------------------------------------------------------------------------------
def ratio_recall(wh, anchors, anchor_t: float = 4.0) -> float:
    """YOLOv5's best possible recall: the fraction of boxes that some anchor can learn.

    A box can be assigned to an anchor when neither side differs by more than ``anchor_t``
    (:class:`~yolo_teach.losses.assign.NeighbourCellAssigner`), so with
    :math:`x_{ij} = \\min(w_i/w_j, w_j/w_i, h_i/h_j, h_j/h_i)` the recall is the fraction of boxes
    with :math:`\\max_j x_{ij} > 1/\\text{anchor\\_t}` (utils/autoanchor.py ``metric``).
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 1, 2)
    r = wh / np.asarray(anchors, dtype=np.float64).reshape(1, -1, 2)  # (N, A, 2)
    x = np.minimum(r, 1 / r).min(2)  # (N, A): the worse side's ratio
    return float(np.mean(x.max(1) > 1 / anchor_t))


def autoanchor(wh, anchors, anchor_t: float = 4.0, threshold: float = 0.98,
               seed: int = 0) -> dict:
    """YOLOv5's AutoAnchor: keep ``anchors`` if :func:`ratio_recall` reaches ``threshold``,
    otherwise cluster ``len(anchors)`` new ones and keep whichever set recalls more.

    Returns ``{"anchors": (A, 2) array, "recall_before", "recall_after", "refit": bool}``.

    # NOTE(paper): YOLOv5 re-fits with Euclidean k-means on whitened sizes followed by a genetic
    # search on its ratio fitness; we cluster with the 1 - IoU k-means of YOLOv2
    # (:func:`kmeans_anchors`), the one this course teaches.
    """
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    before = ratio_recall(wh, anchors, anchor_t)
    result = {"anchors": anchors, "recall_before": before, "recall_after": before,
              "refit": False}
    if before >= threshold:
        return result
    fitted = kmeans_anchors(wh, k=len(anchors), seed=seed)
    after = ratio_recall(wh, fitted, anchor_t)
    if after > before:
        result.update(anchors=fitted, recall_after=after, refit=True)
    return result
