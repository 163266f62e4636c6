"""YOLOv7's coarse-to-fine lead-guided assignment and lead + auxiliary loss (losses/lead_guided.py)
on hand-made cases."""

import math

import pytest
import torch

from yolo_teach.boxes import aligned_box_iou, box_convert, complete_box_iou_loss
from yolo_teach.decode import YOLOv5BoxCoder
from yolo_teach.losses import (
    IoUBoxLoss,
    NeighbourCellAssigner,
    YOLOLoss,
    describe_assignment,
    objectness_iou,
)
from yolo_teach.losses.lead_guided import (
    COARSE,
    FINE,
    LeadGuidedAssigner,
    candidate_cells,
    ota_match,
)
from yolo_teach.losses.yolov7_loss import LeadAuxLoss, yolov7_balance


def box_at(centre_in_cells, size=40.0, stride=32, b=0, label=0):
    """A target row ``[b, class, x1, y1, x2, y2]``: a size x size box centred at a cell position."""
    cx, cy = centre_in_cells[0] * stride, centre_in_cells[1] * stride
    return [b, label, cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def cells_of(centre, offset):
    """``{(gy, gx)}`` candidates of one 40 px box on a 20 x 13 map of stride 32, one 40 px anchor."""
    asg = candidate_cells(torch.tensor([box_at(centre)]), [torch.tensor([[40.0, 40]])], (32,),
                          [(13, 20)], offset)
    rows = describe_assignment(asg)
    assert len(rows) == len({(gy, gx) for _, _, gy, gx, _ in rows})  # no cell twice
    return {(gy, gx) for _, _, gy, gx, _ in rows}


@pytest.mark.parametrize(("centre", "fine", "coarse"), [
    # (cx, cy) in cells -> (gy, gx) cells. Inside: fractions (0.3, 0.7); fine: left (0.3 < 0.5)
    # and lower (1 - 0.7 = 0.3 < 0.5); coarse: all 4 neighbours (0.3, 0.7 < 1)
    ((2.3, 4.7), {(4, 2), (4, 1), (5, 2)}, {(4, 2), (4, 1), (4, 3), (3, 2), (5, 2)}),
    # bottom-left corner cell (0, 12): the left column -1 and the lower row 13 are off the map
    ((0.3, 12.7), {(12, 0)}, {(12, 0), (12, 1), (11, 0)}),
    # right border, centre halfway down its cell: fine has no nearer row (0.5 is not < 0.5) and
    # its nearer column 20 is off the map; coarse keeps column 18 and row 1 (0.5 < 1)
    ((19.7, 0.5), {(0, 19)}, {(0, 19), (0, 18), (1, 19)}),
])
def test_three_fine_and_five_coarse_candidate_cells(centre, fine, coarse):
    assert cells_of(centre, FINE) == fine
    assert cells_of(centre, COARSE) == coarse


def test_fine_candidates_are_yolov5_neighbour_cells():
    torch.manual_seed(0)
    anchors = [torch.tensor([[10.0, 13], [16, 30], [33, 23]]), torch.tensor([[30.0, 61], [62, 45],
                                                                             [59, 119]])]
    xy = torch.rand(12, 2) * 120
    wh = torch.rand(12, 2) * 60 + 4
    targets = torch.cat([torch.zeros(12, 1), torch.randint(0, 3, (12, 1)), xy, xy + wh], 1)
    args = (targets, anchors, (8, 16), [(16, 16), (8, 8)])
    assert describe_assignment(candidate_cells(*args, FINE)) == describe_assignment(
        NeighbourCellAssigner()(*args))


def test_dynamic_k_and_the_cost_by_hand():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    # IoUs with the 10 x 10 ground truth: a 10 x h box at the corner has IoU h / 10
    preds = torch.tensor([[0.0, 0, 10, 5], [0, 0, 10, 9], [20, 20, 30, 30], [0, 0, 10, 10],
                          [0, 0, 10, 3], [0, 0, 10, 8]])  # IoU .5, .9, 0, 1, .3, .8
    scores = torch.full((6, 2), 0.25)  # sqrt = 0.5: BCE ln 2 per class, 2 ln 2 for K = 2
    res = ota_match(gt, torch.tensor([1]), preds, scores)
    assert res.ious[0].tolist() == pytest.approx([0.5, 0.9, 0, 1, 0.3, 0.8])
    assert res.dynamic_k.tolist() == [3]  # 1 + .9 + .8 + .5 + .3 = 3.5 -> 3
    # cost = 2 ln 2 + 3 (-ln IoU): IoU 1 -> 1.386, IoU 0.5 -> 2 ln 2 + 3 ln 2 = 5 ln 2 = 3.466
    assert res.cost[0, 3] == pytest.approx(2 * math.log(2), abs=1e-5)
    assert res.cost[0, 0] == pytest.approx(5 * math.log(2), abs=1e-5)
    assert res.gt_index.tolist() == [-1, 0, -1, 0, -1, 0]  # the 3 cheapest: IoU 1, .9, .8
    assert res.iou.tolist() == pytest.approx([0, 0.9, 0, 1, 0, 0.8])
    few = ota_match(gt, torch.tensor([1]), preds, scores, topk=2)
    assert few.dynamic_k.tolist() == [1] and few.gt_index.tolist() == [-1, -1, -1, 0, -1, -1]
    # 1 + .9 = 1.9 -> 1; and a ground truth with no overlapping candidate still takes 1
    far = ota_match(torch.tensor([[100.0, 100, 110, 110]]), torch.tensor([0]), preds, scores)
    assert far.dynamic_k.tolist() == [1] and far.positive.sum() == 1


def test_a_candidate_claimed_twice_goes_to_the_cheaper_ground_truth():
    gts = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10]])  # A and B, both 10 x 10, class 0
    preds = torch.tensor([[1.5, 0, 11.5, 10], [0, 0, 10, 10], [2, 0, 12, 10]])
    # IoU with A: 85/115 = .739, 1, 80/120 = .667; with B: 95/105 = .905, .667, 1
    # k_A = floor(2.406) = 2: candidates 1 and 0; k_B = floor(2.571) = 2: candidates 2 and 0.
    # Same class cost, so candidate 0 costs B less (IoU .905 > .739): it goes to B.
    res = ota_match(gts, torch.tensor([0, 0]), preds, torch.full((3, 1), 0.5))
    assert res.dynamic_k.tolist() == [2, 2]
    assert res.cost[1, 0] < res.cost[0, 0]
    assert res.gt_index.tolist() == [1, 0, 1]
    assert res.iou[0] == pytest.approx(95 / 105)


# --------------------------------------------------------------------------------------------
# Lead guided or independent, on random maps of a 64 px input, 2 classes
# --------------------------------------------------------------------------------------------
STRIDES = (8, 16, 32)
ANCHORS = [torch.tensor(a) * 0.1 for a in (  # YOLOv5's P5 anchors, at 64 px instead of 640
    [[10.0, 13], [16, 30], [33, 23]], [[30.0, 61], [62, 45], [59, 119]],
    [[116.0, 90], [156, 198], [373, 326]])]
TARGETS = torch.tensor([[0, 1, 8, 10, 30, 34], [1, 0, 30, 20, 58, 50], [1, 1, 4, 40, 20, 60]],
                       dtype=torch.float32)


def random_maps(seed, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3 * 7, 64 // s, 64 // s, generator=gen).requires_grad_(requires_grad)
            for s in STRIDES]  # (B, A(5+K), 64/s, 64/s)


def rows(assignments):
    """Every positive as (scale, image, anchor, gy, gx, ground truth), sorted."""
    return sorted((s, *r) for s, asg in enumerate(assignments)
                  for r in zip(asg.b.tolist(), asg.a.tolist(), asg.gy.tolist(), asg.gx.tolist(),
                               asg.gt_index.tolist()))


def test_lead_guided_aux_labels_follow_the_lead_predictions_only():
    loss = LeadAuxLoss(ANCHORS, STRIDES, guide="lead")
    lead, aux = random_maps(0), random_maps(1)
    lead_asg, aux_asg = loss.assign(lead + aux, TARGETS)
    assert rows(loss.assign(lead + random_maps(2), TARGETS)[1]) == rows(aux_asg)
    new_lead, new_aux = loss.assign(random_maps(3) + aux, TARGETS)
    assert rows(new_aux) != rows(aux_asg) and rows(new_lead) != rows(lead_asg)
    # the coarse labels come from more candidates than the fine ones
    fine = candidate_cells(TARGETS, ANCHORS, STRIDES, [(8, 8), (4, 4), (2, 2)], FINE)
    coarse = candidate_cells(TARGETS, ANCHORS, STRIDES, [(8, 8), (4, 4), (2, 2)], COARSE)
    assert set(rows(fine)) < set(rows(coarse))
    assert set(rows(aux_asg)) <= set(rows(coarse))


def test_independent_aux_labels_follow_the_aux_predictions():
    loss = LeadAuxLoss(ANCHORS, STRIDES, guide="independent")
    lead, aux = random_maps(0), random_maps(1)
    lead_asg, aux_asg = loss.assign(lead + aux, TARGETS)
    new_lead, new_aux = loss.assign(lead + random_maps(2), TARGETS)
    assert rows(new_aux) != rows(aux_asg) and rows(new_lead) == rows(lead_asg)
    same = LeadAuxLoss(ANCHORS, STRIDES, guide="lead_fine").assign(lead + aux, TARGETS)
    assert rows(same[1]) == rows(same[0]) == rows(lead_asg)  # Fig. 5d: the lead's labels


def test_the_assigner_needs_predictions_and_the_loss_its_maps():
    with pytest.raises(ValueError, match="predictions"):
        LeadGuidedAssigner()(TARGETS, ANCHORS, STRIDES, [(8, 8), (4, 4), (2, 2)])
    with pytest.raises(ValueError, match="lead maps"):
        LeadAuxLoss(ANCHORS, STRIDES)(random_maps(0)[:2], TARGETS)
    with pytest.raises(ValueError, match="guide"):
        LeadAuxLoss(ANCHORS, STRIDES, guide="coarse")


def test_loss_is_finite_with_gradients_into_both_heads():
    loss_fn = LeadAuxLoss(ANCHORS, STRIDES, objectness_balance=yolov7_balance(3), box_gain=0.05,
                          obj_gain=0.7, cls_gain=0.3)
    lead, aux = random_maps(0, requires_grad=True), random_maps(1, requires_grad=True)
    loss, terms = loss_fn(lead + aux, TARGETS)
    assert set(terms) == {"box", "obj", "cls", "aux_box", "aux_obj", "aux_cls"}
    assert torch.isfinite(loss) and loss.item() == pytest.approx(sum(terms.values()).item())
    assert all(v > 0 for v in terms.values())
    loss.backward()
    for m in lead + aux:
        assert torch.isfinite(m.grad).all() and m.grad.abs().sum() > 0
    empty = loss_fn(lead + aux, torch.zeros(0, 6))[1]  # no objects: objectness terms only
    assert empty["box"] == empty["cls"] == empty["aux_box"] == 0 and empty["aux_obj"] > 0


def test_lead_maps_alone_give_the_lead_part_as_yolov5_terms_compute_it():
    options = {"objectness_balance": yolov7_balance(3), "box_gain": 0.05, "obj_gain": 0.7,
               "cls_gain": 0.3}
    loss_fn = LeadAuxLoss(ANCHORS, STRIDES, **options)
    lead, aux = random_maps(0), random_maps(1)
    _, full = loss_fn(lead + aux, TARGETS)
    alone, terms = loss_fn(lead, TARGETS)
    assert alone.item() == pytest.approx((full["box"] + full["obj"] + full["cls"]).item())
    assert terms["aux_box"] == terms["aux_obj"] == terms["aux_cls"] == 0
    # reference: YOLOv5's loss (YOLOLoss, "mean") given the same labels by a fixed assigner
    labels = loss_fn.assign(lead, TARGETS)[0]

    class Fixed:
        centre_range = (-0.5, 1.5)

        def __call__(self, *args, **kwargs):
            return labels

    reference = YOLOLoss(ANCHORS, STRIDES, Fixed(), YOLOv5BoxCoder(),
                         box_loss=IoUBoxLoss(complete_box_iou_loss),
                         objectness_target=objectness_iou, ignore_threshold=None,
                         reduction="mean", **options)
    assert reference(lead, TARGETS)[0].item() == pytest.approx(alone.item(), rel=1e-6)


def test_the_bounded_coder_keeps_extra_coarse_positives_below_a_perfect_soft_label():
    coder = YOLOv5BoxCoder()
    assert LeadGuidedAssigner(coarse=False).centre_range == coder.centre_range == (-0.5, 1.5)
    assert LeadGuidedAssigner(coarse=True).centre_range == (-1.0, 2.0)  # beyond the coder
    with pytest.raises(ValueError, match="cannot reach"):  # YOLOLoss refuses such a pairing
        YOLOLoss(ANCHORS[:1], STRIDES[:1], LeadGuidedAssigner(coarse=True), coder)
    # a 16 px box centred at (2.2, 2.5) cells of stride 8; a 16 px anchor is 2 x 2 cells
    target = torch.tensor([box_at((2.2, 2.5), size=16, stride=8)])
    fine = cells_of_map(target, FINE)
    coarse = cells_of_map(target, COARSE)
    assert fine == {(2, 2), (2, 1)} and coarse - fine == {(2, 3), (1, 2), (3, 2)}
    truth = box_convert(target[:, 2:6], "xyxy", "cxcywh") / 8  # (1, 4) in cells
    anchor = torch.tensor([[2.0, 2.0]])

    def best_iou(gy, gx):
        """The best IoU the cell's prediction can reach: the truth encoded (its x offset clamped
        to the coder's reach), and the same with t_x swept over [-30, 30]."""
        cell = torch.tensor([[float(gx), float(gy)]])
        t = coder.encode(truth, cell, anchor).repeat(2002, 1)  # (2002, 4)
        t[1:, 0] = torch.linspace(-30, 30, 2001)
        box = box_convert(coder.decode(t, cell, anchor), "cxcywh", "xyxy")  # (2002, 4)
        return aligned_box_iou(box, box_convert(truth, "cxcywh", "xyxy")).max().item()

    assert best_iou(2, 2) == pytest.approx(1.0, abs=1e-3)  # offset 0.2: reachable
    assert best_iou(2, 1) == pytest.approx(1.0, abs=1e-3)  # fine neighbour, offset 1.2 < 1.5
    # coarse-only right neighbour: offset 2.2 - 3 = -0.8 < -0.5. At best the centre sits at
    # 2.5, 0.3 cells off: overlap 1.7 x 2 = 3.4, union 4 + 4 - 3.4 = 4.6, IoU 0.739
    assert best_iou(2, 3) == pytest.approx(3.4 / 4.6, abs=1e-4)


def cells_of_map(target, offset):
    """``{(gy, gx)}`` candidates on an 8 x 8 map of stride 8 with one 16 px anchor."""
    asg = candidate_cells(target, [torch.tensor([[16.0, 16]])], (8,), [(8, 8)], offset)
    return {(gy, gx) for _, _, gy, gx, _ in describe_assignment(asg)}
