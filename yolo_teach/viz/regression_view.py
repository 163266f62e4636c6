"""Pictures of the DIoU paper's regression simulation: error curves and one anchor's journey.

Zheng et al. 2020, "Distance-IoU Loss" (AAAI), §"Simulation Experiment": Figure 3(b) plots the
total regression error against the iteration for each loss; Figures 1 and 4 show a single anchor
moving towards its target. The numbers come from :mod:`yolo_teach.losses.regression_sim`; this
module only draws them. Colours are the IoU family's colours of :mod:`yolo_teach.viz.geometry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.patches import Circle, Rectangle

from yolo_teach.boxes import box_convert
from yolo_teach.losses.regression_sim import (
    ANCHOR_AREAS,
    ASPECT_RATIOS,
    REGRESSION_LOSSES,
    TARGET_CENTRE,
    box_size,
    error_per_point,
    regression_trajectories,
    simulation_points,
    simulation_targets,
)
from yolo_teach.viz.draw import as_numpy
from yolo_teach.viz.geometry import IOU_FAMILY_COLORS

LOSS_COLORS = {name: IOU_FAMILY_COLORS[name.lower()] for name in REGRESSION_LOSSES}
TARGET_COLOR = "#444444"  # not geometry's green ground truth: green is DIoU's colour here

# A teaching example: a 2:1 anchor below right of a unit square target, not touching it, so the
# IoU loss gives it no gradient at all (all four numbers are cx, cy, w, h).
EXAMPLE_TARGET_CXCYWH = (10.0, 10.0, 1.0, 1.0)
EXAMPLE_ANCHOR_CXCYWH = (11.8, 12.0, 1.41, 0.71)


def plot_simulation_setting(num_points: int = 50, radius: float = 3.0, seed: int = 0,
                            axes: Sequence[Axes] | None = None, *,
                            fontsize: float = 8) -> list[Axes]:
    """The setting of Algorithm 1 in two panels.

    Left: the seven targets (area 1, w:h from 1:4 to 4:1, all centred at (10, 10)) and the
    ``num_points`` anchor centres in the disc of ``radius`` (the same points as
    :func:`~yolo_teach.losses.regression_sim.simulation_boxes` with that ``seed``). Right: the 49
    anchor shapes placed at every one of those centres, 7 areas (rows) × 7 aspect ratios
    (columns), each drawn in its own slot of a table so that none hides another.
    """
    if axes is None:
        fig = plt.figure(figsize=(7.6, 3.5))
        axes = fig.subplots(1, 2)
    ax_targets, ax_shapes = axes
    for target in simulation_targets().numpy():  # (7, 4)
        _draw_box(ax_targets, target, TARGET_COLOR, 0.9, 1.2)
    ax_targets.add_patch(Circle(TARGET_CENTRE, radius, fill=False, linestyle=":",
                                edgecolor=TARGET_COLOR))
    points = simulation_points(num_points, radius, seed).numpy()  # (P, 2)
    ax_targets.scatter(points[:, 0], points[:, 1], s=6, color=LOSS_COLORS["IoU"], zorder=3)
    span = radius + 0.3
    ax_targets.set_xlim(TARGET_CENTRE[0] - span, TARGET_CENTRE[0] + span)
    ax_targets.set_ylim(TARGET_CENTRE[1] + span, TARGET_CENTRE[1] - span)  # image coordinates
    ax_targets.set_aspect("equal")
    ax_targets.set_title(f"7 targets and {num_points} anchor centres", fontsize=fontsize + 1)

    slot = 3.0  # wider than the longest side, √(2 · 4) ≈ 2.83 (area 2, ratio 4:1)
    for row, area in enumerate(ANCHOR_AREAS):
        for col, ratio in enumerate(ASPECT_RATIOS):
            w, h = box_size(area, ratio)
            cx, cy = col * slot, row * slot
            _draw_box(ax_shapes, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                      LOSS_COLORS["IoU"], 1.0, 1.0)
    ax_shapes.set_xticks([c * slot for c in range(len(ASPECT_RATIOS))],
                         [f"{r:.2g}" for r in ASPECT_RATIOS])
    ax_shapes.set_yticks([r * slot for r in range(len(ANCHOR_AREAS))],
                         [f"{a:g}" for a in ANCHOR_AREAS])
    ax_shapes.set_xlim(-slot / 2, (len(ASPECT_RATIOS) - 0.5) * slot)
    ax_shapes.set_ylim((len(ANCHOR_AREAS) - 0.5) * slot, -slot / 2)
    ax_shapes.set_aspect("equal")
    ax_shapes.set_xlabel("aspect ratio w / h", fontsize=fontsize)
    ax_shapes.set_ylabel("area", fontsize=fontsize)
    ax_shapes.set_title("49 anchor shapes at every centre", fontsize=fontsize + 1)
    for ax in axes:
        ax.tick_params(labelsize=fontsize - 1)
    return list(axes)


def plot_regression_errors(curves: Mapping[str, np.ndarray], ax: Axes | None = None, *,
                           log: bool = True, title: str = "total regression error",
                           fontsize: float = 8) -> Axes:
    """Error against iteration, one line per loss (the paper's Figure 3(b)).

    ``curves``: ``{name: (T,) error}``, e.g. from
    :func:`~yolo_teach.losses.regression_sim.compare_losses`. A log scale (``log=True``) keeps the
    stalled IoU curve and the converged ones readable on one axes. The legend gives ``E(T)``.
    """
    if ax is None:
        ax = plt.figure(figsize=(5, 3.2)).add_subplot()
    for name, curve in curves.items():
        curve = as_numpy(curve)
        t = np.arange(1, len(curve) + 1)
        ax.plot(t, curve, color=LOSS_COLORS.get(name), linewidth=1.8,
                label=f"{name}: E(T) = {curve[-1]:,.0f}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration t", fontsize=fontsize)
    ax.set_ylabel("Σ ‖B^t − B^gt‖₁ over all cases", fontsize=fontsize)
    ax.set_title(title, fontsize=fontsize + 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=fontsize)
    return ax


def _draw_box(ax: Axes, xyxy, color, alpha: float, linewidth: float, **kwargs) -> None:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                           edgecolor=(*to_rgb(color), alpha), linewidth=linewidth, **kwargs))


def draw_trajectory(ax: Axes, path_xyxy, target_xyxy, *, color: str = "#0072B2",
                    snapshots: Sequence[int] = (0, 10, 40, 100, 200), title: str = "",
                    limits: tuple[float, float, float, float] | None = None,
                    fontsize: float = 8) -> Axes:
    """One anchor's path: the target (grey, filled), the boxes at ``snapshots`` (darker is
    later, the anchor dashed) and the track of the centre, one dot per iteration.

    ``path_xyxy``: ``(T + 1, 4)`` boxes, row 0 the anchor (one value of
    :func:`~yolo_teach.losses.regression_sim.regression_trajectories`).
    """
    path = as_numpy(path_xyxy).reshape(-1, 4)  # (T + 1, 4)
    target = as_numpy(target_xyxy).reshape(4)
    ax.add_patch(Rectangle((target[0], target[1]), target[2] - target[0], target[3] - target[1],
                           facecolor=(*to_rgb(TARGET_COLOR), .2), edgecolor=TARGET_COLOR,
                           linewidth=2))
    shown = [t for t in snapshots if t < len(path)]
    for i, t in enumerate(shown):
        alpha = 0.35 + 0.65 * i / max(len(shown) - 1, 1)
        _draw_box(ax, path[t], color, alpha, 1.8 if t == shown[-1] else 1.0,
                  linestyle="--" if t == 0 else "-")
    centres = box_convert(path, "xyxy", "cxcywh")[:, :2]  # (T + 1, 2)
    ax.plot(centres[:, 0], centres[:, 1], color=color, linewidth=1.0, marker=".", markersize=2)
    if shown and shown[0] == 0:
        ax.annotate("anchor", (path[0, 0], path[0, 3]), fontsize=fontsize - 1, color=color,
                    xytext=(0, 2), textcoords="offset points", va="top")
    if limits is None:
        every = np.concatenate([path[shown], target[None]])  # (S + 1, 4)
        lo, hi = every[:, :2].min(0) - 0.3, every[:, 2:].max(0) + 0.3
        limits = (lo[0], lo[1], hi[0], hi[1])
    ax.set_xlim(limits[0], limits[2])
    ax.set_ylim(limits[3], limits[1])  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=fontsize + 1)
    ax.tick_params(labelsize=fontsize - 1)
    return ax


def plot_regression_example(anchor_cxcywh=EXAMPLE_ANCHOR_CXCYWH,
                            target_cxcywh=EXAMPLE_TARGET_CXCYWH, *,
                            iterations: int = 200,
                            snapshots: Sequence[int] = (0, 10, 40, 100, 200),
                            axes: Sequence[Axes] | None = None, fontsize: float = 8,
                            **kwargs) -> list[Axes]:
    """The same anchor regressed with each of the four losses, side by side (paper Figures 1, 4).

    Anchor and target are given as ``(cx, cy, w, h)`` (easier to read in a notebook); ``kwargs``
    go to :func:`~yolo_teach.losses.regression_sim.simulate_regression`. The default anchor does
    not touch the target: under the IoU loss it never moves. Each title gives the final IoU.
    All panels share one view so the paths compare at a glance; the boxes drawn are those at
    ``snapshots`` (darker is later).
    """
    anchor = box_convert(np.asarray(anchor_cxcywh, np.float64), "cxcywh", "xyxy")
    target = box_convert(np.asarray(target_cxcywh, np.float64), "cxcywh", "xyxy")
    paths = {k: v.numpy() for k, v in regression_trajectories(
        anchor, target, iterations=iterations, **kwargs).items()}  # {name: (T + 1, 4)}
    if axes is None:
        fig = plt.figure(figsize=(2.6 * len(paths), 2.9))
        axes = fig.subplots(1, len(paths), sharex=True, sharey=True)
    shown = [t for t in snapshots if t <= iterations]
    every = np.concatenate([p[shown] for p in paths.values()] + [target[None]])  # (·, 4)
    lo, hi = every[:, :2].min(0) - 0.3, every[:, 2:].max(0) + 0.3
    for ax, (name, path) in zip(axes, paths.items()):
        last = path[-1]
        ix = max(0.0, min(last[2], target[2]) - max(last[0], target[0]))
        iy = max(0.0, min(last[3], target[3]) - max(last[1], target[1]))
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
        iou = ix * iy / (area(last) + area(target) - ix * iy)
        draw_trajectory(ax, path, target, color=LOSS_COLORS.get(name, "#0072B2"),
                        snapshots=shown, title=f"{name} loss: IoU at t={iterations} = {iou:.2f}",
                        limits=(lo[0], lo[1], hi[0], hi[1]), fontsize=fontsize)
    return list(axes)


def plot_final_error_map(final_error, num_points: int, radius: float = 3.0, seed: int = 0,
                         ax: Axes | None = None, *, title: str = "", vmax: float | None = None,
                         fontsize: float = 8) -> Axes:
    """Total final error of the 343 cases at each anchor centre, as coloured dots (the paper's
    Figure 3(a), seen from above). ``final_error``: the ``(343 P,)`` ``final_error`` of a
    :class:`~yolo_teach.losses.regression_sim.RegressionRun`; ``num_points``, ``radius`` and
    ``seed`` must be the ones that built its boxes (they place the dots)."""
    if ax is None:
        ax = plt.figure(figsize=(3.4, 3)).add_subplot()
    points = simulation_points(num_points, radius, seed).numpy()  # (P, 2)
    per_point = error_per_point(final_error, num_points)  # (P,)
    dots = ax.scatter(points[:, 0], points[:, 1], c=per_point, s=8, cmap="viridis", vmin=0,
                      vmax=vmax)
    ax.plot([10], [10], marker="+", color="k", markersize=10)
    ax.figure.colorbar(dots, ax=ax, shrink=0.8).ax.tick_params(labelsize=fontsize - 1)
    ax.set_aspect("equal")
    ax.set_ylim(10 + radius + 0.2, 10 - radius - 0.2)  # image coordinates
    ax.set_title(title, fontsize=fontsize + 1)
    ax.tick_params(labelsize=fontsize - 1)
    return ax
