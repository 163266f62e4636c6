"""Target assignment by hand, the anchor-based YOLO loss and the YOLOv1 loss."""

import math

import pytest
import torch
from test_decode import ANCHORS, STRIDES, TARGETS, ideal_maps

from yolo_teach.boxes import complete_box_iou_loss
from yolo_teach.decode import YOLOv2BoxCoder, YOLOv5BoxCoder
from yolo_teach.losses import (
    IoUBoxLoss,
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    SoftmaxClassLoss,
    YOLOLoss,
    YOLOv1Loss,
    describe_assignment,
    objectness_iou,
    one_object_per_cell,
    responsible_predictor,
)

GRIDS = [(52, 52), (26, 26), (13, 13)]  # 416 px at strides 8, 16, 32
# one 120 x 90 box centred at (160, 145) px; its shape IoU with YOLOv3's 9 anchors (w, h)
# (10,13) .012, (16,30) .044, (33,23) .070 | (30,61) .169, (62,45) .258, (59,119) .424 |
# (116,90) .967 = 116*90 / (120*90), (156,198) .350, (373,326) .089
ONE_BOX = torch.tensor([[0.0, 1, 100, 100, 220, 190]])


def test_single_anchor_picks_the_best_anchor_over_all_scales():
    # best: (116, 90) = anchor 0 of stride 32; centre / 32 = (5.0, 4.53) -> cell gy=4, gx=5
    asg = SingleAnchorAssigner()(ONE_BOX, ANCHORS, STRIDES, GRIDS)
    assert describe_assignment(asg) == [(2, 0, 4, 5, 0)]
    assert [len(a) for a in asg] == [0, 0, 1]
    assert asg[2].labels.tolist() == [1] and asg[2].boxes.tolist() == [[100, 100, 220, 190]]


def test_multi_anchor_adds_every_anchor_above_0213():
    # IoU > 0.213: (62,45) .258, (59,119) .424 at stride 16 -> centre / 16 = (10, 9.06);
    # (116,90) .967, (156,198) .350 at stride 32 -> cell (4, 5)
    asg = MultiAnchorAssigner(iou_threshold=0.213)(ONE_BOX, ANCHORS, STRIDES, GRIDS)
    assert describe_assignment(asg) == [(1, 1, 9, 10, 0), (1, 2, 9, 10, 0),
                                        (2, 0, 4, 5, 0), (2, 1, 4, 5, 0)]
    # a threshold above every IoU still keeps the best anchor
    high = MultiAnchorAssigner(iou_threshold=0.99)(ONE_BOX, ANCHORS, STRIDES, GRIDS)
    assert describe_assignment(high) == [(2, 0, 4, 5, 0)]


def test_neighbour_cells_anchor_ratio_below_4():
    # one anchor per ratio: 120/30 = 4 is not < 4; 120/31 = 3.87 and 90/31 = 2.9 are
    anchors = [torch.tensor([[30.0, 30], [31, 31], [480, 360], [479, 359]])]
    asg = NeighbourCellAssigner(anchor_t=4.0)(ONE_BOX, anchors, (32,), [(13, 13)])
    assert sorted(set(asg[0].a.tolist())) == [1, 3]


@pytest.mark.parametrize("centre, expected", [
    # centre in cells of stride 32 -> centre cell, then the x neighbour, then the y neighbour
    ((5.2, 4.3), {(4, 5), (4, 4), (3, 5)}),  # left half, upper half -> left and up
    ((5.8, 4.3), {(4, 5), (4, 6), (3, 5)}),  # right half -> right
    ((5.2, 4.7), {(4, 5), (4, 4), (5, 5)}),  # lower half -> down
    ((5.8, 4.7), {(4, 5), (4, 6), (5, 5)}),
    ((0.3, 12.8), {(12, 0)}),  # left neighbour of column 0 and lower of row 12 are outside
])
def test_neighbour_cells_follow_the_half_of_the_cell(centre, expected):
    cx, cy = centre[0] * 32, centre[1] * 32
    box = torch.tensor([[0.0, 0, cx - 20, cy - 20, cx + 20, cy + 20]])
    asg = NeighbourCellAssigner()(box, [torch.tensor([[40.0, 40]])], (32,), [(13, 13)])
    cells = {(gy, gx) for _, _, gy, gx, _ in describe_assignment(asg)}
    assert cells == expected and len(asg[0]) == len(expected)


def test_assigners_handle_empty_targets():
    empty = torch.zeros(0, 6)
    for assigner in (SingleAnchorAssigner(), MultiAnchorAssigner(), NeighbourCellAssigner()):
        assert [len(a) for a in assigner(empty, ANCHORS, STRIDES, GRIDS)] == [0, 0, 0]


def make_loss(assigner, coder, **options):
    return YOLOLoss(ANCHORS, STRIDES, assigner, coder, **options)


FAITHFUL = dict(assigner=SingleAnchorAssigner(), coder=YOLOv2BoxCoder())
YOLOV5 = dict(assigner=NeighbourCellAssigner(), coder=YOLOv5BoxCoder(),
              box_loss=IoUBoxLoss(complete_box_iou_loss), objectness_target=objectness_iou,
              ignore_threshold=None, reduction="mean",
              objectness_balance=(4.0, 1.0, 0.4))


@pytest.mark.parametrize("setup", [FAITHFUL, YOLOV5], ids=["faithful", "yolov5"])
def test_loss_is_near_zero_for_the_ideal_outputs(setup):
    maps = ideal_maps(setup["assigner"], setup["coder"], num_classes=3, logit=16.0)
    loss, terms = make_loss(**setup)(maps, TARGETS)
    assert terms["box"] < 1e-4 and terms["cls"] < 1e-4 and terms["obj"] < 1e-2
    assert set(terms) == {"box", "obj", "cls"}
    assert math.isclose(loss.item(), sum(v.item() for v in terms.values()), rel_tol=1e-5)


@pytest.mark.parametrize("setup", [FAITHFUL, YOLOV5], ids=["faithful", "yolov5"])
def test_loss_is_finite_with_gradients_without_ground_truth(setup):
    torch.manual_seed(0)
    maps = [torch.randn(2, 3 * 8, 416 // s, 416 // s, requires_grad=True) for s in STRIDES]
    for targets in (torch.zeros(0, 6), TARGETS):
        loss, terms = make_loss(**setup)(maps, targets)
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(m.grad).all() for m in maps)
    empty_loss, empty_terms = make_loss(**setup)(maps, torch.zeros(0, 6))
    assert empty_terms["box"] == 0 and empty_terms["cls"] == 0 and empty_terms["obj"] > 0


def test_loss_does_not_grow_with_the_batch():
    maps = ideal_maps(**FAITHFUL, num_classes=3)
    twice = [torch.cat([m, m]) for m in maps]
    targets2 = torch.cat([TARGETS, TARGETS + torch.tensor([2.0, 0, 0, 0, 0, 0])])
    for setup in (FAITHFUL, dict(FAITHFUL, reduction="mean")):
        one, _ = make_loss(**setup)(maps, TARGETS)
        two, _ = make_loss(**setup)(twice, targets2)
        assert math.isclose(one.item(), two.item(), rel_tol=1e-4)


def test_ignore_rule_mutes_a_good_unassigned_prediction():
    maps = ideal_maps(**FAITHFUL, num_classes=3)
    # anchor 1 (156, 198) of stride 32 at the first box's cell also predicts the first box
    # exactly, with objectness logit 0: BCE(0, target 0) = log 2 unless ignored
    coder, cell, anchor = FAITHFUL["coder"], torch.tensor([5.0, 4.0]), ANCHORS[2][1] / 32
    truth = torch.tensor([160.0, 145, 120, 90]) / 32
    k = 5 + 3  # channels per anchor
    maps[2][0, k : k + 4, 4, 5] = coder.encode(truth, cell, anchor)
    maps[2][0, k + 4, 4, 5] = 0.0
    kept, _ = make_loss(**FAITHFUL, ignore_threshold=None)(maps, TARGETS)
    ignored, _ = make_loss(**FAITHFUL, ignore_threshold=0.5)(maps, TARGETS)
    assert math.isclose(kept.item() - ignored.item(), math.log(2) / 2, rel_tol=1e-3)  # / B


def test_softmax_class_loss_and_options_are_checked():
    maps = ideal_maps(**FAITHFUL, num_classes=3)
    loss, terms = make_loss(**FAITHFUL, class_loss=SoftmaxClassLoss())(maps, TARGETS)
    assert terms["cls"] < 1e-4
    with pytest.raises(ValueError, match="cannot reach"):
        make_loss(NeighbourCellAssigner(), YOLOv2BoxCoder())
    with pytest.raises(ValueError, match="reduction"):
        make_loss(**FAITHFUL, reduction="average")


# ---------------------------------------------------------------------------------------------
# YOLOv1
# ---------------------------------------------------------------------------------------------
def yolov1_toy():
    """S = 2, 64 px (32 px cells), 2 predictors, 2 classes, one 16 x 16 box of class 1.

    Box (8, 40, 24, 56): centre (16, 48) -> cell (row 1, col 0), offsets (0.5, 0.5),
    w = h = 16 / 64 = 0.25, sqrt = 0.5.
    """
    out = torch.zeros(1, 2, 2, 12)
    out[0, 1, 0, 0:5] = torch.tensor([0.6, 0.5, 0.5, 0.5, 0.8])  # x off by 0.1 cell
    out[0, 1, 0, 5:10] = torch.tensor([0.5, 0.5, 0.25, 0.25, 0.3])  # a 4 x 4 px box
    out[0, 1, 0, 10:12] = torch.tensor([0.2, 0.6])  # class scores
    out[0, 0, 0, 4] = 0.4  # a confidence in an empty cell
    targets = torch.tensor([[0.0, 1, 8, 40, 24, 56]])
    return out, targets


def test_yolov1_loss_by_hand():
    out, targets = yolov1_toy()
    # predictor 0: 16 px box shifted 3.2 px: IoU = 12.8*16 / (2*256 - 12.8*16) = 2/3;
    # predictor 1: 4 x 4 inside 16 x 16: IoU = 16/256 = 0.0625 -> predictor 0 is responsible
    loss, terms = YOLOv1Loss(img_size=64, num_boxes=2)(out, targets)
    expected = {
        "box": 5 * 0.1**2,  # lambda_coord ((0.6 - 0.5)^2 + 0 + 0 + 0)
        "obj": (0.8 - 2 / 3) ** 2,  # C_hat = IoU
        "noobj": 0.5 * (0.3**2 + 0.4**2),  # predictor 1 of the object cell, the empty cell
        "cls": 0.2**2 + (0.6 - 1) ** 2,
    }
    for k, v in expected.items():
        assert math.isclose(terms[k].item(), v, rel_tol=1e-5), k
    assert math.isclose(loss.item(), sum(expected.values()), rel_tol=1e-5)  # 0.392778
    _, ones = YOLOv1Loss(img_size=64, conf_target="one")(out, targets)
    assert math.isclose(ones["obj"].item(), (0.8 - 1) ** 2, rel_tol=1e-5)
    _, weighted = YOLOv1Loss(img_size=64, lambda_class=3.0)(out, targets)
    assert math.isclose(weighted["cls"].item(), 3 * expected["cls"], rel_tol=1e-5)
    assert all(weighted[k] == terms[k] for k in ("box", "obj", "noobj"))


def test_yolov1_loss_normalises_by_batch_and_handles_empty_targets():
    out, targets = yolov1_toy()
    criterion = YOLOv1Loss(img_size=64)
    one, _ = criterion(out, targets)
    two, _ = criterion(torch.cat([out, out]), torch.cat([targets, targets + torch.eye(6)[0]]))
    assert math.isclose(one.item(), two.item(), rel_tol=1e-6)
    out.requires_grad_(True)
    empty, terms = criterion(out, torch.zeros(0, 6))
    empty.backward()
    assert math.isclose(empty.item(), 0.5 * (0.8**2 + 0.3**2 + 0.4**2), rel_tol=1e-5)
    assert terms["box"] == 0 and torch.isfinite(out.grad).all()


def test_yolov1_keeps_one_object_per_cell():
    targets = torch.tensor([[0.0, 1, 8, 40, 24, 56], [0.0, 0, 4, 36, 20, 52],  # same cell
                            [0.0, 0, 40, 8, 56, 24]])
    b, row, col, truth = one_object_per_cell(targets, img_size=64, grid_size=2)
    assert sorted(zip(row.tolist(), col.tolist(), truth[:, 0].tolist())) == [
        (0, 1, 0.0), (1, 0, 1.0)]  # the first box of cell (1, 0) wins


def test_yolov1_responsible_predictor_falls_back_to_rmse():
    # truth: centre (0.5, 0.5) of the cell, w = h = 0.25 of a 2-cell image = half a cell,
    # so it spans [0.25, 0.75] of the cell
    truth = torch.tensor([[0.0, 0.5, 0.5, 0.25, 0.25]])
    # neither predictor overlaps (tiny boxes at the cell's corners); predictor 1 is closer
    p = torch.tensor([[[0.0, 0.0, 0.1, 0.1, 0.0], [0.1, 0.9, 0.1, 0.1, 0.0]]])
    index, iou = responsible_predictor(p, truth, grid_size=2)
    assert iou.tolist() == [[0.0, 0.0]] and index.tolist() == [1]
    p[0, 0, :2] = 0.5  # now predictor 0 overlaps: IoU wins over RMSE
    assert responsible_predictor(p, truth, grid_size=2)[0].tolist() == [0]
