"""YOLOv1's grid view: responsible cells by hand, agreement with the loss, and the drawing."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.losses import one_object_per_cell  # noqa: E402
from yolo_teach.viz.grid_view import (  # noqa: E402
    LOST_COLOR,
    draw_cell_assignment,
    draw_grid,
    responsible_cells,
)

# 128 px, S = 4: cells of 32 px
BOXES = np.array([[10, 20, 50, 40],     # centre (30, 30): row 0, col 0
                  [40, 70, 60, 90],     # centre (50, 80): row 2, col 1
                  [36, 66, 62, 94],     # centre (49, 80): row 2, col 1 again -> lost
                  [100, 100, 128, 128],  # centre (114, 114): row 3, col 3
                  [0, 96, 64, 128]])    # centre (32, 112): on a border -> col 1, row 3
LABELS = np.array([0, 1, 2, 3, 4])


def test_responsible_cells_by_hand():
    cells = responsible_cells(BOXES, img_size=128, grid_size=4)
    assert cells.rows.tolist() == [0, 2, 2, 3, 3]
    assert cells.cols.tolist() == [0, 1, 1, 3, 1]
    assert cells.kept.tolist() == [True, True, False, True, True]  # the first box of a cell wins
    assert cells.num_lost == 1
    assert cells.centres[1].tolist() == [50.0, 80.0]


def test_responsible_cells_agree_with_the_loss():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 110, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 18, (60, 2))], 1)  # (60, 4), many collide
    cells = responsible_cells(boxes, img_size=128, grid_size=4)
    targets = torch.zeros(60, 6)
    targets[:, 1] = torch.arange(60).float()  # the class column carries each box's index
    targets[:, 2:] = torch.from_numpy(boxes).float()
    _, row, col, truth = one_object_per_cell(targets, img_size=128, grid_size=4)
    kept_by_loss = sorted(truth[:, 0].long().tolist())
    assert kept_by_loss == np.flatnonzero(cells.kept).tolist()
    index = truth[:, 0].long().numpy()
    assert cells.rows[index].tolist() == row.tolist() and cells.cols[index].tolist() == col.tolist()


def test_responsible_cells_of_no_boxes():
    cells = responsible_cells(np.zeros((0, 4)), img_size=128, grid_size=4)
    assert cells.kept.shape == (0,) and cells.num_lost == 0


def test_draw_cell_assignment_marks_the_lost_box():
    ax = Figure(figsize=(2, 2), dpi=50).add_subplot()
    image = np.zeros((128, 128, 3), np.uint8)
    cells = draw_cell_assignment(ax, image, BOXES, LABELS, grid_size=4, class_names=list("abcde"))
    assert cells.num_lost == 1
    # 4 filled cells, 4 learnt boxes, 1 lost box
    filled = [p for p in ax.patches if p.get_linewidth() == 0]
    dashed = [p for p in ax.patches if p.get_linestyle() == "--"]
    assert len(filled) == 4 and len(dashed) == 1
    assert len(ax.patches) == 4 + 5
    assert len(ax.lines) == 2 * 3 + 5  # 3 inner lines each way, one centre marker per box
    assert matplotlib.colors.same_color(dashed[0].get_edgecolor(), LOST_COLOR)


def test_draw_grid_lines_and_numbers():
    ax = Figure(figsize=(2, 2), dpi=50).add_subplot()
    draw_grid(ax, img_size=64, grid_size=2, numbers=True)
    assert [line.get_ydata()[0] for line in ax.lines[::2]] == [32.0]
    assert sorted(t.get_text() for t in ax.texts) == ["0,0", "0,1", "1,0", "1,1"]
