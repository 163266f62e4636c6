import numpy as np
import pytest
import torch

from yolo_teach.metrics import (
    COCO_STATS_KEYS,
    average_precision,
    coco_evaluate,
    detection_report,
    mean_average_precision,
    pr_curve,
)
from yolo_teach.metrics.simulate import random_scene_set


# ----------------------------------------------------------------- one curve
def test_average_precision_three_methods_by_hand():
    recall, precision = [0.5, 1.0], [1.0, 0.5]
    # area: recall 0 -> 0.5 at precision 1, 0.5 -> 1 at precision 0.5 = 0.5 + 0.25
    assert average_precision(recall, precision, "all_points") == pytest.approx(0.75)
    # 11 levels: 0, .1, ... .5 see precision 1 (6 levels), .6 ... 1 see 0.5 (5 levels)
    assert average_precision(recall, precision, "voc11") == pytest.approx((6 + 5 * 0.5) / 11)
    # 101 levels: 0 ... .50 (51 levels) at 1, .51 ... 1 (50 levels) at 0.5
    assert average_precision(recall, precision, "coco101") == pytest.approx((51 + 25) / 101)
    with pytest.raises(ValueError, match="method"):
        average_precision(recall, precision, "voc12")


def test_average_precision_uses_the_envelope_and_zero_past_last_recall():
    # precision dips then rises: the envelope lifts the dip to 0.8
    recall, precision = [0.2, 0.4, 0.6], [1.0, 0.5, 0.8]
    assert average_precision(recall, precision, "all_points") == pytest.approx(
        0.2 * 1.0 + 0.4 * 0.8)
    # recall never passes 0.6: levels .61 ... 1 (40 of 101) contribute 0
    expected = (21 * 1.0 + 40 * 0.8) / 101
    assert average_precision(recall, precision, "coco101") == pytest.approx(expected)


# ----------------------------------------------------------------- COCO mAP vs pycocotools
@pytest.mark.parametrize("seed", range(6))
def test_map_equals_pycocotools_on_random_scene_sets(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_scene_set(rng, int(rng.integers(60, 501)), int(rng.integers(1, 21)))
    ours = mean_average_precision(preds, targets)
    ref = coco_evaluate(preds, targets)
    for key in COCO_STATS_KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-4), key


def test_map_accepts_torch_tensors_and_reports_per_class():
    rng = np.random.default_rng(11)
    preds, targets = random_scene_set(rng, 60, 5)
    as_torch = [{k: torch.as_tensor(v) for k, v in d.items()} for d in preds]
    ours = mean_average_precision(as_torch, targets)
    assert ours["map"] == pytest.approx(mean_average_precision(preds, targets)["map"])
    valid = ours["map_per_class"] > -1
    assert ours["map"] == pytest.approx(ours["map_per_class"][valid].mean())
    assert len(ours["classes"]) == len(ours["map_per_class"]) == len(ours["mar_100_per_class"])


def test_perfect_predictions_score_one_and_none_score_zero():
    boxes = np.array([[0, 0, 50, 50], [60, 60, 200, 200], [5, 100, 20, 110.0]])
    labels = np.array([0, 1, 0])
    targets = [{"boxes": boxes, "labels": labels}]
    perfect = [{"boxes": boxes, "scores": np.array([0.9, 0.8, 0.7]), "labels": labels}]
    assert mean_average_precision(perfect, targets)["map"] == pytest.approx(1.0)
    nothing = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)}]
    result = mean_average_precision(nothing, targets)
    assert result["map"] == 0 and result["mar_100"] == 0
    assert coco_evaluate(nothing, targets)["map"] == 0
    # nothing at all to evaluate: COCOeval's -1
    empty_t = [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}]
    assert mean_average_precision(nothing, empty_t)["map"] == -1


# ----------------------------------------------------------------- PR curve and Darknet report
def two_class_example():
    targets = [
        {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": np.array([0, 1])},
        {"boxes": np.array([[0, 0, 10, 10]]), "labels": np.array([0])},
    ]
    preds = [
        # class 0: exact hit; a half box (IoU 0.5) whose ground truth is already taken; class 1 hit
        {"boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 28]]),
         "scores": np.array([0.9, 0.3, 0.8]), "labels": np.array([0, 0, 1])},
        {"boxes": np.array([[50, 50, 60, 60]]), "scores": np.array([0.6]), "labels": np.array([0])},
    ]
    return preds, targets


def test_pr_curve_by_hand():
    preds, targets = two_class_example()
    recall, precision, scores = pr_curve(preds, targets, label=0)
    # class 0, by score: 0.9 TP, 0.6 FP (no overlap), 0.3 duplicate of a matched box -> FP
    assert scores.tolist() == [0.9, 0.6, 0.3]
    assert recall.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert precision.tolist() == pytest.approx([1, 0.5, 1 / 3])


def test_detection_report_by_hand():
    preds, targets = two_class_example()
    report = detection_report(preds, targets, ["mask", "no_mask"], conf_threshold=0.5)
    # above 0.5: class 0 has 0.9 (TP) and 0.6 (FP); class 1 has 0.8 (TP, IoU 80/100)
    assert report.tp.tolist() == [1, 1] and report.fp.tolist() == [1, 0]
    assert report.num_gt.tolist() == [2, 1] and report.detections_count == 4
    assert report.precision == pytest.approx(2 / 3) and report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(2 / 3)
    # average IoU over the 3 detections above threshold: (1.0 + 0.0 + 0.8) / 3
    assert report.average_iou == pytest.approx(1.8 / 3)
    # AP class 0: recall 0.5 at precision 1 -> 0.5; class 1: 1.0
    assert report.ap.tolist() == pytest.approx([0.5, 1.0])
    assert report.map == pytest.approx(0.75)
    text = str(report)
    assert "class_id = 0, name = mask, ap = 50.00%" in text
    assert "TP = 2, FP = 1, FN = 1, average IoU = 60.00 %" in text
    assert "mean average precision (mAP@0.50) = 0.750000, or 75.00 %" in text
