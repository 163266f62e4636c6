import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.boxes import (  # noqa: E402
    box_iou,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
)
from yolo_teach.nms import batched_nms, diou_nms, nms, soft_nms  # noqa: E402
from yolo_teach.viz import (  # noqa: E402
    CLASS_COLORS,
    NMS_METHODS,
    apply_nms,
    box_geometry,
    class_color,
    draw_boxes,
    draw_canvas,
    draw_iou_geometry,
    draw_nms_step,
    greedy_nms_steps,
    iou_family_curves,
    iou_family_values,
    iou_playground,
    nms_explorer,
)


def new_ax():
    return Figure(figsize=(2, 2), dpi=50).add_subplot()


def random_detections(rng, n, num_classes=3, side=200.0):
    xy = rng.uniform(0, side, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.random(n).round(2)  # rounding makes ties
    return boxes, scores, rng.integers(0, num_classes, n)


# ----------------------------------------------------------------- IoU family numbers
def test_iou_family_values_hand_computed():
    gt, pred = (50, 50, 150, 150), (100, 100, 200, 200)
    v = iou_family_values(pred, gt)
    # intersection 50x50 = 2500, union 2 * 10000 - 2500 = 17500 -> IoU = 1/7
    assert v["iou"] == pytest.approx(1 / 7)
    # C = (50, 50, 200, 200), area 22500; C minus the union = 5000 -> GIoU = 1/7 - 2/9
    assert v["giou"] == pytest.approx(1 / 7 - 2 / 9)
    # centres (100, 100) and (150, 150): rho^2 = 5000; c^2 = 150^2 + 150^2 = 45000
    assert v["diou"] == pytest.approx(1 / 7 - 1 / 9)
    assert v["rho2_c2"] == pytest.approx(1 / 9)
    # same aspect ratio: v = 0, CIoU = DIoU
    assert v["ciou"] == pytest.approx(v["diou"])
    for k in ("iou", "giou", "diou", "ciou"):
        assert v[f"{k}_loss"] == pytest.approx(1 - v[k])


def test_iou_family_values_disjoint_boxes():
    gt, pred = (50, 50, 150, 150), (200, 50, 300, 150)
    v = iou_family_values(pred, gt)
    # no overlap: IoU 0. C = (50, 50, 300, 150): 25000, union 20000 -> GIoU = -5000/25000
    assert v["iou"] == pytest.approx(0.0, abs=1e-9)
    assert v["giou"] == pytest.approx(-0.2)
    # rho = 150, c^2 = 250^2 + 100^2 = 72500
    assert v["diou"] == pytest.approx(-22500 / 72500)


def test_ciou_penalises_aspect_ratio():
    gt, pred = (0, 0, 100, 100), (25, -50, 75, 150)  # same centre, 50x200 against 100x100
    v = iou_family_values(pred, gt)
    # intersection 50x100 = 5000, union 10000 + 10000 - 5000 -> IoU 1/3; centres coincide
    assert v["iou"] == pytest.approx(1 / 3)
    assert v["diou"] == pytest.approx(v["iou"])
    # v = 4/pi^2 (atan(100/100) - atan(50/200))^2, alpha = v / (1 - IoU + v)
    vv = 4 / math.pi**2 * (math.atan(1.0) - math.atan(0.25)) ** 2
    assert v["alpha_v"] == pytest.approx(vv / (2 / 3 + vv) * vv, rel=1e-6)
    assert v["ciou"] < v["diou"]


def test_iou_family_values_match_library_and_geometry():
    rng = np.random.default_rng(0)
    for _ in range(20):
        boxes = random_detections(rng, 2)[0]
        pred, gt = boxes[:1], boxes[1:]  # (1, 4) each
        v = iou_family_values(pred, gt)
        p, g = torch.tensor(pred), torch.tensor(gt)
        for key, fn in (("iou", box_iou), ("giou", generalized_box_iou),
                        ("diou", distance_box_iou), ("ciou", complete_box_iou)):
            assert v[key] == pytest.approx(float(fn(p, g)[0, 0]), abs=1e-12)
        geo = box_geometry(pred, gt)  # independent NumPy geometry
        assert v["rho2_c2"] == pytest.approx(geo["rho"] ** 2 / geo["c"] ** 2, abs=1e-9)
        x1, y1, x2, y2 = geo["enclosing"]
        area_c = (x2 - x1) * (y2 - y1)
        inter = 0.0
        if geo["intersection"] is not None:
            a, b, c, d = geo["intersection"]
            inter = (c - a) * (d - b)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = areas.sum() - inter
        assert v["iou"] == pytest.approx(inter / union, abs=1e-9)
        assert v["enclosure"] == pytest.approx((area_c - union) / area_c, abs=1e-9)


def test_box_geometry_hand_computed():
    geo = box_geometry((200, 50, 300, 150), (50, 50, 150, 150))
    assert geo["intersection"] is None
    assert geo["enclosing"] == (50, 50, 300, 150)
    assert geo["rho"] == pytest.approx(150)  # centres (250, 100) and (100, 100)
    assert geo["c"] == pytest.approx(math.hypot(250, 100))


def test_iou_family_curves_equal_pointwise_values():
    gt = (100, 100, 200, 200)
    centres = np.stack([np.linspace(0, 300, 7), np.full(7, 150.0)], 1)
    curves = iou_family_curves(gt, (100, 50), centres)
    for i, (cx, cy) in enumerate(centres):
        v = iou_family_values((cx - 50, cy - 25, cx + 50, cy + 25), gt)
        for key in ("iou", "giou", "diou", "ciou"):
            assert curves[key][i] == pytest.approx(v[key], abs=1e-12)
    assert curves["iou"][0] == 0 and curves["giou"][0] < curves["giou"][2]  # GIoU is not flat


# ----------------------------------------------------------------- NMS selection
@pytest.mark.parametrize("seed", range(4))
def test_apply_nms_equals_library_on_the_confident_boxes(seed):
    rng = np.random.default_rng(seed)
    boxes, scores, labels = random_detections(rng, 40)
    conf, iou = 0.3, 0.4
    cand = np.flatnonzero(scores >= conf)
    b, s = torch.tensor(boxes[cand]), torch.tensor(scores[cand])
    lab = torch.tensor(labels[cand])
    expected = {
        "greedy": nms(b, s, iou),
        "batched": batched_nms(b, s, lab, iou),
        "diou": diou_nms(b, s, iou),
        "soft_linear": soft_nms(b, s, iou, method="linear", score_threshold=conf)[0],
        "soft_gaussian": soft_nms(b, s, iou, sigma=0.5, method="gaussian",
                                  score_threshold=conf)[0],
    }
    for method in NMS_METHODS:
        res = apply_nms(boxes, scores, labels, method, conf, iou)
        assert res.keep.tolist() == cand[expected[method].numpy()].tolist(), method
        assert res.candidates.tolist() == cand.tolist()
        assert sorted(res.keep.tolist() + res.suppressed.tolist()) == cand.tolist()
        if method.startswith("soft"):
            assert np.all(res.scores <= scores[res.keep] + 1e-12) and np.all(res.scores >= conf)
        else:
            assert np.allclose(res.scores, scores[res.keep])


def test_apply_nms_classes_and_thresholds():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10.5]])
    scores, labels = np.array([0.9, 0.8, 0.2]), np.array([0, 1, 0])
    # boxes 0 and 1: IoU 81/119 = 0.68 -> greedy removes 1, per class both stay
    assert apply_nms(boxes, scores, labels, "greedy", 0.1, 0.5).keep.tolist() == [0]
    assert apply_nms(boxes, scores, labels, "batched", 0.1, 0.5).keep.tolist() == [0, 1]
    # confidence 0.85 leaves only box 0
    res = apply_nms(boxes, scores, labels, "greedy", 0.85, 0.5)
    assert res.candidates.tolist() == [0] and res.suppressed.tolist() == []
    # soft-NMS, linear: box 1 decays to 0.8 * (1 - 0.68) = 0.26 and survives confidence 0.1
    res = apply_nms(boxes, scores, labels, "soft_linear", 0.1, 0.5)
    assert res.keep[:2].tolist() == [0, 1]
    assert res.scores[1] == pytest.approx(0.8 * (1 - 81 / 119))
    with pytest.raises(ValueError, match="method"):
        apply_nms(boxes, scores, labels, "fast", 0.1, 0.5)


def test_apply_nms_is_idempotent():
    rng = np.random.default_rng(7)
    boxes, scores, labels = random_detections(rng, 50)
    for method in ("greedy", "batched", "diou"):
        keep = apply_nms(boxes, scores, labels, method, 0.2, 0.5).keep
        again = apply_nms(boxes[keep], scores[keep], labels[keep], method, 0.2, 0.5).keep
        assert keep[again].tolist() == keep.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_greedy_nms_steps_replay_nms(seed):
    rng = np.random.default_rng(seed)
    boxes, scores, _ = random_detections(rng, 30)
    steps = greedy_nms_steps(boxes, scores, 0.3)
    kept = [i for i, _ in steps]
    assert kept == nms(torch.tensor(boxes), torch.tensor(scores), 0.3).tolist()
    removed = np.concatenate([r for _, r in steps])
    assert sorted(kept + removed.tolist()) == list(range(30))  # each box leaves exactly once
    assert greedy_nms_steps(np.zeros((0, 4)), np.zeros(0), 0.5) == []


# ----------------------------------------------------------------- drawing
def test_class_colors_are_stable():
    assert class_color(0) == CLASS_COLORS[0]
    assert class_color(len(CLASS_COLORS) + 2) == CLASS_COLORS[2]


def test_draw_boxes_one_patch_and_one_tag_per_box():
    ax = draw_canvas(new_ax(), (100, 80))
    assert ax.get_ylim() == (80, 0)  # image coordinates
    boxes = torch.tensor([[10.0, 10, 40, 40], [20, 30, 90, 70], [0, 0, 5, 5]])
    draw_boxes(ax, boxes, labels=[0, 1, 2], scores=[0.9, 0.5, 0.1], class_names=["a", "b", "c"])
    assert len(ax.patches) == 3 and len(ax.texts) == 3
    assert ax.texts[0].get_text() == "a 0.90"
    draw_boxes(ax, boxes[:2], color="k", linestyle="--", text=False)
    assert len(ax.patches) == 5 and len(ax.texts) == 3
    ax2 = draw_canvas(new_ax(), image=np.zeros((30, 50, 3), np.uint8))
    assert len(ax2.images) == 1 and ax2.get_xlim() == (0, 50)


def test_draw_canvas_grey_images_keep_their_levels():
    # a dark image stays dark: grey levels are not stretched to the image's own range
    ax = draw_canvas(new_ax(), image=np.full((20, 30), 40, np.uint8))
    assert ax.images[0].get_clim() == (0, 255)
    ax = draw_canvas(new_ax(), image=np.full((20, 30), 0.2))
    assert ax.images[0].get_clim() == (0, 1)
    with pytest.raises(ValueError, match="size"):
        draw_canvas(new_ax())


def test_draw_iou_geometry_patches_and_lines():
    ax = draw_iou_geometry(new_ax(), (100, 100, 200, 200), (50, 50, 150, 150))
    assert len(ax.patches) == 4 and len(ax.lines) == 2  # C, gt, pred, intersection; rho, c
    ax = draw_iou_geometry(new_ax(), (200, 50, 300, 150), (50, 50, 150, 150), legend=False)
    assert len(ax.patches) == 3  # disjoint: no intersection


def test_draw_nms_step_draws_what_is_left():
    rng = np.random.default_rng(3)
    boxes, scores, labels = random_detections(rng, 15)
    steps = greedy_nms_steps(boxes, scores, 0.3)
    for k in range(len(steps)):
        ax = draw_nms_step(new_ax(), boxes, scores, labels, steps, k)
        removed_before = sum(len(r) for _, r in steps[:k])
        assert len(ax.patches) == 15 - removed_before


# ----------------------------------------------------------------- widgets
def test_iou_playground_updates_from_sliders():
    ui = iou_playground(gt=(50, 50, 150, 150), pred=(100, 100, 200, 200))
    assert ui.update()["iou"] == pytest.approx(1 / 7)
    for cx, w in ((100.0, 100.0), (250.0, 100.0), (100.0, 20.0)):
        ui.controls["cx"].value, ui.controls["cy"].value = cx, 100.0
        ui.controls["w"].value, ui.controls["h"].value = w, 100.0
        expected = iou_family_values((cx - w / 2, 50, cx + w / 2, 150), (50, 50, 150, 150))
        assert ui.update() == pytest.approx(expected)
    assert ui.update()["iou"] == pytest.approx(0.2)  # 20x100 inside 100x100
    assert "GIoU" in ui.texts[0].value
    assert bytes(ui.picture.value[:4]) == b"\x89PNG"  # the picture, as a PNG image widget


def test_nms_explorer_updates_for_every_method():
    rng = np.random.default_rng(1)
    boxes, scores, labels = random_detections(rng, 25)
    ui = nms_explorer(boxes, scores, labels, class_names=["a", "b", "c"], gt_boxes=boxes[:3])
    for method in NMS_METHODS:
        for conf, iou in ((0.0, 0.5), (0.5, 0.3), (1.0, 0.9)):
            ui.controls["method"].value = method
            ui.controls["conf"].value, ui.controls["iou"].value = conf, iou
            res = ui.update()
            expected = apply_nms(boxes, scores, labels, method, conf, iou)
            assert res.keep.tolist() == expected.keep.tolist()
    image = np.full((240, 300, 3), 200, np.uint8)
    nms_explorer(boxes, scores, labels, image=image).update()
