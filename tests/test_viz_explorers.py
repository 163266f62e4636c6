"""The anchor explorer and the prediction explorer: their pure functions, then the widgets."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from yolo_teach.boxes import box_iou  # noqa: E402
from yolo_teach.detectors import official_anchors  # noqa: E402
from yolo_teach.losses import darknet_rules  # noqa: E402

ASSIGNERS = tuple(darknet_rules())
from yolo_teach.losses import describe_assignment  # noqa: E402
from yolo_teach.metrics import detection_report, mean_average_precision  # noqa: E402
from yolo_teach.metrics.simulate import noisy_detections  # noqa: E402
from yolo_teach.nms import nms  # noqa: E402
from yolo_teach.viz.anchor_explorer import (  # noqa: E402
    RULES,
    anchor_explorer,
    assignment_table_html,
    grid_sizes,
    make_assigner,
    responsibilities,
)
from yolo_teach.viz.prediction_explorer import (  # noqa: E402
    explorer_metrics,
    filter_predictions,
    hwc_image,
    prediction_explorer,
    select_classes,
)

# ----------------------------------------------------------------- responsibilities, by hand
STRIDES = (8, 16, 32)  # at 128 px: 16 x 16, 8 x 8 and 4 x 4 cells
ANCHORS = [torch.tensor([[10.0, 10], [20, 20], [16, 32]]),
           torch.tensor([[30.0, 30], [36, 48], [48, 24]]),
           torch.tensor([[64.0, 64], [80, 40], [120, 100]])]
# one 40 x 40 box centred at (50, 74) px. Shape IoU with each anchor, over 40 * 40 = 1600:
# (10,10) 100/1600 = .0625, (20,20) 400/1600 = .25, (16,32) 512/1600 = .32 |
# (30,30) 900/1600 = .5625, (36,48) 36*40 / (1600 + 1728 - 1440) = .763, (48,24) 960/1792 = .536 |
# (64,64) 1600/4096 = .391, (80,40) 1600/3200 = .5, (120,100) 1600/12000 = .133
BOX = [[30.0, 54, 70, 94]]
# centre in cells: /8 = (6.25, 9.25), /16 = (3.125, 4.625), /32 = (1.5625, 2.3125) -> centre cells
# (gy, gx) = (9, 6), (4, 3), (2, 1)
EXPECTED = {
    # best shape IoU .763 = anchor 1 of stride 16, at its centre cell
    "single": [(1, 1, (4, 3))],
    # IoU > .213: anchors 1, 2 of stride 8; all of stride 16; 0, 1 of stride 32
    "multi": [(0, 1, (9, 6)), (0, 2, (9, 6)), (1, 0, (4, 3)), (1, 1, (4, 3)), (1, 2, (4, 3)),
              (2, 0, (2, 1)), (2, 1, (2, 1))],
    # ratio < 4 for every anchor but (10,10) (40/10 = 4 is not < 4). Neighbours: stride 8,
    # fractions (.25, .25) -> left (9, 5) and up (8, 6); stride 16, (.125, .625) -> left (4, 2)
    # and down (5, 3); stride 32, (.5625, .3125) -> right (2, 2) and up (1, 1)
    "neighbours": [(s, a, cell) for s, a_s, cells in (
        (0, (1, 2), [(8, 6), (9, 5), (9, 6)]),
        (1, (0, 1, 2), [(4, 2), (4, 3), (5, 3)]),
        (2, (0, 1, 2), [(1, 1), (2, 1), (2, 2)]),
    ) for a in a_s for cell in cells],
}


@pytest.mark.parametrize("rule", ASSIGNERS)
def test_responsibilities_hand_computed(rule):
    rows = responsibilities(BOX, [1], ANCHORS, STRIDES, 128, rule)
    assert [(r["scale"], r["anchor"], r["cell"]) for r in rows] == EXPECTED[rule]
    assert all(r["gt"] == 0 and r["label"] == 1 and r["box"] == (30, 54, 70, 94) for r in rows)


def test_responsibilities_row_geometry():
    (row,) = responsibilities(BOX, [1], ANCHORS, STRIDES, 128, "single")
    assert row["stride"] == 16 and row["grid_size"] == (8, 8)
    assert row["anchor_px"] == (36, 48) and row["anchor_grid"] == (2.25, 3.0)  # 36/16, 48/16
    assert row["cell_box"] == (48, 64, 64, 80)  # gx = 3, gy = 4 at stride 16
    assert row["anchor_box"] == (38, 48, 74, 96)  # 36 x 48 centred at the cell centre (56, 72)
    assert row["shape_iou"] == pytest.approx(1440 / 1888)
    assert row["ratio"] == pytest.approx(48 / 40)  # max(40/36, 36/40, 40/48, 48/40)
    assert row["at_centre"]
    neighbours = responsibilities(BOX, [1], ANCHORS, STRIDES, 128, "neighbours")
    assert sum(not r["at_centre"] for r in neighbours) == 2 * 8  # 8 anchors, 2 neighbours each


@pytest.mark.parametrize("rule", ASSIGNERS)
def test_responsibilities_follow_the_library_assigner(rule):
    rng = np.random.default_rng(0)
    xy, wh = rng.uniform(0, 300, (6, 2)), rng.uniform(8, 200, (6, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, 416)], 1)
    labels = rng.integers(0, 3, 6)
    anchors = official_anchors("yolov3", 416)
    grids = grid_sizes(416, STRIDES)
    assert grids == [(52, 52), (26, 26), (13, 13)]
    targets = torch.zeros(6, 6, dtype=torch.float64)
    targets[:, 1], targets[:, 2:] = torch.from_numpy(labels.astype(float)), torch.from_numpy(boxes)
    expected = describe_assignment(make_assigner(rule)(targets, anchors, STRIDES, grids))
    rows = responsibilities(boxes, labels, anchors, STRIDES, 416, rule)
    assert [(r["scale"], r["anchor"], *r["cell"], r["gt"]) for r in rows] == expected
    flat = np.concatenate([a.numpy() for a in anchors]).reshape(-1)
    assert responsibilities(boxes, labels, flat, STRIDES, 416, rule) == rows  # one array, split


def test_responsibilities_empty_and_unknown_rule():
    assert responsibilities(np.zeros((0, 4)), [], ANCHORS, STRIDES, 128, "neighbours") == []
    with pytest.raises(ValueError, match="rule"):
        responsibilities(BOX, [0], ANCHORS, STRIDES, 128, "best")
    assert tuple(RULES) == ASSIGNERS


def test_table_names_ground_truths_nobody_learns():
    # 4 x 4 px: ratio to the smallest anchor (10, 10) is 2.5 < 4, learned; a 2 x 2 box is not
    boxes, labels = [[60.0, 60, 64, 64], [10, 10, 12, 12]], [0, 1]
    rows = responsibilities(boxes, labels, ANCHORS, STRIDES, 128, "neighbours")
    assert {r["gt"] for r in rows} == {0}
    html = assignment_table_html(rows, 2, labels, ["cat", "dog"])
    assert html.count("<tr>") == len(rows) + 1 and "not learned" in html and "#1 dog" in html


# ----------------------------------------------------------------- predictions
def scene_set(seed=0, num_images=5, num_classes=3):
    """Ground truth and noisy detections with many duplicates and low-score false alarms."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(num_images):
        g = int(rng.integers(1, 6))
        xy, wh = rng.uniform(0, 150, (g, 2)), rng.uniform(20, 80, (g, 2))
        gt, gl = np.concatenate([xy, xy + wh], 1), rng.integers(0, num_classes, g)
        preds.append(noisy_detections(gt, gl, rng, num_classes, size=200.0, duplicate_rate=0.7,
                                      false_alarms=8))
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets


def per_class_nms(pred, conf, iou, classes):
    """Reference: plain NMS run class by class, then merged by score."""
    boxes = torch.as_tensor(pred["boxes"], dtype=torch.float64)
    scores = torch.as_tensor(pred["scores"], dtype=torch.float64)
    labels = torch.as_tensor(pred["labels"])
    kept = []
    for c in classes:
        idx = torch.nonzero((labels == c) & (scores >= conf)).flatten()
        kept += idx[nms(boxes[idx], scores[idx], iou)].tolist()
    return sorted(kept, key=lambda i: (-scores[i].item(), i))


@pytest.mark.parametrize("conf, iou, classes", [(0.0, 0.5, None), (0.4, 0.3, None),
                                                (0.2, 0.7, [0, 2]), (0.9, 0.5, [1])])
def test_filter_predictions_equals_nms_per_class(conf, iou, classes):
    preds, _ = scene_set()
    out = filter_predictions(preds, conf, iou, classes)
    for pred, kept in zip(preds, out):
        idx = per_class_nms(pred, conf, iou, classes if classes is not None else range(3))
        np.testing.assert_array_equal(kept["boxes"], np.asarray(pred["boxes"])[idx])
        np.testing.assert_array_equal(kept["scores"], np.asarray(pred["scores"])[idx])
        np.testing.assert_array_equal(kept["labels"], np.asarray(pred["labels"])[idx])
        assert (kept["scores"] >= conf).all() and (np.diff(kept["scores"]) <= 0).all()
        for c in np.unique(kept["labels"]):  # no same-class pair overlaps more than iou
            b = torch.as_tensor(kept["boxes"][kept["labels"] == c])
            assert (box_iou(b, b).fill_diagonal_(0) <= iou).all()
        again = filter_predictions([kept], conf, iou, classes)[0]  # NMS is idempotent
        np.testing.assert_array_equal(again["boxes"], kept["boxes"])


def test_filter_predictions_without_thresholds_keeps_everything():
    preds, _ = scene_set(1)
    # IoU 1.0: nothing overlaps *more* than 1 (the jittered duplicates are not identical)
    for pred, kept in zip(preds, filter_predictions(preds, 0.0, 1.0)):
        assert len(kept["scores"]) == len(pred["scores"])
    tensors = [{k: torch.as_tensor(v) for k, v in p.items()} for p in preds]
    for a, b in zip(filter_predictions(tensors, 0.3, 0.5), filter_predictions(preds, 0.3, 0.5)):
        np.testing.assert_array_equal(a["boxes"], b["boxes"])


def test_explorer_metrics_hand_computed():
    targets = [{"boxes": [[0.0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 1]}]
    preds = [{"boxes": [[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]],
              "scores": [0.9, 0.8, 0.3], "labels": [0, 0, 1]}]
    names = ["cat", "dog"]
    # conf 0: TP cat 0.9, FP cat 0.8, TP dog 0.3 -> P = 2/3, R = 2/2; both APs are 1
    m = explorer_metrics(filter_predictions(preds, 0.0, 0.5), targets, names, 0.0)
    assert (m["tp"], m["fp"], m["fn"], m["num_gt"]) == (2, 1, 0, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["map_50"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)
    # conf 0.5 drops the dog: P = 1/2, R = 1/2, AP(dog) = 0 -> mAP50 = (1 + 0) / 2
    m = explorer_metrics(filter_predictions(preds, 0.5, 0.5), targets, names, 0.5)
    assert (m["precision"], m["recall"], m["map_50"]) == (0.5, 0.5, pytest.approx(0.5))
    # only cats: the dog's miss no longer counts -> P = 1/2, R = 1/1
    m = explorer_metrics(filter_predictions(preds, 0.5, 0.5, [0]), targets, names, 0.5, [0])
    assert (m["precision"], m["recall"], m["fn"]) == (0.5, 1.0, 0)


@pytest.mark.parametrize("conf, classes", [(0.001, None), (0.5, None), (0.3, [0, 2])])
def test_explorer_metrics_equal_the_library(conf, classes):
    preds, targets = scene_set(2)
    filtered = filter_predictions(preds, conf, 0.45, classes)
    m = explorer_metrics(filtered, targets, ["a", "b", "c"], conf, classes)
    chosen = select_classes(targets, classes)
    coco = mean_average_precision(filtered, chosen)
    assert (m["map"], m["map_50"]) == (coco["map"], coco["map_50"])
    report = detection_report(filtered, chosen, ["a", "b", "c"], conf)
    assert (m["precision"], m["recall"]) == (report.precision, report.recall)
    if classes is not None:  # other classes' ground truth is left out
        assert m["num_gt"] == sum(np.isin(t["labels"], classes).sum() for t in targets)


def test_hwc_image():
    chw = torch.rand(3, 20, 30)
    assert hwc_image(chw).shape == (20, 30, 3) and hwc_image(np.zeros((20, 30, 3))).shape[2] == 3
    assert hwc_image(torch.rand(1, 20, 30)).shape == (20, 30)


# ----------------------------------------------------------------- widgets
def test_anchor_explorer_updates_for_every_setting():
    boxes, labels = BOX + [[4.0, 4, 24, 44]], [1, 0]
    image = np.full((128, 128, 3), 90, np.uint8)
    ui = anchor_explorer(image, boxes, labels, ANCHORS, STRIDES, 128, ["cat", "dog"], dpi=40)
    for rule, scale, units in (("single", -1, "px"), ("multi", 0, "grid"),
                               ("neighbours", 2, "grid"), ("neighbours", -1, "px")):
        ui.controls["rule"].value = rule
        ui.controls["scale"].value, ui.controls["units"].value = scale, units
        shown = ui.update()
        expected = responsibilities(boxes, labels, ANCHORS, STRIDES, 128, rule)
        assert shown == [r for r in expected if scale in (-1, r["scale"])]
        assert len(ui.figure.axes) == (3 if scale == -1 else 1)
    assert bytes(ui.picture.value[:4]) == b"\x89PNG"
    assert "stride" in ui.texts[1].value  # the table
    anchor_explorer(None, boxes, labels, ANCHORS, STRIDES, 128, dpi=40)  # flat canvas


def test_prediction_explorer_updates_for_every_setting():
    preds, targets = scene_set(3, num_images=4)
    images = [torch.rand(3, 200, 200) for _ in preds]  # as a data loader gives them
    names = ["a", "b", "c"]
    ui = prediction_explorer(images, preds, targets, names, dpi=40)
    for conf, iou, index, off in ((0.25, 0.45, 0, None), (0.0, 0.7, 3, 1), (0.6, 0.3, 1, 0)):
        ui.controls["conf"].value, ui.controls["iou"].value = conf, iou
        ui.controls["image"].value = index
        for k, box in enumerate(ui.controls["classes"]):
            box.value = k != off
        out = ui.update()
        chosen = [k for k in range(3) if k != off]
        filtered = filter_predictions(preds, conf, iou, chosen)
        expected = explorer_metrics(filtered, targets, names, conf, chosen)
        assert out["image"] == index
        np.testing.assert_array_equal(out["filtered"][index]["boxes"], filtered[index]["boxes"])
        for key in ("precision", "recall", "map_50", "map"):
            assert out["metrics"][key] == expected[key]
    assert bytes(ui.picture.value[:4]) == b"\x89PNG"
    assert "mAP50" in ui.texts[0].value
    prediction_explorer(None, preds, targets, names, dpi=40)  # flat canvases
