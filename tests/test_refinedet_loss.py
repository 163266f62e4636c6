"""RefineDet / RefineDetLite's loss (RefineDetLite §4 eq. 1-6, RefineDet §3.3): matching, OHEM,
negative anchor filtering, each equation on hand-computed cases, the decoder and soft-NMS."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from yolo_teach.decode import SSDBoxCoder, decode_refined, postprocess
from yolo_teach.detectors import build_detector
from yolo_teach.layers.refine import RefineOutput, halved_sizes, prior_boxes
from yolo_teach.losses.refine_assign import IoUMatcher, filtered_anchors, hard_negatives
from yolo_teach.losses.refinedet_loss import (
    GIoUBoxLoss,
    IoUGuided,
    RefineDetLoss,
    SmoothL1BoxLoss,
    UncertaintyWeighting,
    class_weights,
    refinedet_rules,
    weighted_kl_loss,
)
from yolo_teach.nms import batched_nms, batched_soft_nms

# ------------------------------------------------------------------------------ priors, coder


def test_prior_boxes_centres_and_sizes():
    # a 2 x 2 map over 64 px: step 32, centres 16 and 48; ratio 2 -> w = 20 sqrt2, h = 20/sqrt2
    boxes = prior_boxes(64, [2], [20.0], [1.0, 2.0])
    assert boxes.shape == (2 * 2 * 2, 4)
    assert torch.allclose(boxes[0], torch.tensor([6.0, 6.0, 26.0, 26.0]))
    w, h = 20 * math.sqrt(2), 20 / math.sqrt(2)
    assert torch.allclose(boxes[1], torch.tensor([16 - w / 2, 16 - h / 2, 16 + w / 2, 16 + h / 2]))
    assert torch.allclose(boxes[2, :2], torch.tensor([38.0, 6.0]))  # row 0, column 1: x = 48
    # a 3 x 3 map over 320 px: step 320/3 (PriorBox's default), first centre 53.33
    last = prior_boxes(320, [3], [256.0], [1.0])
    assert torch.allclose((last[0, :2] + last[0, 2:]) / 2, torch.full((2,), 320 / 6))


def test_prior_boxes_max_size_adds_the_square_after_ratio_one():
    # PriorBox's order per location: min size, sqrt(min max), then the other ratios
    boxes = prior_boxes(64, [1], [10.0], [1.0, 2.0], max_sizes=[40.0])
    sides = boxes[:, 2:] - boxes[:, :2]
    assert torch.allclose(sides, torch.tensor([[10.0, 10.0], [20.0, 20.0],
                                               [10 * math.sqrt(2), 10 / math.sqrt(2)]]))
    with pytest.raises(ValueError, match="ratio 1 first"):
        prior_boxes(64, [1], [10.0], [2.0, 1.0], max_sizes=[40.0])


def test_halved_sizes():
    assert halved_sizes(320, 7) == [160, 80, 40, 20, 10, 5, 3]
    assert halved_sizes(128, 3) == [64, 32, 16]


def test_ssd_coder_hand_case_and_round_trip():
    coder = SSDBoxCoder()
    anchor = torch.tensor([0.0, 0.0, 10.0, 10.0])
    # centre moved by 1 px on a 10 px anchor: 1 / (0.1 * 10) = 1; width doubled: ln 2 / 0.2
    t = coder.encode(torch.tensor([-4.0, -4.0, 16.0, 16.0]), anchor)  # centre (6, 6), 20 x 20
    assert torch.allclose(t, torch.tensor([1.0, 1.0, math.log(2) / 0.2, math.log(2) / 0.2]))
    boxes = torch.rand(50, 2) * 50
    boxes = torch.cat([boxes, boxes + 1 + torch.rand(50, 2) * 30], 1)
    anchors = torch.rand(50, 2) * 50
    anchors = torch.cat([anchors, anchors + 5 + torch.rand(50, 2) * 30], 1)
    assert torch.allclose(coder.decode(coder.encode(boxes, anchors), anchors), boxes, atol=1e-4)


# ------------------------------------------------------------------------------------ matching


def test_matcher_forces_each_truths_best_anchor_then_thresholds():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 12], [50, 50, 60, 60], [100, 100, 110, 110]])
    truths = torch.tensor([[0.0, 0, 10, 11], [50, 50, 70, 70]])
    match = IoUMatcher(0.5)(anchors, truths)
    # truth 0 overlaps anchors 0 and 1 by 100/110 and 110/120: both positive (>= 0.5)
    # truth 1 overlaps anchor 2 by 100/400 = 0.25 < 0.5, but it is truth 1's best: forced
    assert match.positive.tolist() == [True, True, True, False]
    assert match.index[:3].tolist() == [0, 0, 1]


def test_matcher_without_truths_gives_only_negatives():
    match = IoUMatcher()(torch.rand(5, 4), torch.zeros(0, 4))
    assert not match.positive.any()


def test_hard_negatives_keep_at_most_three_per_positive_the_hardest():
    loss = torch.tensor([[0.1, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0]])
    positive = torch.tensor([[False] * 7 + [True]])
    chosen = hard_negatives(loss, positive, ~positive)
    assert chosen.sum() == 3 and chosen[0, 1:4].all()  # losses 5, 4, 3: the hardest
    # two positives want 6 negatives; only 4 candidates remain
    positive = torch.tensor([[True, True, False, False, False, False, True, True]])
    candidates = ~positive
    assert hard_negatives(loss, positive, candidates).sum() == 4
    # no positive, no negative (SSD's rule)
    assert not hard_negatives(loss, torch.zeros_like(positive), ~positive).any()


def test_filtered_anchors_at_background_above_099():
    # softmax([5, 0])[0] = 0.9933 > 0.99; softmax([4, 0])[0] = 0.9820
    conf = torch.tensor([[[5.0, 0.0], [4.0, 0.0], [0.0, 3.0]]])
    assert filtered_anchors(conf).tolist() == [[True, False, False]]


# ------------------------------------------------------------------------------- equations


def test_eq3_soft_labels_hand_case():
    guided = IoUGuided(alpha=0.25)
    target = torch.tensor([2, 0])
    iou = torch.tensor([0.6, 0.4])
    y = guided.labels(target, iou, num_classes=4)
    # positive: y_t = 1 - 0.25 (1 - 0.6) = 0.9, others 0.1 / 3
    assert torch.allclose(y[0], torch.tensor([0.1 / 3, 0.1 / 3, 0.9, 0.1 / 3]))
    # negative: y_0 = 1 - 0.25 x 0.4 = 0.9
    assert torch.allclose(y[1], torch.tensor([0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3]))
    assert torch.allclose(y.sum(1), torch.ones(2))


def test_eq4_sample_weights_hand_case():
    guided = IoUGuided(beta=0.9)
    eta = guided.weights(torch.tensor([1, 1, 0]), torch.tensor([0.5, 1.0, 0.3]))
    # 1 / (1 + 0.9 (0.5 - 1)) = 1 / 0.55; a perfect positive and any negative weigh 1
    assert torch.allclose(eta, torch.tensor([1 / 0.55, 1.0, 1.0]))


def test_eq5_class_weights_hand_case():
    w = class_weights([100, 10, 1], W=10, gamma=0.75)
    # r = 1, 10, 100; r_max = 100: 9 / (100^0.75 - 1) (10^0.75 - 1) + 1
    #   = 9 / 30.6228 x 4.6234 + 1 = 2.3588
    expected = [1.0, 1.0, 9 / (100**0.75 - 1) * (10**0.75 - 1) + 1, 10.0]
    assert w == pytest.approx(expected)
    assert w[2] == pytest.approx(2.3588, abs=1e-4)
    assert class_weights([7, 7]) == (1.0, 1.0, 1.0)


def test_eq2_weighted_kl_hand_case_and_cross_entropy():
    logits = torch.zeros(1, 2)  # softmax 0.5, 0.5
    y = torch.tensor([[0.9, 0.1]])
    # 0.9 ln(0.9/0.5) + 0.1 ln(0.1/0.5) = 0.52901 - 0.16094 = 0.36807
    assert weighted_kl_loss(logits, y).item() == pytest.approx(0.36807, abs=1e-5)
    # w = (1, 2), eta = 3: 3 (0.52901 - 0.32189) = 0.62136
    got = weighted_kl_loss(logits, y, torch.tensor([1.0, 2.0]), torch.tensor([3.0]))
    assert got.item() == pytest.approx(0.62136, abs=1e-5)
    # one-hot labels, unit weights: the cross entropy
    x = torch.randn(6, 4)
    t = torch.tensor([0, 1, 2, 3, 1, 0])
    assert torch.allclose(weighted_kl_loss(x, F.one_hot(t, 4).float()),
                          F.cross_entropy(x, t, reduction="none"), atol=1e-6)


def test_eq6_uncertainty_weighting():
    weighting = UncertaintyWeighting()
    parts = {"arm_box": torch.tensor(2.0), "arm_cls": torch.tensor(3.0),
             "odm_box": torch.tensor(4.0), "odm_cls": torch.tensor(5.0)}
    terms = weighting(parts)
    # s = 0: 2/2 + 3 + 4/2 + 5 + 0
    assert sum(terms.values()).item() == pytest.approx(11.0)
    # the optimum: sigma^2 = L for a box part, 2 L for a class part -> zero gradient there
    with torch.no_grad():
        weighting.log_var.copy_(torch.log(torch.tensor([2.0, 6.0, 4.0, 10.0])))
    sum(weighting(parts).values()).backward()
    assert torch.allclose(weighting.log_var.grad, torch.zeros(4), atol=1e-6)


def test_box_losses():
    coder = SSDBoxCoder()
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    truths = torch.tensor([[0.0, 0, 10, 10]])
    zero = torch.zeros(1, 4)
    assert SmoothL1BoxLoss()(zero, anchors, truths, coder).item() == 0.0
    assert GIoUBoxLoss()(zero, anchors, truths, coder).item() == pytest.approx(0.0, abs=1e-6)
    # t_x = 1 moves the box by 1 px on a 10 px anchor: smooth L1 = 0.5 x 1^2
    t = torch.tensor([[1.0, 0, 0, 0]])
    assert SmoothL1BoxLoss()(t, anchors, truths, coder).item() == pytest.approx(0.5)
    # IoU 90/110, enclosing 110 = union: GIoU loss 1 - 9/11
    assert GIoUBoxLoss()(t, anchors, truths, coder).item() == pytest.approx(2 / 11, abs=1e-6)


# --------------------------------------------------------------------------------- the loss


def toy_loss(**options) -> RefineDetLoss:
    priors = torch.tensor([[0.0, 0, 20, 20], [40, 40, 60, 60], [0, 40, 20, 60], [40, 0, 60, 20],
                           [20, 20, 40, 40], [10, 10, 30, 30]])
    return RefineDetLoss(priors, num_classes=2, **options)


def toy_outputs(arm_background: float = 0.0) -> RefineOutput:
    n = 6
    arm_conf = torch.zeros(1, n, 2)
    arm_conf[0, 0, 0] = arm_background  # anchor 0: the ARM's background logit
    return RefineOutput(torch.zeros(1, n, 4, requires_grad=True), arm_conf.requires_grad_(),
                        torch.zeros(1, n, 4, requires_grad=True),
                        torch.zeros(1, n, 3, requires_grad=True))


def test_loss_positives_negatives_and_the_three_to_one_ratio():
    loss = toy_loss()
    targets = torch.tensor([[0, 1, 0.0, 0, 20, 20]])  # exactly anchor 0
    a = loss.assign(toy_outputs(), targets)
    assert a.arm_positive.tolist() == [[True, False, False, False, False, False]]
    assert a.odm_positive.tolist() == a.arm_positive.tolist()
    assert a.odm_labels[0, 0] == 2  # class 1 + 1 (0 is the background)
    assert a.arm_negative.sum() <= 3 * a.arm_positive.sum()
    assert a.odm_negative.sum() <= 3 * a.odm_positive.sum()
    assert not (a.arm_negative & a.arm_positive).any()


def test_negative_anchor_filtering_removes_an_anchor_from_the_odm_loss():
    loss = toy_loss()
    targets = torch.tensor([[0, 1, 0.0, 0, 20, 20]])
    value, terms = loss(toy_outputs(arm_background=0.0), targets)
    assert terms["odm_cls"] > 0
    # the ARM is sure anchor 0 is background (p = 0.9999): the ODM loses its only positive,
    # and with it every negative (OHEM takes 3 per positive)
    a = loss.assign(toy_outputs(arm_background=10.0), targets)
    assert a.filtered.tolist() == [[True, False, False, False, False, False]]
    assert not a.odm_positive.any() and not a.odm_negative.any()
    assert a.arm_positive[0, 0]  # the ARM itself still learns it
    _, terms = loss(toy_outputs(arm_background=10.0), targets)
    assert terms["odm_cls"] == 0 and terms["odm_box"] == 0 and terms["arm_cls"] > 0


def test_the_odm_matches_the_refined_anchors():
    loss = toy_loss()
    outputs = toy_outputs()
    # move anchor 4 (20..40) onto the truth at (40, 40, 60, 60) with the ARM's offsets:
    # centre +20 px on a 20 px anchor = 20 / (0.1 x 20) = 10
    with torch.no_grad():
        outputs.arm_loc[0, 4, :2] = 10.0
    targets = torch.tensor([[0, 0, 40.0, 40, 60, 60]])
    a = loss.assign(outputs, targets)
    assert torch.allclose(a.refined[0, 4], torch.tensor([40.0, 40, 60, 60]))
    assert a.odm_positive[0, 4] and not a.arm_positive[0, 4]


def test_loss_terms_add_up_and_gradients_flow_in_every_configuration():
    targets = torch.tensor([[0, 1, 0.0, 0, 20, 20], [0, 0, 38, 41, 61, 58]])
    for options in ({}, {"box_loss": GIoUBoxLoss()}, {"iou_guided": IoUGuided()},
                    {"class_weights": class_weights([10, 1])}, {"uncertainty": True}):
        loss = toy_loss(**options)
        outputs = toy_outputs()
        value, terms = loss(outputs, targets)
        assert torch.isfinite(value)
        assert value.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-5)
        value.backward()
        assert all(torch.isfinite(o.grad).all() for o in outputs)
    assert "log_var" in terms and loss.uncertainty.log_var.grad is not None


def test_class_weights_scale_the_positive_class_term():
    targets = torch.tensor([[0, 1, 0.0, 0, 20, 20]])
    _, plain = toy_loss()(toy_outputs(), targets)
    _, weighted = toy_loss(class_weights=(1.0, 1.0, 4.0))(toy_outputs(), targets)
    # uniform logits: every anchor's CE is ln 3; the positive (class 1 -> index 2) counts 4x
    n_neg = 3
    assert plain["odm_cls"].item() == pytest.approx((1 + n_neg) * math.log(3), rel=1e-5)
    assert weighted["odm_cls"].item() == pytest.approx((4 + n_neg) * math.log(3), rel=1e-5)


def test_class_weights_must_have_one_per_class_and_background():
    with pytest.raises(ValueError, match="3 values"):
        toy_loss(class_weights=(1.0, 2.0))


# ----------------------------------------------------------------------- decoder, NMS, registry


def test_decode_refined_with_zero_offsets_gives_the_priors_and_filters():
    priors = torch.tensor([[0.0, 0, 10, 10], [5, 5, 25, 15]])
    out = RefineOutput(torch.zeros(1, 2, 4), torch.tensor([[[0.0, 0], [6.0, 0]]]),
                       torch.zeros(1, 2, 4), torch.tensor([[[0.0, 1.0, 2.0]] * 2]))
    rows = decode_refined(out, priors)
    assert rows.shape == (1, 2, 4 + 1 + 2)
    assert torch.allclose(rows[0, :, :4], priors)
    assert rows[0, :, 4].tolist() == [1.0, 0.0]  # softmax([6, 0])[0] = 0.9975 > 0.99: filtered
    probs = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)[1:]
    assert torch.allclose(rows[0, 0, 5:], probs)


def test_postprocess_takes_soft_nms_rescored_boxes():
    # two boxes of one class overlapping by IoU 0.6: soft-NMS keeps both, the second decayed
    rows = torch.tensor([[[0.0, 0, 10, 10, 1, 0.9], [0, 0, 10, 6, 1, 0.8]]])
    hard = postprocess(rows, 0.1, 0.5, nms=batched_nms)[0]
    soft = postprocess(rows, 0.1, 0.5, nms=batched_soft_nms)[0]
    assert len(hard["scores"]) == 1
    assert len(soft["scores"]) == 2
    assert soft["scores"][1].item() == pytest.approx(0.8 * math.exp(-(0.6**2) / 0.5), rel=1e-5)


def test_registered_refinedet_basic_and_advanced():
    basic = build_detector("refinedet320", num_classes=3, img_size=128)
    assert basic.rule == "basic" and basic.nms is batched_nms
    assert basic.anchors is None and basic.criterion.uncertainty is None
    assert len(basic.criterion.priors) == (16**2 + 8**2 + 4**2 + 2**2) * 3
    advanced = build_detector("refinedet320", num_classes=3, img_size=128, assign="advanced")
    assert advanced.nms is batched_soft_nms
    assert isinstance(advanced.criterion.box_loss, GIoUBoxLoss)
    assert advanced.criterion.uncertainty is not None
    assert set(refinedet_rules()) == {"basic", "advanced"}
    with pytest.raises(ValueError, match="priors"):
        build_detector("refinedet320", num_classes=3, anchors=[[10, 10]] * 12)
    images = torch.rand(1, 3, 128, 128)
    out = basic.model(images)
    assert out.odm_conf.shape == (1, 1020, 4)  # 3 classes + background


def test_the_short_run_recipe_keeps_eq1_weights_at_one():
    from yolo_teach.experiment import short_run

    for name in ("refinedet320", "refinedet-lite72", "refinedet-lite-nano"):
        assert short_run(name)["class_gain_scale"] == 1.0
    assert short_run("yolov3-nano")["class_gain_scale"] == 4.0  # the YOLO nanos' recipe


def test_two_step_models_follow_their_protocol():
    from yolo_teach.protocols import DetectionModel, TwoStepModel

    for name in ("refinedet-lite-nano", "refinedet320"):
        with torch.device("meta"):
            model = build_detector(name, num_classes=3, img_size=128).model
        assert isinstance(model, TwoStepModel)
        assert len(model.priors(128)) == sum(
            s * s for s in model.feature_sizes(128)) * model.cfg.num_anchors
    assert not isinstance(toy_loss(), TwoStepModel)
    assert isinstance(build_detector("yolov3-nano", 3).model, DetectionModel)
