"""Target assignment by hand: which anchor, which cells, which ground truth (losses/assign.py)."""

import pytest
import torch

from yolo_teach.losses import (
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    describe_assignment,
)

# a 640 x 416 image (W x H): stride 8 -> 80 x 52 cells, stride 32 -> 20 x 13 cells
STRIDES = (8, 32)
GRIDS = [(52, 80), (13, 20)]  # (H, W)
ANCHORS = [torch.tensor([[10.0, 10], [20, 40]]), torch.tensor([[100.0, 100], [200, 100]])]


def box_at(centre_in_cells, size=40.0, stride=32, b=0, label=0):
    """A target row ``[b, class, x1, y1, x2, y2]``: a size x size box centred at a cell position."""
    cx, cy = centre_in_cells[0] * stride, centre_in_cells[1] * stride
    return [b, label, cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_single_anchor_two_images_two_scales():
    targets = torch.tensor([
        [0, 3, 100, 100, 200, 200],  # 100x100: anchor (100, 100) of stride 32, IoU 1
        [1, 5, 8, 16, 18, 56],  # 10x40: (20, 40) IoU 400/800 = .5 beats (10, 10) 100/400 = .25
    ], dtype=torch.float32)
    asg = SingleAnchorAssigner()(targets, ANCHORS, STRIDES, GRIDS)
    # centres: (150, 150) / 32 = (4.69, 4.69) -> cell (4, 4); (13, 36) / 8 = (1.6, 4.5) -> (4, 1)
    assert describe_assignment(asg) == [(1, 0, 4, 4, 0), (0, 1, 4, 1, 1)]
    small, large = asg
    assert small.b.tolist() == [1] and small.labels.tolist() == [5]
    assert small.gt_index.tolist() == [1] and small.boxes.tolist() == [[8, 16, 18, 56]]
    assert large.b.tolist() == [0] and large.labels.tolist() == [3] and large.a.tolist() == [0]
    for field in (large.b, large.a, large.gy, large.gx, large.gt_index, large.labels):
        assert field.dtype == torch.int64


def test_single_anchor_ignores_the_predictions():
    targets = torch.tensor([box_at((4.5, 4.5), size=100)])
    without = SingleAnchorAssigner()(targets, ANCHORS, STRIDES, GRIDS)
    with_maps = SingleAnchorAssigner()(targets, ANCHORS, STRIDES, GRIDS,
                                       predictions=[torch.ones(1, 2, 52, 80, 6)] * 2)
    assert describe_assignment(without) == describe_assignment(with_maps) == [(1, 0, 4, 4, 0)]


def test_centres_outside_the_map_go_to_the_border_cells():
    targets = torch.tensor([
        [0, 0, 620, 400, 660, 432],  # hangs over the corner: centre (640, 416) / 32 = (20, 13)
        [0, 0, -20, -30, 10, 10],  # centre (-5, -10) / 32: cell (-1, -1)
    ])
    asg = SingleAnchorAssigner()(targets, ANCHORS[1:], (32,), [(13, 20)])
    assert describe_assignment(asg) == [(0, 0, 12, 19, 0), (0, 0, 0, 0, 1)]  # clamped into 13x20


def test_multi_anchor_threshold_is_strict_and_the_best_anchor_always_counts():
    anchors = [torch.tensor([[100.0, 100], [50, 50], [45, 45]])]
    # a 100x100 box: shape IoU 1, 2500/10000 = 0.25 and 2025/10000 = 0.2025;
    # a 10x10 box: 100/10000, 100/2500 = 0.04 and 100/2025 = 0.049 (anchor 2 is its best)
    targets = torch.tensor([box_at((4.5, 4.5), size=100), box_at((10.5, 2.5), size=10)])

    def pairs(assigner):
        return [(a, g) for _, a, _, _, g in describe_assignment(
            assigner(targets, anchors, (32,), [(13, 20)]))]

    assert pairs(MultiAnchorAssigner()) == [(0, 0), (1, 0), (2, 1)]  # 0.25 > 0.213 > 0.2025
    assert pairs(MultiAnchorAssigner(iou_threshold=0.25)) == [(0, 0), (2, 1)]  # 0.25 is not > 0.25
    assert pairs(MultiAnchorAssigner(iou_threshold=0.2)) == [(0, 0), (1, 0), (2, 0), (2, 1)]
    asg = MultiAnchorAssigner()(targets, anchors, (32,), [(13, 20)])
    assert asg[0].gy.tolist() == [4, 4, 2] and asg[0].gx.tolist() == [4, 4, 10]


def test_multi_anchor_spreads_over_scales():
    # 100x100 box: (100, 100) IoU 1 and (200, 100) 0.5 at stride 32; at stride 8, (20, 40) IoU
    # 800/10000 = 0.08 and (10, 10) 0.01 stay under 0.213
    targets = torch.tensor([box_at((3.5, 6.5), size=100, b=2, label=4)])
    asg = MultiAnchorAssigner()(targets, ANCHORS, STRIDES, GRIDS)
    assert describe_assignment(asg) == [(1, 0, 6, 3, 0), (1, 1, 6, 3, 0)]
    assert [len(a) for a in asg] == [0, 2]
    assert asg[1].b.tolist() == [2, 2] and asg[1].labels.tolist() == [4, 4]


@pytest.mark.parametrize(("anchor", "matches"), [
    ((31.0, 40.0), True),  # 120 / 31 = 3.87 < 4
    ((29.0, 40.0), False),  # 120 / 29 = 4.14: not < 4 (the default anchor_t)
    ((120.0, 41.0), True),  # 41 / 40 = 1.03
    ((120.0, 170.0), False),  # the anchor is the larger one: 170 / 40 = 4.25
    ((480.0, 40.0), False),  # 480 / 120 = 4 exactly: not < 4
])
def test_neighbour_cells_match_anchors_by_side_ratio(anchor, matches):
    targets = torch.tensor([[0, 0, 100, 100, 220, 140]])  # 120 x 40
    asg = NeighbourCellAssigner()(targets, [torch.tensor([anchor])], (32,), [(13, 20)])
    assert (len(asg[0]) > 0) == matches


@pytest.mark.parametrize(("centre", "cells"), [
    # (cx, cy) in cells of a 20 x 13 map -> centre cell, the x neighbour, the y neighbour (gy, gx)
    ((1.3, 4.7), {(4, 1), (4, 0), (5, 1)}),  # left half -> column 0, still on the map
    ((6.6, 1.2), {(1, 6), (1, 7), (0, 6)}),  # upper half -> row 0, still on the map
    ((0.3, 0.3), {(0, 0)}),  # column -1 and row -1 are off the map
    ((18.7, 11.7), {(11, 18), (11, 19), (12, 18)}),  # the last column and row are on it
    ((19.7, 12.7), {(12, 19)}),  # column 20 and row 13 are not
    ((5.5, 4.5), {(4, 5)}),  # exactly in the middle: no nearer neighbour
])
def test_neighbour_cells_at_the_borders(centre, cells):
    asg = NeighbourCellAssigner()(torch.tensor([box_at(centre)]), [torch.tensor([[40.0, 40]])],
                                  (32,), [(13, 20)])
    described = describe_assignment(asg)
    assert {(gy, gx) for _, _, gy, gx, _ in described} == cells and len(described) == len(cells)


def test_neighbour_cells_repeat_gt_and_anchor_for_each_cell():
    anchors = [torch.tensor([[40.0, 40], [60, 60], [500, 500]])]  # 500 / 40 > 4: no match
    targets = torch.tensor([box_at((2.2, 3.2), b=1, label=6), box_at((9.8, 7.5), b=0, label=2)])
    asg = NeighbourCellAssigner()(targets, anchors, (32,), [(13, 20)])[0]
    # target 0: left and upper neighbours, for anchors 0 and 1; target 1: right neighbour only
    assert describe_assignment([asg]) == [
        (0, 0, 2, 2, 0), (0, 0, 3, 1, 0), (0, 0, 3, 2, 0),
        (0, 1, 2, 2, 0), (0, 1, 3, 1, 0), (0, 1, 3, 2, 0),
        (0, 0, 7, 9, 1), (0, 0, 7, 10, 1), (0, 1, 7, 9, 1), (0, 1, 7, 10, 1)]
    rows = sorted(zip(asg.gt_index.tolist(), asg.b.tolist(), asg.labels.tolist()))
    assert rows == [(0, 1, 6)] * 6 + [(1, 0, 2)] * 4
    assert all(box == targets[g, 2:].tolist() for g, box in zip(asg.gt_index, asg.boxes.tolist()))


def test_neighbour_cells_per_scale():
    # a 40 x 40 box matches (20, 40) at stride 8 (ratios 2, 1) and (100, 100) at stride 32
    # (2.5); (10, 10) and (200, 100) are 4 and 5 times off
    targets = torch.tensor([box_at((5.25, 2.75))])  # (168, 88) px
    asg = NeighbourCellAssigner()(targets, ANCHORS, STRIDES, GRIDS)
    # stride 8: (21.0, 11.0): on the left and top edges -> column 20 and row 10;
    # stride 32: (5.25, 2.75): left, lower
    assert describe_assignment(asg) == [(0, 1, 10, 21, 0), (0, 1, 11, 20, 0), (0, 1, 11, 21, 0),
                                        (1, 0, 2, 4, 0), (1, 0, 2, 5, 0), (1, 0, 3, 5, 0)]


def test_describe_assignment_sorts_by_ground_truth_then_position():
    targets = torch.tensor([box_at((8.5, 2.5), size=100), box_at((1.5, 9.5), size=100)])
    asg = MultiAnchorAssigner()(targets, ANCHORS, STRIDES, GRIDS)
    assert describe_assignment(asg) == [(1, 0, 2, 8, 0), (1, 1, 2, 8, 0),
                                        (1, 0, 9, 1, 1), (1, 1, 9, 1, 1)]


def test_no_targets_no_assignment():
    empty = torch.zeros(0, 6)
    for assigner in (SingleAnchorAssigner(), MultiAnchorAssigner(), NeighbourCellAssigner()):
        asg = assigner(empty, ANCHORS, STRIDES, GRIDS)
        assert [len(a) for a in asg] == [0, 0]
        assert all(a.gt_index.dtype == torch.int64 and a.boxes.shape == (0, 4) for a in asg)
