"""Two-step regression in pictures (RefineDet §3): the functions on a RefineDetLite nano with
random weights, checked against the raw model output, then the drawing and the widget."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from yolo_teach.data.sources import load_dataset  # noqa: E402
from yolo_teach.decode import SSDBoxCoder  # noqa: E402
from yolo_teach.detectors import build_detector  # noqa: E402
from yolo_teach.viz import refinedet_view  # noqa: E402
from yolo_teach.viz.attention_widget import network_input  # noqa: E402
from yolo_teach.viz.panel import MIN_TEXT_PX, WidgetPanel, smallest_text_px  # noqa: E402
from yolo_teach.viz.refinedet_view import (  # noqa: E402
    TwoStep,
    anchor_levels,
    draw_two_step,
    level_selection,
    two_step,
    two_step_counts,
    two_step_explorer,
    two_step_line,
)

SIZE, K = 128, 7
MAPS, A = [16, 8, 4, 2], 4  # the nano at 128 px: strides 8 .. 64, 4 anchors per location
N = sum(s * s for s in MAPS) * A  # (256 + 64 + 16 + 4) x 4 = 1,360 anchors
PNG = b"\x89PNG\r\n\x1a\n"


def fresh():
    """A seeded refinedet-lite-nano as built: every anchor starts at p(object) ~ 0.01."""
    torch.manual_seed(0)
    return build_detector("refinedet-lite-nano", num_classes=K, img_size=SIZE)


def lively():
    """Random weights with spread-out predictions: as built, every p(object) sits at ~0.01
    (init_bias), so nothing would be selected and about half the anchors would sit at the
    filter threshold. Larger prediction weights give some anchors far above 0.5, some far below
    the threshold, offsets that visibly move the anchors and confident classes."""
    det = fresh()
    model = det.model
    model.init_bias(0.05)
    with torch.no_grad():
        for conv in model.arm.conf:
            torch.nn.init.normal_(conv.weight, std=2.0)
        for conv in model.arm.loc:
            torch.nn.init.normal_(conv.weight, std=0.3)
        for conv in model.odm.conf:
            torch.nn.init.normal_(conv.weight, std=1.0)
    return det


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions gain nothing from a second thread and stall when the cores are busy
    (two OpenMP threads spinning against another process: seconds instead of milliseconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_dataset("shapes", "val", n=3, seed=0)


@pytest.fixture(scope="module")
def detector():
    return lively()


@pytest.fixture(scope="module")
def result(detector, data):
    detector.model.train()  # two_step runs in eval mode and restores the flag
    r = two_step(detector, data.images[0], data.class_names)
    assert detector.model.training
    detector.model.eval()
    return r


def hand_result(p_object, filtered=None) -> TwoStep:
    """A TwoStep over maps [2, 1] with A = 2 (10 rows) and the given objectness."""
    p_object = np.asarray(p_object, dtype=float)
    n = len(p_object)
    priors = np.tile([[0.0, 0.0, 4.0, 4.0]], (n, 1)) + np.arange(n)[:, None]  # (10, 4)
    return TwoStep(
        picture=np.zeros((8, 8, 3), np.uint8), priors=priors, refined=priors + 0.5,
        boxes=priors + 1.0, p_object=p_object,
        filtered=p_object < 0.01 if filtered is None else np.asarray(filtered),
        class_probs=np.full((n, 2), 0.5), level=anchor_levels([2, 1], 2), map_sizes=[2, 1],
        anchors_per_location=2,
        detections={"boxes": np.array([[1.0, 1, 5, 5], [2, 2, 6, 6]]),
                    "scores": np.array([0.8, 0.2]), "labels": np.array([0, 1])},
        class_names=["a", "b"], strides=(4.0, 8.0))


# ---- anchor_levels ------------------------------------------------------------------------
def test_anchor_levels_hand_case():
    # maps 2 x 2 and 1 x 1, A = 2: 2*2*2 = 8 rows of level 0, then 1*1*2 = 2 of level 1
    assert anchor_levels([2, 1], 2).tolist() == [0] * 8 + [1] * 2
    # (h, w) pairs: 2 x 3 cells, A = 1 -> 6 rows; 1 x 2 -> 2 rows
    assert anchor_levels([(2, 3), (1, 2)], 1).tolist() == [0] * 6 + [1] * 2


# ---- two_step -----------------------------------------------------------------------------
def test_two_step_shapes(result, data):
    r = result
    assert r.picture.shape == (SIZE, SIZE, 3) and r.picture.dtype == np.uint8
    for boxes in (r.priors, r.refined, r.boxes):
        assert boxes.shape == (N, 4) and np.isfinite(boxes).all()
    assert r.p_object.shape == (N,) and ((r.p_object >= 0) & (r.p_object <= 1)).all()
    assert r.filtered.shape == (N,) and r.filtered.dtype == bool
    assert r.class_probs.shape == (N, K)
    assert r.level.shape == (N,) and np.bincount(r.level).tolist() == [s * s * A for s in MAPS]
    assert list(r.map_sizes) == MAPS and r.anchors_per_location == A
    assert r.strides == (8.0, 16.0, 32.0, 64.0) and r.filter_threshold == 0.99
    assert r.class_names == list(data.class_names)
    d = r.detections
    n = len(d["scores"])
    assert n > 0 and d["boxes"].shape == (n, 4) and d["labels"].shape == (n,)
    assert np.all(np.diff(d["scores"]) <= 0) and d["scores"].min() > 0.01
    # the lively weights spread the ARM: some anchors filtered, some above 0.5
    assert 0 < r.filtered.sum() < N and (r.p_object >= 0.5).any()


def test_two_step_matches_the_raw_output(detector, data, result):
    model = detector.model
    tensor, picture = network_input(data.images[0], SIZE)
    model.eval()
    with torch.no_grad():
        out = model(tensor)
    priors = model.priors(SIZE)
    coder = SSDBoxCoder()
    refined = coder.decode(out.arm_loc[0], priors)  # (N, 4) the ARM's anchors
    np.testing.assert_allclose(result.priors, priors.numpy())
    np.testing.assert_allclose(result.refined, refined.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result.boxes, coder.decode(out.odm_loc[0], refined).numpy(),
                               rtol=1e-5, atol=1e-4)
    arm = torch.softmax(out.arm_conf[0], dim=-1)  # (N, 2) [background, object]
    np.testing.assert_array_equal(result.filtered, (arm[:, 0] > 0.99).numpy())
    np.testing.assert_allclose(result.p_object, arm[:, 1].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.class_probs,
                               torch.softmax(out.odm_conf[0], dim=-1)[:, 1:].numpy(), atol=1e-6)
    np.testing.assert_array_equal(result.picture, picture)
    expected = detector.predict(tensor, 0.01)[0]  # the detector's own decoding and NMS
    np.testing.assert_allclose(result.detections["scores"], expected["scores"].numpy())
    np.testing.assert_allclose(result.detections["boxes"], expected["boxes"].numpy())


def test_every_anchor_filtered_gives_no_detection(data):
    det = fresh()
    model, a = det.model, det.model.cfg.num_anchors
    with torch.no_grad():
        for conv in model.odm.conf:  # the ODM sure of class 0 everywhere
            conv.bias.view(a, K + 1)[:, 1] = 10.0
        for conv in model.arm.conf:  # the ARM undecided: p(background) ~ 0.5, nothing filtered
            conv.bias.view(a, 2)[:, 0] = 0.0
    before = two_step(det, data.images[0])
    assert not before.filtered.any()
    assert len(before.detections["scores"]) > 0  # anchors the ARM keeps do become detections
    with torch.no_grad():
        for conv in model.arm.conf:  # background logit 20: p(background) = 1 - 2e-9 > 0.99
            conv.bias.view(a, 2)[:, 0] = 20.0
    after = two_step(det, data.images[0])
    assert after.filtered.all() and after.p_object.max() < 1e-6
    assert len(after.detections["scores"]) == 0  # objectness column 0 in decode_refined
    counts = [two_step_counts(after, level, 0.01, 0.05) for level in range(len(MAPS))]
    assert all(c["kept"] == 0 and c["selected"] == 0 for c in counts)


def test_mismatched_priors_are_a_clear_error(data):
    det = fresh()
    full = det.model.priors(SIZE)
    det.model.priors = lambda size: full[:-4]  # one location short
    with pytest.raises(ValueError, match="1360 rows.*1356 anchors"):
        two_step(det, data.images[0])


# ---- selection and counts -----------------------------------------------------------------
def test_level_selection_sorted_thresholded_capped():
    p = [0.3, 0.9, 0.005, 0.6, 0.5, 0.2, 0.95, 0.7, 0.99, 0.8]  # rows 0-7 level 0, 8-9 level 1
    r = hand_result(p)
    # level 0 at 0.5: rows 6 (0.95), 1 (0.9), 7 (0.7), 3 (0.6), 4 (0.5, kept: >=)
    assert level_selection(r, 0, 0.5).tolist() == [6, 1, 7, 3, 4]
    assert level_selection(r, 0, 0.5, max_boxes=2).tolist() == [6, 1]
    assert level_selection(r, 1, 0.5).tolist() == [8, 9]
    assert level_selection(r, 1, 0.995).tolist() == []
    c = two_step_counts(r, 0, 0.5, 0.5, max_boxes=2)
    assert c == {"anchors": 8, "filtered": 1, "kept": 7, "selected": 5, "drawn": 2,
                 "detections": 1}


def test_counts_are_consistent(result):
    total = 0
    for level in range(len(MAPS)):
        c = two_step_counts(result, level, 0.5, 0.3)
        assert c["filtered"] + c["kept"] == c["anchors"] == MAPS[level] ** 2 * A
        chosen = level_selection(result, level, 0.5, max_boxes=N)
        assert c["selected"] == len(chosen) and c["drawn"] == min(len(chosen), 40)
        assert (result.level[chosen] == level).all() and (result.p_object[chosen] >= 0.5).all()
        assert np.all(np.diff(result.p_object[chosen]) <= 0)
        assert not result.filtered[chosen].any()  # p(object) >= 0.5 is never filtered
        assert c["detections"] == int((result.detections["scores"] >= 0.3).sum())
        line = two_step_line(result, level, 0.5, 0.3)
        side = MAPS[level]
        assert f"stride {8 * 2 ** level}, {side} x {side} cells" in line
        assert f"{c['filtered']} filtered" in line and f"{c['kept']} kept" in line
        total += c["anchors"]
    assert total == N


# ---- drawing ------------------------------------------------------------------------------
def rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.mark.parametrize("objectness", [0.5, 0.99])
def test_draw_two_step_every_level(result, objectness):
    fig = Figure(figsize=(12, 4.2), dpi=100)
    for level in range(len(MAPS)):
        fig.clear()
        axes = fig.subplots(1, 3)
        counts = draw_two_step(axes, result, level, objectness, score=0.3)
        chosen = level_selection(result, level, objectness)
        assert len(rectangles(axes[0])) == len(chosen) == counts["drawn"]
        assert len(rectangles(axes[1])) == len(chosen)
        assert len(rectangles(axes[2])) == counts["detections"]
        side = MAPS[level]
        assert f"stride {8 * 2 ** level}, {side} x {side} cells" in axes[0].get_title()
        assert "ARM-refined" in axes[1].get_title() and "ODM" in axes[2].get_title()
        assert smallest_text_px(fig) >= 7 * fig.dpi / 72  # nothing below 7 pt


# ---- widget -------------------------------------------------------------------------------
def test_two_step_explorer(detector, data, monkeypatch):
    calls = []
    original = refinedet_view.two_step

    def counting(*args, **kwargs):
        calls.append(args[1] is data.images[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(refinedet_view, "two_step", counting)
    panel = two_step_explorer(detector, data.images, data.class_names, level=1)
    assert isinstance(panel, WidgetPanel) and panel.name == "two-step-explorer"
    assert "yt-two-step-explorer" in panel._dom_classes
    assert set(panel.controls) == {"image", "level", "objectness", "score"}
    for key, control in panel.controls.items():
        assert f"yt-control-{key}" in control._dom_classes
    assert [label for label, _ in panel.controls["level"].options] == [
        "stride 8 (16 x 16)", "stride 16 (8 x 8)", "stride 32 (4 x 4)", "stride 64 (2 x 2)"]
    objectness = panel.controls["objectness"]
    assert (objectness.min, objectness.max, objectness.step) == (0.01, 0.99, 0.01)
    assert bytes(panel.picture.value).startswith(PNG)
    assert panel.figure.get_size_inches() == pytest.approx((12, 4.2))
    assert smallest_text_px(panel.figure) >= MIN_TEXT_PX
    assert "stride 16, 8 x 8 cells" in panel.texts[0].value
    assert "image/png" in panel._repr_mimebundle_()

    before_png, before_text = bytes(panel.picture.value), panel.texts[0].value
    objectness.value = 0.3  # a threshold only redraws
    assert bytes(panel.picture.value) != before_png and panel.texts[0].value != before_text
    panel.controls["score"].value = 0.9
    panel.controls["level"].value = 0
    assert calls == [False]

    first = panel.update()["result"]
    panel.controls["image"].value = 1  # a new image runs the detector again
    state = panel.update()
    assert calls == [False, True] and state["result"] is not first
    np.testing.assert_array_equal(state["result"].picture,
                                  network_input(data.images[1], SIZE)[1])
    assert state["image"] == 1 and panel.texts[0].value.startswith("image 1:")
    panel.controls["image"].value = 0  # cached
    assert calls == [False, True] and panel.update()["result"] is first
