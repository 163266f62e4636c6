"""The improved YOLOX of seed 004: where its CBAMs sit, its counts (YOLOX's official ones plus
the hand-counted additions; the paper states none), its registration and one training step."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from yolo_teach.data import SMALL_SHAPES, make_shapes
from yolo_teach.detectors import build_detector
from yolo_teach.layers.attention import CBAM, attention_modules, record_attention
from yolo_teach.layers.c3 import C3
from yolo_teach.layers.nonlocal_block import NonLocalFusion
from yolo_teach.losses.yolox_loss import YOLOXLoss
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolox import yolox_cpu_nano, yolox_l, yolox_s
from yolo_teach.models.yolox_improved import (
    YOLOXImproved,
    yolox_improved_cpu_nano,
    yolox_improved_l,
    yolox_improved_s,
)
from yolo_teach.protocols import DetectionModel
from yolo_teach.registry import get_spec

# where seed 004 puts CBAM: behind the CSP layer of dark2-dark5 (§2.1, "a total of 4") and
# behind each CSP2_1 of the path fusion (§2.2 1), "CBAM-CSP2_1")
CBAM_NAMES = {
    "backbone.dark2.1.attention", "backbone.dark3.1.attention", "backbone.dark4.1.attention",
    "backbone.dark5.2.attention",
    "neck.top_down4.attention", "neck.top_down3.attention", "neck.bottom_up4.attention",
    "neck.bottom_up5.attention",
}


def meta_model(factory, *args, **kwargs):
    with torch.device("meta"):
        return factory(*args, **kwargs)


def cbam_params(c: int) -> int:
    # shared MLP C -> C/16 -> C with biases, 7x7 conv over [max; mean] without bias, no BN
    return 2 * c * (c // 16) + c // 16 + c + 2 * 49


def fusion_params(c3: int, c4: int, c5: int) -> int:
    def conv1x1(c_in, c_out):  # conv without bias + BatchNorm
        return c_in * c_out + 2 * c_out

    inner = c4 // 2  # C' of theta, phi, g
    lateral = conv1x1(c3, c4) + conv1x1(c5, c4) + conv1x1(c4, c3) + conv1x1(c4, c5)
    return lateral + 3 * (c4 * inner + inner) + conv1x1(inner, c4)


def cbam_flops(c: int, hw: int) -> int:
    # the MLP on 2 descriptors (2 x MACs of C x C/16 twice each), the 7x7 conv on 2 maps
    return 2 * 2 * (2 * c * (c // 16)) + 2 * 2 * 49 * hw


def fusion_flops(c3: int, c4: int, c5: int, hw16: int) -> int:
    hw32, inner = hw16 // 4, c4 // 2
    lateral = 2 * 2 * (c3 * c4 * hw16 + c5 * c4 * hw32)  # in and out, each at the smaller size
    embed = 2 * (3 * c4 * inner + inner * c4) * hw16  # theta, phi, g, W_z
    return lateral + embed + 2 * 2 * hw16 * hw16 * inner  # + theta^T phi and f g


# factory, YOLOX's factory, official params / conv-only GFLOPs of YOLOX, stem width
PAPER_SIZES = [(yolox_improved_s, yolox_s, 8_968_255, 26.686, 32),
               (yolox_improved_l, yolox_l, 54_208_895, 155.293, 64)]


@pytest.mark.parametrize(("factory", "yolox", "params", "gflops", "c"), PAPER_SIZES)
def test_paper_sizes_are_yolox_plus_the_hand_counted_changes(factory, yolox, params, gflops, c):
    # seed 004 states no counts: YOLOX's official ones (architectures.md) + 8 CBAMs + fusion
    model, plain = meta_model(factory), meta_model(factory, cbam=False, nonlocal_fusion=False)
    assert count_parameters(plain) == count_parameters(meta_model(yolox)) == params
    c3, c4, c5 = 4 * c, 8 * c, 16 * c
    cbams = [2 * c, c3, c4, c5, c4, c3, c4, c5]  # backbone dark2-5, neck td4, td3, bu4, bu5
    added = sum(cbam_params(ch) for ch in cbams) + fusion_params(c3, c4, c5)
    assert count_parameters(model) == params + added  # S 9,527,955; L 56,434,455
    assert count_flops(plain, 640) / 1e9 == pytest.approx(gflops, rel=1e-3)
    sizes = [160, 80, 40, 20, 40, 80, 40, 20]  # the CBAMs' map sides at 640 px
    added_flops = sum(cbam_flops(ch, s * s) for ch, s in zip(cbams, sizes))
    added_flops += fusion_flops(c3, c4, c5, 40 * 40)
    assert count_flops(model, 640) - count_flops(plain, 640) == added_flops  # S +2.16 G
    outputs = model(torch.empty(1, 3, 640, 640, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [(1, 85, 80, 80), (1, 85, 40, 40),
                                                 (1, 85, 20, 20)]


def test_switches_off_is_yolox_tensor_for_tensor():
    plain = meta_model(yolox_improved_cpu_nano, 7, cbam=False, nonlocal_fusion=False)
    reference = meta_model(yolox_cpu_nano, 7)
    assert {k: v.shape for k, v in plain.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    assert attention_modules(plain) == {} and plain.fusion is None


def test_cbam_sits_behind_every_csp_layer_of_backbone_and_neck():
    model = meta_model(yolox_improved_cpu_nano, 7)
    found = attention_modules(model)
    assert set(found) == CBAM_NAMES
    for name, cbam in found.items():
        csp = model.get_submodule(name.rsplit(".", 1)[0])
        assert isinstance(csp, C3) and isinstance(cbam, CBAM)
        assert cbam.channel_gate.mlp[0].in_features == csp.cv3.conv.out_channels
        assert isinstance(cbam.spatial_gate.bn, nn.Identity)  # eq. 3-4, no BatchNorm
    assert isinstance(model.fusion, NonLocalFusion)
    assert set(attention_modules(meta_model(yolox_improved_cpu_nano, 7, cbam=False))) == set()


def test_c3_attention_keyword_defaults_to_plain_c3():
    assert C3(64, 64).attention is None
    assert count_parameters(C3(64, 64)) == 18_816  # yolov5s layer 2, unchanged
    assert count_parameters(C3(64, 64, attention_layer=CBAM)) == 18_816 + count_parameters(
        CBAM(64))
    x = torch.randn(1, 64, 8, 8)
    csp = C3(64, 64, attention_layer=CBAM).eval()
    torch.testing.assert_close(csp(x), csp.attention(csp.cv3(torch.cat(
        [csp.m(csp.cv1(x)), csp.cv2(x)], 1))))


def test_nano_counts_and_bad_input():
    model = meta_model(yolox_improved_cpu_nano, 7)
    # yolox-cpu-nano 897,924 + 8 CBAMs 25,586 + fusion 116,288
    assert count_parameters(model) == 1_039_798
    assert count_flops(model, 128) / 1e9 == pytest.approx(0.1057, abs=5e-4)
    with pytest.raises(ValueError, match=r"\(1, 3, 100, 100\)"):
        model(torch.empty(1, 3, 100, 100, device="meta"))


def test_record_attention_returns_the_cbam_maps_of_the_nano():
    torch.manual_seed(0)
    model = yolox_improved_cpu_nano(3).eval()
    with torch.no_grad(), record_attention(model) as maps:
        model(torch.rand(2, 3, 128, 128))
    assert set(maps) == CBAM_NAMES
    assert maps["backbone.dark2.1.attention"]["channel"].shape == (2, 32)  # 128 * 0.25
    assert maps["backbone.dark2.1.attention"]["spatial"].shape == (2, 1, 32, 32)  # stride 4
    assert maps["neck.bottom_up5.attention"]["spatial"].shape == (2, 1, 4, 4)  # stride 32
    assert all(0 < m["spatial"].min() and m["spatial"].max() < 1 for m in maps.values())


def test_registration_ciou_by_default_and_overridable():
    for name, size in [("yolox-improved-s", 640), ("yolox-improved-l", 640),
                       ("yolox-improved-cpu-nano", 128)]:
        spec = get_spec(name)
        assert spec.img_size == size and spec.default_rule == "simota" and spec.anchors is None
    assert get_spec("yolox-improved-cpu-nano").short_run == get_spec("yolox-cpu-nano").short_run
    det = build_detector("yolox-improved-cpu-nano", 3, 128)
    assert isinstance(det.model, YOLOXImproved) and isinstance(det.criterion, YOLOXLoss)
    assert isinstance(det.model, DetectionModel)
    assert det.criterion.box_loss == "ciou"  # seed 004 eq. 9-11
    assert build_detector("yolox-improved-cpu-nano", 3, 128, box_loss="iou").criterion.box_loss \
        == "iou"
    with pytest.raises(ValueError):
        build_detector("yolox-improved-cpu-nano", 3, 128, anchors=np.ones((9, 2)))


def test_registered_nano_trains_one_step_through_make_experiment(tmp_path):
    from yolo_teach.experiment import make_experiment

    torch.set_num_threads(1)
    exp = make_experiment("yolox-improved-cpu-nano", "shapes", n_train=8, n_val=4, seed=0,
                          data_options=SMALL_SHAPES, epochs=1, max_steps=1, batch_size=8,
                          augment="none", progress=False, out_dir=tmp_path)
    assert exp.detector.criterion.box_loss == "ciou"
    history = exp.trainer.fit()
    assert history[-1]["iteration"] == 1 and math.isfinite(history[-1]["train_loss"])
    assert "map_50" in history[-1]


def test_small_shapes_are_mostly_coco_small_at_128_px():
    data = make_shapes(40, 128, seed=0, **SMALL_SHAPES)
    boxes = np.concatenate(data.boxes)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert len(boxes) / 40 > 6  # 3-15 objects per image
    assert np.mean(area <= 32 ** 2) > 0.85  # 93 % on 200 images
