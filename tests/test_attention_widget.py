"""The attention explorer: its functions on an SE and a CBAM detector, then the widget."""

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import copy  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from yolo_teach.data import make_shapes  # noqa: E402
from yolo_teach.data.loader import DetectionDataset  # noqa: E402
from yolo_teach.detectors import build_detector  # noqa: E402
from yolo_teach.layers.attention import CBAM, SE, attention_modules  # noqa: E402
from yolo_teach.metrics import mean_average_precision  # noqa: E402
from yolo_teach.viz.attention_widget import (  # noqa: E402
    attention_explorer,
    attention_maps,
    compare_predictions,
    comparison_line,
    layer_description,
    map_with_and_without_attention,
    network_input,
    predictions_with_and_without_attention,
)
from yolo_teach.viz.panel import MIN_TEXT_PX, WidgetPanel, smallest_text_px  # noqa: E402

SIZE = 64  # network input: maps of 8 x 8, 4 x 4 and 2 x 2 cells
PNG = b"\x89PNG\r\n\x1a\n"
CONF, MAX_DET = 0.1, 10  # random weights: scores near their priors, 0.3 x ~0.3


def calibrated(det):
    """Random weights, with batch-norm statistics of real images: without them the features of
    a fresh network shrink layer after layer and the attention changes nothing visible."""
    for m in det.model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one pass sets the statistics
    det.model.train()
    with torch.no_grad():
        det.model(batch(make_shapes(8, SIZE, seed=5)))
    det.model.init_bias(prior=0.3)  # and detections above CONF to compare
    return det.model.eval() and det


def se_detector():
    """yolov5n with SE blocks (and Mish) as registered, random weights."""
    torch.manual_seed(0)
    return calibrated(build_detector("yolov5n-se-mish", 3, SIZE))


def cbam_detector():
    """yolov5n with a CBAM after the C3 of two backbone stages, random weights."""
    torch.manual_seed(0)
    det = build_detector("yolov5n", 3, SIZE)
    backbone = det.model.backbone
    backbone.stage3.append(CBAM(backbone.stage3[0].conv.out_channels))
    backbone.stage4.append(CBAM(backbone.stage4[0].conv.out_channels, spatial_bn=False))
    return calibrated(det)


DETECTORS = {"se": se_detector, "cbam": cbam_detector}


def without_attention(det):
    """Reference for attention_off: a copy of the model whose SE/CBAM are nn.Identity."""
    reference = copy.deepcopy(det)
    for name in attention_modules(reference.model):
        parent, _, child = name.rpartition(".")
        setattr(reference.model.get_submodule(parent), child, nn.Identity())
    return reference


def images(n=3):
    return make_shapes(n, SIZE, seed=1)


def batch(dataset):
    return torch.cat([network_input(im, SIZE)[0] for im in dataset.images])  # (B, 3, S, S)


# ----------------------------------------------------------------- library functions
def test_network_input_letterboxes_to_the_detector_size():
    wide = np.full((40, 80, 3), 200, np.uint8)  # scaled by 64 / 80 = 0.8 to 32 x 64
    tensor, picture = network_input(wide, SIZE)
    assert tensor.shape == (1, 3, SIZE, SIZE) and picture.shape == (SIZE, SIZE, 3)
    assert picture.dtype == np.uint8 and 0.0 <= tensor.min() and tensor.max() <= 1.0
    # 32 rows of the image, centred: 16 rows of padding above and below
    assert (picture[16:48] == 200).all() and (picture[:16] != 200).all()
    assert torch.allclose(tensor[0, 0, 20, 10], torch.tensor(200 / 255))
    assert network_input(np.zeros((SIZE, SIZE), np.uint8), SIZE)[1].shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize("kind", DETECTORS)
def test_attention_maps_are_the_gates_outputs(kind):
    det = DETECTORS[kind]()
    x = batch(images(2))
    modules = attention_modules(det.model)
    inputs = {}  # reference: each block's input, then its gates recomputed by hand
    handles = [m.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, i[0]))
               for n, m in modules.items()]
    det.model.train()
    maps = attention_maps(det, x)
    assert det.model.training  # the mode is restored
    for h in handles:
        h.remove()
    assert list(maps) == list(modules)
    det.model.eval()
    with torch.no_grad():
        for name, module in modules.items():
            f = inputs[name]  # (B, C, h, w)
            if isinstance(module, SE):
                assert set(maps[name]) == {"channel"}
                expected = module.gate(f).flatten(1)
                torch.testing.assert_close(maps[name]["channel"], expected)
            else:
                m_c = module.channel_gate(f)  # (B, C, 1, 1)
                torch.testing.assert_close(maps[name]["channel"], m_c.flatten(1))
                torch.testing.assert_close(maps[name]["spatial"], module.spatial_gate(f * m_c))
                assert maps[name]["spatial"].shape == (2, 1, *f.shape[-2:])
            assert maps[name]["channel"].shape == (2, f.shape[1])
    spatial = [m["spatial"] for m in maps.values() if "spatial" in m]
    assert len(spatial) == (2 if kind == "cbam" else 0)
    assert all(s.std() > 1e-3 for s in spatial)  # not a flat map: the test sees the pixels


@pytest.mark.parametrize("kind", DETECTORS)
def test_predictions_without_attention_equal_a_model_without_the_blocks(kind):
    det = DETECTORS[kind]()
    x = batch(images(3))
    out = predictions_with_and_without_attention(det, x, CONF, 0.45, MAX_DET)
    reference = without_attention(det)
    for name, dets, ref in (("on", out["on"], det.predict(x, CONF, 0.45, MAX_DET)),
                            ("off", out["off"], reference.predict(x, CONF, 0.45, MAX_DET))):
        assert len(dets) == 3, name
        for d, r in zip(dets, ref):
            np.testing.assert_allclose(d["boxes"], r["boxes"].numpy(), atol=1e-5)
            np.testing.assert_allclose(d["scores"], r["scores"].numpy(), atol=1e-6)
            np.testing.assert_array_equal(d["labels"], r["labels"].numpy())
    assert sum(len(d["scores"]) for d in out["on"] + out["off"]) > 0  # something to compare
    changed = any(len(a["scores"]) != len(b["scores"]) or not np.allclose(a["scores"], b["scores"])
                  for a, b in zip(out["on"], out["off"]))
    assert changed  # the blocks do something; and after the block they are back:
    again = predictions_with_and_without_attention(det, x, CONF, 0.45, MAX_DET)["on"]
    np.testing.assert_array_equal(again[0]["scores"], out["on"][0]["scores"])


def test_compare_predictions_by_hand():
    on = {"boxes": [[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
          "scores": [0.9, 0.8, 0.3], "labels": [0, 1, 0]}
    off = {"boxes": [[1.0, 0, 11, 10], [20, 20, 30, 30], [60, 60, 70, 70]],
           "scores": [0.5, 0.7, 0.4], "labels": [0, 2, 0]}
    # off 0 vs on 0: same class, inter 9 x 10 = 90, union 110: IoU .82 -> kept.
    # off 1 overlaps on 1 exactly but is another class -> on 1 lost, off 1 new.
    # off 2 overlaps nothing -> new; on 2 has no partner -> lost.
    c = compare_predictions(on, off)
    assert (c["on"], c["off"], c["kept"], c["lost"], c["new"]) == (3, 3, 1, 2, 2)
    assert c["pairs"] == [(0, 0)]
    assert c["mean_score_on"] == pytest.approx((0.9 + 0.8 + 0.3) / 3)
    assert c["mean_score_off"] == pytest.approx((0.5 + 0.7 + 0.4) / 3)
    assert comparison_line(c) == ("attention on: 3 boxes (mean score 0.67) · off: 3 boxes "
                                  "(mean score 0.53) · 1 kept, 2 lost, 2 new")
    assert compare_predictions(on, off, iou_threshold=0.9)["kept"] == 0  # .82 < .9


def test_compare_predictions_matches_each_box_once_best_score_first():
    # two off boxes both overlap the one on box: the better-scored off box takes it
    on = {"boxes": [[0.0, 0, 10, 10]], "scores": [0.9], "labels": [0]}
    off = {"boxes": [[0.0, 0, 10, 9], [0, 0, 10, 10]], "scores": [0.2, 0.6], "labels": [0, 0]}
    c = compare_predictions(on, off)
    assert c["pairs"] == [(0, 1)] and (c["kept"], c["lost"], c["new"]) == (1, 0, 1)
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
    c = compare_predictions(empty, off)
    assert (c["kept"], c["lost"], c["new"], c["mean_score_on"]) == (0, 0, 2, 0.0)


@pytest.mark.parametrize("kind", DETECTORS)
def test_map_with_and_without_attention_equals_the_library(kind):
    det = DETECTORS[kind]()
    data_set = images(4)
    data = DetectionDataset(data_set, SIZE)
    targets = [{"boxes": b, "labels": lab} for b, lab in zip(data_set.boxes, data_set.labels)]
    out = map_with_and_without_attention(det, data, targets)
    expected_on = mean_average_precision(det.predict_dataset(data), targets)
    expected_off = mean_average_precision(without_attention(det).predict_dataset(data), targets)
    for key in ("map", "map_50"):
        assert out["on"][key] == pytest.approx(expected_on[key])
        assert out["off"][key] == pytest.approx(expected_off[key])


def test_layer_description_by_hand():
    maps = {"channel": torch.tensor([[0.01, 0.5, 0.97, 0.99], [0.5, 0.5, 0.5, 0.5]])}
    text = layer_description("stage.se", SE(4), maps)
    # image 0: min .01, max .99, mean (.01 + .5 + .97 + .99) / 4 = .6175; 2 above .95, 1 below .05
    assert text == ("stage.se: SE over 4 channels; channel weights 0.01 to 0.99, mean 0.62, 2 "
                    "above 0.95 and 1 below 0.05; no spatial map (SE weighs each channel, the "
                    "same at every position)")
    maps["spatial"] = torch.tensor([[[[0.2, 0.4, 0.6], [0.3, 0.3, 0.9]]]]).repeat(2, 1, 1, 1)
    text = layer_description("cbam", CBAM(4), maps, index=1)
    assert "CBAM over 4 channels" in text and "0 above 0.95 and 0 below 0.05" in text
    assert text.endswith("spatial map 2 × 3, 0.20 to 0.90")


# ----------------------------------------------------------------- the widget
@pytest.mark.parametrize("kind", DETECTORS)
def test_explorer_builds_updates_and_has_a_static_view(kind):
    det = DETECTORS[kind]()
    data_set = images(3)
    ui = attention_explorer(det, data_set.images, ["a", "b", "c"], CONF, max_det=MAX_DET,
                            dpi=60)
    assert isinstance(ui, WidgetPanel) and ui.name == "attention-explorer"
    assert {"yolo-teach-widget", "yt-attention-explorer"} <= set(ui._dom_classes)
    for key in ("image", "layer", "off"):
        assert f"yt-control-{key}" in ui.controls[key]._dom_classes
    names = list(attention_modules(det.model))
    assert list(ui.controls["layer"].options) == names
    spatial_axes = 1 if kind == "cbam" else 0
    for index, layer, off in ((0, names[-1], False), (2, names[0], True), (1, names[1], True)):
        ui.controls["image"].value, ui.controls["layer"].value = index, layer
        ui.controls["off"].value = off
        out = ui.update()
        assert (out["image"], out["layer"], out["off"]) == (index, layer, off)
        tensor = network_input(data_set.images[index], SIZE)[0]
        expected = attention_maps(det, tensor)
        torch.testing.assert_close(out["maps"][layer]["channel"], expected[layer]["channel"])
        preds = predictions_with_and_without_attention(det, tensor, CONF, max_det=MAX_DET)
        assert out["comparison"] == compare_predictions(preds["on"][0], preds["off"][0])
        axes = ui.figure.axes
        assert len(axes) == 2 + spatial_axes
        assert len(axes[0].patches) == min(10, expected[layer]["channel"].shape[1])  # the bars
        if spatial_axes:
            assert len(axes[1].images) == 2  # the image and its heatmap
        else:
            texts = " ".join(t.get_text() for t in axes[0].texts)
            assert "no spatial map" in texts  # said, not drawn as an empty axis
        shown = preds["off" if off else "on"][0]
        assert str(len(shown["scores"])) in axes[-1].get_title()
        assert ("kept" in ui.texts[0].value) == off
        assert layer in ui.texts[0].value
        assert smallest_text_px(ui.figure) >= MIN_TEXT_PX * 60 / 100  # at dpi 60
    bundle = ui._repr_mimebundle_()
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(PNG) and png == bytes(ui.picture.value)
    assert "VBox" not in bundle["text/plain"]
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (ui.picture.layout.width, ui.picture.layout.height) == (f"{width}px", f"{height}px")


def test_explorer_text_is_readable_at_100_dpi():
    ui = attention_explorer(cbam_detector(), images(1).images, ["a", "b", "c"])
    assert ui.figure.dpi == 100 and smallest_text_px(ui.figure) >= MIN_TEXT_PX
    ui.controls["off"].value = True
    assert smallest_text_px(ui.figure) >= MIN_TEXT_PX


def test_explorer_starts_where_asked():
    det = cbam_detector()
    ui = attention_explorer(det, images(3).images, ["a", "b", "c"], CONF, max_det=MAX_DET,
                            image=2, layer="backbone.stage4.2", dpi=40)
    assert (ui.controls["image"].value, ui.controls["layer"].value) == (2, "backbone.stage4.2")
    assert "backbone.stage4.2" in ui.figure.axes[0].get_title()
    with pytest.raises(ValueError, match="no attention block"):
        attention_explorer(det, images(1).images, ["a", "b", "c"], layer="backbone.stage2")
    c = compare_predictions({"boxes": [[0.0, 0, 10, 10]], "scores": [0.5], "labels": [0]},
                            {"boxes": np.zeros((0, 4)), "scores": [], "labels": []})
    assert comparison_line(c).startswith("attention on: 1 box (mean score 0.50) · off: 0 boxes")


def test_explorer_needs_attention_blocks_and_images():
    plain = build_detector("yolov5n", 3, SIZE)
    with pytest.raises(ValueError, match="no SE or CBAM"):
        attention_explorer(plain, images(1).images, ["a", "b", "c"])
    with pytest.raises(ValueError, match="at least one image"):
        attention_explorer(se_detector(), [], ["a", "b", "c"])
