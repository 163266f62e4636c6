import warnings

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
from yolo_teach.metrics.coco import map_by_area
from yolo_teach.metrics.matching import pairwise_iou
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


def test_voc11_on_a_curve_whose_recall_stays_below_one():
    recall, precision = [0.2, 0.4], [1.0, 0.5]
    # levels 0, .1, .2 (recall >= .2 includes the point at .2 itself) see 1.0; .3, .4 see 0.5;
    # .5 ... 1 (6 levels) lie beyond the last recall and count 0
    assert average_precision(recall, precision, "voc11") == pytest.approx((3 * 1.0 + 2 * 0.5) / 11)
    # all points: 0.2 * 1.0 + (0.4 - 0.2) * 0.5; coco101: levels 0 ... .20 (21) at 1.0, .21 ...
    # .40 (20) at 0.5, the 60 levels past 0.4 at 0
    assert average_precision(recall, precision, "all_points") == pytest.approx(0.2 + 0.1)
    assert average_precision(recall, precision) == pytest.approx((21 + 20 * 0.5) / 101)  # coco101


def voc_ap(recall, precision):
    """The VOC2010 devkit's all-points AP, with its sentinels, in plain Python."""
    mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec))
               if mrec[i] != mrec[i - 1])


@pytest.mark.parametrize("seed", range(5))
def test_all_points_ap_equals_the_voc_devkit(seed):
    rng = np.random.default_rng(seed)
    hits = rng.random(40) < 0.6  # detections by decreasing score: true or false positives
    tp = np.cumsum(hits)
    recall = tp / (hits.sum() + int(rng.integers(0, 5)))  # some objects never found
    precision = tp / np.arange(1, 41)
    ours = average_precision(recall, precision, "all_points")
    assert ours == pytest.approx(voc_ap(recall.tolist(), precision.tolist()), abs=1e-12)


def test_average_precision_computes_in_float64():
    # a float16 curve: its values are float16, its area is summed in float64
    rng = np.random.default_rng(0)
    recall = np.sort(rng.random(200)).astype(np.float16)
    precision = rng.random(200).astype(np.float16)
    for method in ("all_points", "voc11", "coco101"):
        ref = average_precision(recall.astype(np.float64), precision.astype(np.float64), method)
        assert average_precision(recall, precision, method) == pytest.approx(ref, abs=1e-12)


def test_empty_curve_has_zero_ap():
    for method in ("all_points", "voc11", "coco101"):
        assert average_precision([], [], method) == 0


# ----------------------------------------------------------------- COCO mAP vs pycocotools
@pytest.mark.parametrize("seed", range(6))
def test_map_equals_pycocotools_on_random_scene_sets(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_scene_set(rng, int(rng.integers(60, 501)), int(rng.integers(1, 21)))
    ours = mean_average_precision(preds, targets)
    ref = coco_evaluate(preds, targets)
    for key in COCO_STATS_KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-4), key



def _cocoeval_by_area(preds, targets, ranges):
    """pycocotools' COCOeval with ``params.areaRng`` set to ``ranges``: AP and AP50 per range."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from yolo_teach.metrics.coco import to_coco

    dataset, results = to_coco(preds, targets)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluator.params.areaRng = [list(r) for r in ranges.values()]
        evaluator.params.areaRngLbl = list(ranges)
        evaluator.evaluate()
        evaluator.accumulate()
    out = {}
    for a, name in enumerate(ranges):
        p = evaluator.eval["precision"][:, :, :, a, -1]  # (T, R, K) at 100 detections
        p50 = p[0][p[0] > -1]
        out[name] = (p[p > -1].mean() if (p > -1).any() else -1.0,
                     p50.mean() if p50.size else -1.0)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_map_by_area_equals_pycocotools_with_the_same_area_ranges(seed):
    rng = np.random.default_rng(100 + seed)
    preds, targets = random_scene_set(rng, int(rng.integers(60, 301)), int(rng.integers(1, 8)))
    ranges = {"all": (0, 1e10), "lt16": (0, 16**2), "16-48": (16**2, 48**2),
              "gt48": (48**2, 1e10), "empty": (1e9, 1e10)}
    ours = map_by_area(preds, targets, ranges)
    ref = _cocoeval_by_area(preds, targets, ranges)
    for name in ranges:
        assert ours[name]["map"] == pytest.approx(ref[name][0], abs=1e-6), name
        assert ours[name]["map_50"] == pytest.approx(ref[name][1], abs=1e-6), name
    assert ours["all"]["map"] == pytest.approx(mean_average_precision(preds, targets)["map"])
    assert ours["empty"] == {"map": -1.0, "map_50": -1.0, "num_gt": 0}
    sides = [np.sqrt(np.prod(t["boxes"][:, 2:] - t["boxes"][:, :2], axis=1)) for t in targets]
    assert ours["lt16"]["num_gt"] == sum(int((s <= 16).sum()) for s in sides)


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


def one_image(gt_boxes, gt_labels, dt_boxes, dt_scores, dt_labels):
    targets = [{"boxes": np.array(gt_boxes, dtype=float).reshape(-1, 4),
                "labels": np.array(gt_labels)}]
    preds = [{"boxes": np.array(dt_boxes, dtype=float).reshape(-1, 4),
              "scores": np.array(dt_scores, dtype=float), "labels": np.array(dt_labels)}]
    return preds, targets


def test_a_32x32_box_is_small_and_medium():
    # area 32^2 = 1024 is the upper end of "small" and the lower end of "medium" (COCO's ranges
    # include both ends): the 32x32 ground truth is regular in both, so is the 32x32 false alarm
    # scored above the hit. Precision at recall 1 is then 1/2 in both ranges; "large" has no
    # regular ground truth (-1)
    preds, targets = one_image([[0, 0, 32, 32]], [0], [[100, 100, 132, 132], [0, 0, 32, 32]],
                               [0.9, 0.8], [0, 0])
    ours = mean_average_precision(preds, targets)
    assert (ours["map_small"], ours["map_medium"], ours["map_large"]) == (0.5, 0.5, -1)
    ref = coco_evaluate(preds, targets)
    assert (ref["map_small"], ref["map_medium"], ref["map_large"]) == (0.5, 0.5, -1)


def test_a_regular_ground_truth_beats_a_better_ignored_one():
    # in "medium" (32^2 ... 96^2 = 9216) a 100x90 ground truth (area 9000) is regular and a
    # 100x100 one (10,000) ignored. The detection (0, 0, 100, 100) has IoU 9000/10000 = 0.9 with
    # the regular box and 1 with the ignored one: at the 9 thresholds 0.50 ... 0.90 it matches the
    # regular box (a hit), only at 0.95 the ignored one. AP 9/10 (0 if the ignored box won)
    preds, targets = one_image([[0, 0, 100, 90], [0, 0, 100, 100]], [0, 0], [[0, 0, 100, 100]],
                               [0.9], [0])
    ours, ref = mean_average_precision(preds, targets), coco_evaluate(preds, targets)
    assert ours["map_medium"] == pytest.approx(ref["map_medium"], abs=1e-12)
    assert ours["map_medium"] == pytest.approx(0.9) and ours["mar_medium"] == pytest.approx(0.9)


def test_classes_without_regular_ground_truth_are_left_out():
    # class 0: one ground truth, found (AP 1); class 1: one ground truth, missed (AP 0);
    # class 2: a false alarm and no ground truth at all (-1, not averaged)
    preds, targets = one_image([[0, 0, 50, 50], [100, 100, 150, 150]], [0, 1],
                               [[0, 0, 50, 50], [200, 200, 250, 250]], [0.9, 0.8], [0, 2])
    ours = mean_average_precision(preds, targets)
    assert ours["classes"].tolist() == [0, 1, 2]
    assert ours["map_per_class"].tolist() == pytest.approx([1.0, 0.0, -1.0])
    assert ours["mar_100_per_class"].tolist() == [1.0, 0.0, -1.0]
    assert ours["map"] == pytest.approx(0.5) == coco_evaluate(preds, targets)["map"]


def test_one_exact_hit_scores_what_pycocotools_scores():
    # precision is tp / (tp + fp + spacing(1)) in COCOeval: 1 / (1 + 2.2e-16), not 1
    preds, targets = one_image([[0, 0, 50, 50]], [0], [[0, 0, 50, 50]], [0.9], [0])
    ref = coco_evaluate(preds, targets)
    assert mean_average_precision(preds, targets)["map"] == ref["map"] == 1 / (1 + np.spacing(1))


def test_an_iou_equal_to_the_threshold_matches():
    # (0, 0, 10, 5) covers half of (0, 0, 10, 10): IoU exactly 0.5 counts at threshold 0.5
    preds, targets = one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 5]], [0.9], [0])
    recall, precision, _ = pr_curve(preds, targets, label=0, iou_threshold=0.5)
    assert recall.tolist() == [1.0] and precision.tolist() == [1.0]
    # at threshold 1, a box equal up to rounding still matches: 0.1 + 0.2 = 0.30000000000000004
    # gives IoU 0.3 / 0.30000000000000004 < 1 (COCOeval caps the threshold at 1 - 1e-10)
    preds, targets = one_image([[0, 0, 0.3, 1]], [0], [[0, 0, 0.1 + 0.2, 1]], [0.9], [0])
    assert pr_curve(preds, targets, label=0, iou_threshold=1.0)[0].tolist() == [1.0]


def test_equal_scores_keep_their_input_order():
    # 40 detections with one score: by input order, COCOeval's stable sort. Hits (even indices)
    # and misses alternate, so precision is 1, 1/2, 2/3, 2/4, ... and pycocotools agrees
    gt = [[i * 20, 0, i * 20 + 10, 10] for i in range(20)]
    dt = [box for g in gt for box in (g, [g[0], 500, g[2], 510])]
    preds, targets = one_image(gt, [0] * 20, dt, [0.5] * 40, [0] * 40)
    ours, ref = mean_average_precision(preds, targets), coco_evaluate(preds, targets)
    assert ours["map"] == pytest.approx(ref["map"], abs=1e-12)
    recall, precision, _ = pr_curve(preds, targets, label=0)
    assert precision[:4].tolist() == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4])


def test_inputs_of_other_types_are_converted():
    # uint8 pixel boxes (products overflow uint8), uint8 scores (0 - 255: negating them wraps),
    # tensors straight from a model (requires_grad) and columns read as text
    preds, targets = one_image([[0, 0, 20, 20], [40, 40, 60, 60]], [0, 1],
                               [[0, 0, 20, 20], [40, 40, 60, 60], [80, 80, 99, 99]],
                               [0.0, 0.5, 0.9], [0, 1, 1])
    ref = mean_average_precision(preds, targets)
    as_uint8 = [{"boxes": preds[0]["boxes"].astype(np.uint8),
                 "scores": (preds[0]["scores"] * 255).astype(np.uint8),
                 "labels": preds[0]["labels"]}]
    with_grad = [{k: torch.tensor(v, dtype=torch.float32, requires_grad=k != "labels")
                  if k != "labels" else torch.tensor(v) for k, v in preds[0].items()}]
    as_text = [{k: v.astype(str) for k, v in preds[0].items()}]
    targets_text = [{k: v.astype(str) for k, v in targets[0].items()}]
    targets_uint8 = [{"boxes": targets[0]["boxes"].astype(np.uint8),
                      "labels": targets[0]["labels"]}]
    for p, t in ((as_uint8, targets_uint8), (with_grad, targets), (as_text, targets_text)):
        assert mean_average_precision(p, t)["map"] == pytest.approx(ref["map"], abs=1e-12)


def test_preds_and_targets_must_pair_up():
    preds, targets = one_image([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])
    with pytest.raises(ValueError):
        mean_average_precision(preds, targets * 2)


def test_empty_images_given_as_flat_arrays():
    # no detections as np.zeros(0) (no columns) and one box as a flat (4,) array
    targets = [{"boxes": np.array([0.0, 0, 10, 10]), "labels": np.array([0])}]
    nothing = [{"boxes": np.zeros(0), "scores": np.zeros(0), "labels": np.zeros(0)}]
    assert mean_average_precision(nothing, targets)["map"] == 0
    found = [{"boxes": np.array([0.0, 0, 10, 10]), "scores": np.array([0.9]),
              "labels": np.array([0])}]
    assert mean_average_precision(found, targets)["map"] == pytest.approx(1)


def test_pairwise_iou_by_hand():
    a = np.array([[0.0, 0, 1, 1], [0, 0, 2, 2], [5, 5, 5, 5]])
    b = np.array([[0.0, 0, 1, 1], [3, 0, 4, 1], [0, 3, 1, 4], [5, 5, 5, 5]])
    # 1x1 boxes: equal (IoU 1), apart in x or in y (0); inside the 2x2 box: 1/4; points: 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 of two points: no warning either
        iou = pairwise_iou(a, b)
    assert iou.tolist() == [[1, 0, 0, 0], [0.25, 0, 0, 0], [0, 0, 0, 0]]


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
