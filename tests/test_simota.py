"""SimOTA (YOLOX §2.2) on hand-made cases: which points become positive, and why."""

import pytest
import torch

from yolo_teach.decode import anchor_points
from yolo_teach.losses.simota import (
    OUTSIDE_COST,
    centre_prior,
    dynamic_k,
    simota_assign,
)

GT = torch.tensor([[16.0, 16, 48, 48]])  # centre (32, 32), on a 64 px image


def grid():
    return anchor_points([(8, 8)], [8])  # 64 points, centres 4, 12, ..., 60


def test_anchor_points_are_cell_centres_scale_after_scale():
    points, strides = anchor_points([(2, 3), (1, 1)], [8, 16])
    assert points.tolist()[:4] == [[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [4.0, 12.0]]
    assert points.tolist()[-1] == [8.0, 8.0] and strides.tolist() == [8.0] * 6 + [16.0]


def test_centre_prior_by_hand():
    points, strides = grid()
    in_box, in_centre = centre_prior(GT, points, strides, radius=2.5)
    xs = {float(x) for x, y in points[in_box[0]]}
    assert xs == {20.0, 28.0, 36.0, 44.0} and in_box.sum() == 16  # strictly inside the box
    assert in_centre.sum() == 16  # |x - 32| < 20 also keeps 20..44 (12 and 52 are not < 20)
    small = centre_prior(GT, points, strides, radius=0.5)[1]
    assert small.sum() == 0  # |x - 32| < 4: no centre at 4 px from 32 (they are 28 and 36)
    assert centre_prior(GT, points, strides, radius=0.6)[1].sum() == 4


def test_dynamic_k_is_the_integer_part_of_the_top10_iou_sum():
    ious = torch.tensor([[1.0, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9],  # top 10: 3.9+0.6
                         [0.05] * 11])
    assert dynamic_k(ious).tolist() == [4, 1]  # 1+1+1+0.9+6*0.1 = 4.5 -> 4; 0.5 -> at least 1
    assert dynamic_k(ious, topk=3).tolist() == [3, 1]


def _predictions(points, good, box=GT[0]):
    """Every point predicts a box far off (IoU 0), except ``good`` points, which predict ``box``."""
    pred = torch.tensor([[0.0, 0, 2, 2]]).repeat(len(points), 1)
    pred[good] = box
    return pred


def test_a_ground_truth_takes_its_k_cheapest_candidates():
    points, strides = grid()
    good = [27, 28, 36]  # centres (28, 28), (36, 28), (36, 36): inside box and centre region
    scores = torch.full((len(points), 3), 0.25)
    res = simota_assign(GT, torch.tensor([1]), points, strides, _predictions(points, good), scores)
    assert res.candidates.sum() == 16 and res.dynamic_k.tolist() == [3]  # 3 IoUs of 1
    assert res.positive.nonzero().squeeze(1).tolist() == good
    assert res.gt_index[good].tolist() == [0, 0, 0] and res.iou[good].tolist() == [1.0] * 3
    assert res.iou[~res.positive].eq(0).all()


def test_points_outside_the_centre_region_pay_the_penalty_and_far_points_never_count():
    points, strides = grid()
    big = torch.tensor([[0.0, 0, 64, 64]])  # every point is in the box; few near the centre
    good = [0, 9, 27]  # (4, 4) and (12, 12): in the box, outside 1 stride of the centre
    scores = torch.full((len(points), 3), 0.25)
    res = simota_assign(big, torch.tensor([0]), points, strides, _predictions(points, good,
                        big[0]), scores, radius=1.0)
    assert res.cost[0, 0] > OUTSIDE_COST > res.cost[0, 27]
    assert res.dynamic_k.tolist() == [3] and res.positive.sum() == 3
    # the perfect boxes at (4, 4) and (12, 12) lose to centre points whose boxes miss entirely
    assert res.positive[27] and not res.positive[[0, 9]].any()
    far = simota_assign(GT, torch.tensor([0]), points, strides, _predictions(points, [0]),
                        scores)
    assert not far.candidates[0] and not far.positive[0]  # (4, 4): neither in box nor centre


def test_a_point_claimed_twice_goes_to_the_cheaper_ground_truth():
    points, strides = grid()
    gts = torch.tensor([[16.0, 16, 48, 48], [20.0, 20, 52, 52]])
    shared = 36  # centre (36, 36): in both boxes and both centre regions
    pred = _predictions(points, [shared], gts[1])  # its box matches the second ground truth
    scores = torch.full((len(points), 3), 0.25)
    res = simota_assign(gts, torch.tensor([0, 0]), points, strides, pred, scores)
    assert res.cost[1, shared] < res.cost[0, shared]
    assert res.gt_index[shared] == 1
    assert res.iou[shared] == pytest.approx(1.0)


def test_no_ground_truth_means_background_everywhere():
    points, strides = grid()
    res = simota_assign(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), points, strides,
                        _predictions(points, []), torch.full((64, 3), 0.5))
    assert not res.positive.any() and not res.candidates.any()
