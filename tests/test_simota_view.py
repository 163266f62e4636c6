"""SimOTA's pictures (viz.simota_view): the numbers they draw agree with the assigner's result
and with hand-made cases."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.decode import anchor_points, decode_anchor_free  # noqa: E402
from yolo_teach.losses.simota import simota_assign  # noqa: E402
from yolo_teach.models.yolox import yolox_cpu_nano  # noqa: E402
from yolo_teach.viz.simota_view import (  # noqa: E402
    GT_COLORS,
    PRIOR_STYLES,
    assign_image,
    candidate_costs,
    draw_candidate_costs,
    draw_centre_prior,
    draw_cost_matrix,
    draw_dynamic_k,
    draw_positives,
    gt_color,
    prior_kind,
)

# 64 px image, one stride-8 map: points at 4, 12, ..., 60 in x and y (row-major)
POINTS, STRIDES = anchor_points([(8, 8)], [8])
IMAGE = np.zeros((64, 64, 3), np.uint8)


def _assign(gt_boxes, labels, pred_boxes, scores, radius=2.5):
    return simota_assign(gt_boxes, labels, POINTS, STRIDES, pred_boxes, scores, radius)


def _far_predictions(good=(), box=(16.0, 16, 48, 48)):
    pred = torch.tensor([[0.0, 0, 2, 2]]).repeat(len(POINTS), 1)  # IoU 0 with everything
    pred[list(good)] = torch.tensor(box)
    return pred


def _ax(size=2.0):
    return Figure(figsize=(size, size), dpi=50).add_subplot()


def test_prior_kind_by_hand():
    # box (16, 16)-(48, 48), centre (32, 32): strictly inside are x, y in {20, 28, 36, 44} (16
    # points); with radius 1.5 the centre square |x - 32| < 12 keeps x, y in {28, 36} (4 points)
    res = _assign(torch.tensor([[16.0, 16, 48, 48]]), torch.tensor([0]), _far_predictions(),
                  torch.full((64, 3), 0.25), radius=1.5)
    kind = prior_kind(res)
    assert (kind == 3).sum() == 4 and (kind == 1).sum() == 12 and (kind == 2).sum() == 0
    assert kind.reshape(8, 8)[3:5, 3:5].tolist() == [[3, 3], [3, 3]]  # rows/cols 3, 4: 28, 36
    # a 8 px box (28, 28)-(36, 36) holds no point strictly inside; its centre square with
    # radius 2.5 (|x - 32| < 20) holds x, y in {20, 28, 36, 44}: 16 points "centre only"
    small = _assign(torch.tensor([[28.0, 28, 36, 36]]), torch.tensor([0]), _far_predictions(),
                    torch.full((64, 3), 0.25))
    assert (prior_kind(small) == 2).sum() == 16 and (prior_kind(small) != 2).sum() == 48


def test_prior_kind_per_ground_truth_and_over_all():
    # the second box holds (4, 4) only; its centre square |x - 5| < 20 holds x, y in {4, 12, 20}
    gts = torch.tensor([[16.0, 16, 48, 48], [0.0, 0, 10, 10]])
    res = _assign(gts, torch.tensor([0, 1]), _far_predictions(), torch.full((64, 3), 0.25))
    first, second = prior_kind(res, gt=0), prior_kind(res, gt=1)
    assert second[0] == 3 and first[0] == 0 and prior_kind(res)[0] == 3
    assert (second == 2).sum() == 8 and (first == 3).sum() == 16
    shared = 2 * 8 + 2  # (20, 20): in the first box and centre, in the second's centre only
    assert first[shared] == 3 and second[shared] == 2 and prior_kind(res)[shared] == 3
    assert res.candidates.sum() == 16 + 9 - 1 == ((first > 0) | (second > 0)).sum()


def _scored_case():
    gt = torch.tensor([[16.0, 16, 48, 48]])
    good = [27, 28, 36]  # (28, 28), (36, 28), (36, 36): perfect boxes -> k = 3
    pred = _far_predictions(good)
    pred[19] = torch.tensor([20.0, 20, 44, 44])  # (28, 20): IoU 576 / 1024 = 0.5625
    # scores in [0.2, 0.3]: class costs differ by less than 3 x -log(0.5625) = 1.73
    scores = 0.2 + 0.1 * torch.rand(64, 3, generator=torch.Generator().manual_seed(0))
    return gt, torch.tensor([2]), pred, scores, good


def test_candidate_costs_split_the_cost_into_its_terms():
    gt, labels, pred, scores, good = _scored_case()
    res = _assign(gt, labels, pred, scores)
    costs = candidate_costs(res, 0, STRIDES)
    assert len(costs.cost) == res.candidates.sum() == 16
    assert np.all(np.diff(costs.cost) >= 0)  # cheapest first
    # the independent class cost: BCE of sqrt(p) against the one-hot of class 2, over classes
    p = scores[torch.as_tensor(costs.index)].sqrt().clamp(1e-6, 1 - 1e-6)
    onehot = F.one_hot(torch.tensor([2]), 3).float().expand(len(p), -1)
    expected = F.binary_cross_entropy(p, onehot, reduction="none").sum(1).double().numpy()
    np.testing.assert_allclose(costs.cls_cost, expected, atol=1e-4)
    np.testing.assert_allclose(costs.reg_cost, -np.log(costs.iou + 1e-8))
    assert costs.k == 3 and costs.chosen.sum() == 3 and costs.chosen[:3].all()
    assert sorted(costs.index[costs.positive].tolist()) == good
    assert costs.iou[costs.index.tolist().index(19)] == pytest.approx(0.5625)
    assert set(costs.stride.tolist()) == {8.0} and not costs.outside.any()


def test_candidate_costs_keep_the_class_cost_of_penalised_points():
    big = torch.tensor([[0.0, 0, 64, 64]])  # every point in the box, few in the centre region
    scores = torch.full((64, 3), 0.25)
    res = _assign(big, torch.tensor([0]), _far_predictions([27], (0.0, 0, 64, 64)), scores,
                  radius=1.0)
    costs = candidate_costs(res, 0, STRIDES)
    assert costs.outside.sum() == 60  # |x - 32| < 8 keeps x, y in {28, 36}: 4 unpenalised
    # sqrt(0.25) = 0.5 for every class: 3 x log 2 for every point, penalised or not
    np.testing.assert_allclose(costs.cls_cost, 3 * np.log(2), atol=0.02)


def test_a_lost_claim_is_chosen_but_not_positive():
    gts = torch.tensor([[16.0, 16, 48, 48], [20.0, 20, 52, 52]])
    shared = 36  # (36, 36): predicts the second box, so it is cheaper for ground truth 1
    pred = _far_predictions([shared], (20.0, 20, 52, 52))
    res = _assign(gts, torch.tensor([0, 0]), pred, torch.full((64, 3), 0.25))
    first = candidate_costs(res, 0, STRIDES)
    at = first.index.tolist().index(shared)
    assert first.chosen[at] and not first.positive[at]  # gt 0 claimed it, gt 1 got it
    assert candidate_costs(res, 1, STRIDES).positive[
        candidate_costs(res, 1, STRIDES).index.tolist().index(shared)]
    ax = _ax()
    draw_cost_matrix(ax, res, STRIDES)
    lost = [line for line in ax.lines if line.get_marker() == "x"]
    assert sum(len(line.get_xdata()) for line in lost) >= 1


def test_draw_centre_prior_counts_agree_with_prior_kind():
    gt, labels, pred, scores, _ = _scored_case()
    res = _assign(gt, labels, pred, scores, radius=1.5)
    ax = _ax()
    counts = draw_centre_prior(ax, IMAGE, gt, labels, POINTS, STRIDES, res, stride=8,
                               radius=1.5, class_names=["a", "b", "c"])
    kind = prior_kind(res)
    assert counts == {"points": 64, "in box only": 12, "in centre region only": 0,
                      "in box and centre region": 4}
    assert counts["in box only"] == (kind == 1).sum()
    styled = {line.get_label(): len(line.get_xdata()) for line in ax.lines}
    assert styled[PRIOR_STYLES[3][0]] == 4
    # the box, its centre square (radius 1.5 x 8 = 12 px around (32, 32)) and the tag
    squares = [p for p in ax.patches if p.get_linestyle() == ":"]
    assert squares[0].get_xy() == (20.0, 20.0) and squares[0].get_width() == 24.0
    assert any(t.get_text() == "#0 c" for t in ax.texts)
    # another stride has no points here
    assert draw_centre_prior(_ax(), IMAGE, gt, labels, POINTS, STRIDES, res, 16)["points"] == 0


def test_draw_candidate_costs_marks_k_and_the_penalty():
    gt, labels, pred, scores, _ = _scored_case()
    costs = candidate_costs(_assign(gt, labels, pred, scores), 0, STRIDES)
    ax = _ax(4)
    draw_candidate_costs(ax, costs, top=10)
    assert len(ax.patches) == 2 * 10  # two stacked bars per candidate
    assert ax.lines[0].get_xdata()[0] == pytest.approx(2.5)  # after the k = 3 cheapest
    heights = [p.get_height() for p in ax.patches[10:]]  # the 3 L_reg part
    np.testing.assert_allclose(heights, 3 * costs.reg_cost[:10], rtol=1e-6)
    big = torch.tensor([[0.0, 0, 64, 64]])
    res = _assign(big, torch.tensor([0]), _far_predictions([27], (0.0, 0, 64, 64)),
                  torch.full((64, 3), 0.25), radius=1.0)
    ax = _ax(4)
    draw_candidate_costs(ax, candidate_costs(res, 0, STRIDES), top=64)
    assert sum(bool(p.get_hatch()) for p in ax.patches) == 60


def test_draw_dynamic_k_sums_the_top_ious():
    gt, labels, pred, scores, _ = _scored_case()
    res = _assign(gt, labels, pred, scores)
    total = draw_dynamic_k(_ax(3), res, 0)
    assert total == pytest.approx(3 + 0.5625, abs=1e-6)  # three perfect boxes and one at 0.5625
    assert int(total) == res.dynamic_k[0] == 3


def test_draw_positives_colours_each_ground_truth():
    gts = torch.tensor([[16.0, 16, 48, 48], [20.0, 20, 52, 52]])
    pred = _far_predictions([36], (20.0, 20, 52, 52))
    pred[27] = gts[0]
    res = _assign(gts, torch.tensor([0, 0]), pred, torch.full((64, 3), 0.25))
    ax = _ax()
    counts = draw_positives(ax, IMAGE, gts, [0, 0], POINTS, STRIDES, res)
    assert counts == [int((res.gt_index == g).sum()) for g in range(2)]
    filled = {matplotlib.colors.to_hex(line.get_color()).upper(): len(line.get_xdata())
              for line in ax.lines if line.get_markerfacecolor() != "none"}
    assert filled[gt_color(0)] == counts[0] and filled[gt_color(1)] == counts[1]
    assert gt_color(len(GT_COLORS)) == gt_color(0)


def test_draw_cost_matrix_shows_ious_or_unpenalised_costs():
    gt, labels, pred, scores, _ = _scored_case()
    res = _assign(gt, labels, pred, scores, radius=1.5)  # 4 unpenalised of 16 candidates
    art = draw_cost_matrix(_ax(), res, STRIDES, value="iou")
    cand = res.candidates.nonzero().squeeze(1)
    np.testing.assert_allclose(art.get_array(), res.ious[:, cand].numpy())
    art = draw_cost_matrix(_ax(), res, STRIDES)
    assert art.get_array().mask.sum() == 12
    with pytest.raises(ValueError):
        draw_cost_matrix(_ax(), res, STRIDES, value="cls")


def test_assign_image_is_the_assignment_of_the_decoded_predictions():
    torch.manual_seed(0)
    model = yolox_cpu_nano(3).eval()
    image = torch.rand(3, 64, 64)
    targets = torch.tensor([[0.0, 1, 8, 10, 40, 36], [0.0, 2, 30, 30, 60, 62]])
    points, strides, res = assign_image(model, image, targets)
    assert points.shape == (8 * 8 + 4 * 4 + 2 * 2, 2) and strides.tolist()[-1] == 32.0
    with torch.no_grad():
        rows = decode_anchor_free(model(image[None]), model.strides)[0]  # (P, 5 + K) xyxy
    expected = simota_assign(targets[:, 2:6], targets[:, 1].long(), points, strides, rows[:, :4],
                             rows[:, 5:] * rows[:, 4:5])
    assert torch.equal(res.gt_index, expected.gt_index)
    torch.testing.assert_close(res.cost, expected.cost)
    assert res.positive.sum() >= 2 and not model.training
    assert assign_image(model, image, targets, radius=0.5)[2].candidates.sum() < res.candidates.sum()
