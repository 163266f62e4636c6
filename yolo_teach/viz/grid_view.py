"""YOLOv1's grid in pictures: the S x S cells, the cell responsible for each object, and the
objects that lose their cell to another one.

YOLOv1 §2 (Redmon et al. 2016): "If the center of an object falls into a grid cell, that grid
cell is responsible for detecting that object." A cell predicts one set of class probabilities,
so it can learn one object; the loss keeps the first object of each cell
(:func:`~yolo_teach.losses.yolov1_loss.one_object_per_cell`) and the others are not learnt at
all (§2.4: "Our model struggles with small objects that appear in groups").

Boxes are ``xyxy`` pixels of the square ``img_size`` network input; cells are ``(row, col)``
with row 0 at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from yolo_teach.utils import as_numpy
from yolo_teach.viz.draw import class_color, draw_boxes, draw_canvas

LOST_COLOR = "#D62728"


@dataclass(frozen=True)
class CellAssignment:
    """Which cell is responsible for each of ``N`` boxes, and whether the loss can learn it.

    Attributes:
        rows, cols: ``(N,)`` int64, the cell holding each box's centre.
        kept: ``(N,)`` bool, True for the first box of its cell (the one the loss learns).
        centres: ``(N, 2)`` float64 ``(c_x, c_y)`` pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    kept: np.ndarray
    centres: np.ndarray

    @property
    def num_lost(self) -> int:
        """Boxes whose cell already holds an earlier box."""
        return int(np.count_nonzero(~self.kept))


def responsible_cells(boxes, img_size: int, grid_size: int) -> CellAssignment:
    """The cell of each box's centre, ``floor(c / (img_size / S))``, and the first box per cell.

    A centre exactly on the right or bottom edge of the image belongs to the last cell, as in
    the loss. ``boxes (N, 4)`` xyxy pixels -> :class:`CellAssignment`.
    """
    boxes = as_numpy(boxes).reshape(-1, 4)  # (N, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)
    cell = np.clip(np.floor(centres / img_size * grid_size), 0, grid_size - 1).astype(np.int64)
    cols, rows = cell[:, 0], cell[:, 1]
    key = rows * grid_size + cols  # (N,) one id per cell
    _, first = np.unique(key, return_index=True)  # index of the first box of each used cell
    kept = np.zeros(len(boxes), dtype=bool)
    kept[first] = True
    return CellAssignment(rows, cols, kept, centres)


def draw_grid(ax: Axes, img_size: int, grid_size: int, color: str = "white",
              linewidth: float = 0.8, alpha: float = 0.8, numbers: bool = False,
              fontsize: float = 6) -> Axes:
    """Draw the ``S x S`` cell borders over an ``img_size`` image, optionally each cell's
    ``(row, col)`` in its top-left corner."""
    step = img_size / grid_size
    for k in range(1, grid_size):
        ax.axhline(k * step, color=color, linewidth=linewidth, alpha=alpha)
        ax.axvline(k * step, color=color, linewidth=linewidth, alpha=alpha)
    if numbers:
        for row in range(grid_size):
            for col in range(grid_size):
                ax.text(col * step + 1.5, row * step + 1.5, f"{row},{col}", color=color,
                        fontsize=fontsize, va="top", ha="left", alpha=alpha)
    return ax


def draw_cell_assignment(ax: Axes, image, boxes, labels, grid_size: int,
                         class_names: Sequence[str] | None = None,
                         grid_color: str = "white") -> CellAssignment:
    """An image with its grid, its boxes and the cell responsible for each box.

    The responsible cell of a learnt box is filled in the box's class colour and its centre is
    a dot; a box whose cell already holds an earlier box is drawn red and dashed with a cross at
    its centre: the loss never sees it.

    Args:
        image: ``(S_px, S_px, 3)`` network input (its side is ``img_size``).
        boxes: ``(N, 4)`` xyxy pixels; labels: ``(N,)`` class indices.

    Returns:
        the :func:`responsible_cells` of the boxes.
    """
    image = np.asarray(image)
    img_size = image.shape[0]
    boxes = as_numpy(boxes).reshape(-1, 4)
    labels = as_numpy(labels, np.int64).reshape(-1)
    cells = responsible_cells(boxes, img_size, grid_size)
    step = img_size / grid_size
    draw_canvas(ax, image=image)
    for row, col, label, kept in zip(cells.rows, cells.cols, labels, cells.kept):
        if kept:
            ax.add_patch(Rectangle((col * step, row * step), step, step, linewidth=0,
                                   facecolor=class_color(label), alpha=0.35))
    draw_grid(ax, img_size, grid_size, color=grid_color)
    kept = cells.kept
    draw_boxes(ax, boxes[kept], labels[kept], class_names=class_names, linewidth=1.2,
               fontsize=6)
    draw_boxes(ax, boxes[~kept], color=LOST_COLOR, linestyle="--", linewidth=1.2, text=False)
    for (cx, cy), label, k in zip(cells.centres, labels, kept):
        ax.plot(cx, cy, "o" if k else "x", color=class_color(label) if k else LOST_COLOR,
                markersize=4, markeredgecolor="white" if k else LOST_COLOR, markeredgewidth=0.6
                if k else 1.5)
    return cells
