"""Fidelity and smoke tests for YOLOv5 (v6.0+) and its SE / Mish variants.

Full-size networks are built on the meta device; yolov5n trains two steps at 128 px.
"""

import math

import pytest
import torch
from torch import nn

from yolo_teach.decode import YOLOv5BoxCoder
from yolo_teach.detectors import build_detector
from yolo_teach.experiment import make_experiment
from yolo_teach.layers.activations import Mish
from yolo_teach.layers.attention import SE, record_attention
from yolo_teach.layers.c3 import C3
from yolo_teach.losses.assign import NeighbourCellAssigner
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolov5 import (
    ANCHORS,
    STRIDES,
    YOLOv5,
    YOLOv5Config,
    make_divisible,
    yolov5l,
    yolov5m,
    yolov5n,
    yolov5s,
    yolov5x,
)

# factory, parameters, GFLOPs (2 x MACs of conv and linear, unfused, 640 px, 80 classes), as
# counted from ultralytics/yolov5 v7.0 models/yolov5*.yaml (shared/reference/architectures.md;
# the README's 1.9/7.2/21.2/46.5/86.7 M are of the fused models).
OFFICIAL = [
    (yolov5n, 1_872_157, 4.47),
    (yolov5s, 7_235_389, 16.43),
    (yolov5m, 21_190_557, 48.87),
    (yolov5l, 46_563_709, 108.99),
    (yolov5x, 86_749_405, 205.45),
]


def meta_model(factory, **kwargs):
    with torch.device("meta"):
        return factory(**kwargs)


@pytest.mark.parametrize(("factory", "params", "gflops"), OFFICIAL)
def test_every_size_matches_the_official_network(factory, params, gflops):
    model = meta_model(factory)
    assert count_parameters(model) == params
    assert count_flops(model, 640) / 1e9 == pytest.approx(gflops, rel=1e-2)
    outputs = model(torch.empty(2, 3, 640, 640, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [(2, 255, 80, 80), (2, 255, 40, 40),
                                                 (2, 255, 20, 20)]


def test_scaling_rules_of_parse_model():
    # c = ceil(c * w / 8) * 8 and n = max(round(n * d), 1)
    assert [make_divisible(c * 0.25) for c in (64, 128, 256, 512, 1024)] == [16, 32, 64, 128, 256]
    assert make_divisible(64 * 1.25) == 80 and make_divisible(20) == 24
    small = YOLOv5Config(depth_multiple=0.33, width_multiple=0.25)
    assert [small.depth(n) for n in (3, 6, 9, 3)] == [1, 2, 3, 1]
    assert [YOLOv5Config(depth_multiple=1.33).depth(n) for n in (3, 6, 9)] == [4, 8, 12]
    backbone = meta_model(yolov5n).backbone
    assert [len(s[1].m) for s in (backbone.stage2, backbone.stage3, backbone.stage4,
                                  backbone.stage5)] == [1, 2, 3, 1]


def test_yolov5s_blocks_as_the_yaml():
    model = meta_model(yolov5s)
    stem = model.backbone.stem.conv
    # v6.0's 6x6/2 stem, padding 2: (640 + 4 - 6) / 2 + 1 = 320; 3 * 36 weights per filter,
    # the 12 * 9 of Focus (space-to-depth to 12 channels) + a 3x3 conv
    assert (stem.kernel_size, stem.stride, stem.padding, stem.out_channels) == \
        ((6, 6), (2, 2), (2, 2), 32)
    sppf = model.backbone.sppf
    assert (sppf.cv1.conv.in_channels, sppf.cv1.conv.out_channels) == (512, 256)
    assert (sppf.cv2.conv.in_channels, sppf.cv2.conv.out_channels) == (1024, 512)
    backbone_c3 = [m for m in model.backbone.modules() if isinstance(m, C3)]
    neck_c3 = [m for m in model.neck.modules() if isinstance(m, C3)]
    assert len(backbone_c3) == 4 and len(neck_c3) == 4
    assert all(b.add for c3 in backbone_c3 for b in c3.m)  # shortcuts in the backbone only
    assert not any(b.add for c3 in neck_c3 for b in c3.m)
    heads = list(model.head.m)
    assert [(h.in_channels, h.out_channels, h.kernel_size) for h in heads] == \
        [(128, 255, (1, 1)), (256, 255, (1, 1)), (512, 255, (1, 1))]
    assert all(h.bias is not None for h in heads)
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.SiLU, Mish))}
    assert acts == {nn.SiLU}
    assert all(bn.eps == 1e-3 and bn.momentum == 0.03
               for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))


def test_bias_initialisation_as_yolov5():
    model = YOLOv5(YOLOv5Config(num_classes=3, depth_multiple=0.33, width_multiple=0.25))
    for conv, s in zip(model.head.m, STRIDES):
        bias = conv.bias.view(3, 5 + 3)  # (A, 5+K)
        # 8 objects per 640 px image over its (640/s)^2 cells; classes 0.6 / (K - 1)
        expected = torch.full((3,), 8 / (640 / s) ** 2)
        torch.testing.assert_close(torch.sigmoid(bias[:, 4]), expected)
        assert torch.allclose(bias[:, 5:], torch.tensor(math.log(0.6 / (3 - 0.99999))))
    model.init_bias(prior=0.01)
    assert torch.allclose(torch.sigmoid(model.head.m[0].bias.view(3, 8)[:, 4]), torch.tensor(0.01))


def test_se_and_mish_variants_cost():
    plain = meta_model(yolov5x)
    se = meta_model(yolov5x, se=True)
    mish = meta_model(yolov5x, activation=Mish)
    widths = [160, 320, 640, 1280]  # yolov5x's C3 widths at strides 4-32
    # one SE per backbone C3: two 1x1 convs with bias, C -> C/16 -> C
    assert count_parameters(se) - count_parameters(plain) == \
        sum(2 * c * (c // 16) + c // 16 + c for c in widths)  # 231,400
    # on a 1x1 map: 2 x (C * C/16 + C/16 * C) FLOPs per SE, ~0.0009 GFLOPs in all
    assert count_flops(se, 640) - count_flops(plain, 640) == sum(4 * c * (c // 16) for c in widths)
    assert count_parameters(mish) == count_parameters(plain)  # an activation has no weights
    assert count_flops(mish, 640) == count_flops(plain, 640)  # nor counted FLOPs
    assert not any(isinstance(m, nn.SiLU) for m in mish.modules())
    assert sum(isinstance(m, SE) for m in se.backbone.modules()) == 4
    assert not any(isinstance(m, SE) for m in se.neck.modules())


def test_se_maps_are_recorded_by_layer_name():
    torch.manual_seed(0)
    model = yolov5n(num_classes=3, se=True, activation=Mish).eval()
    with record_attention(model) as maps:
        outputs = model(torch.rand(1, 3, 64, 64))
    assert sorted(maps) == [f"backbone.stage{i}.2" for i in (2, 3, 4, 5)]
    assert [maps[f"backbone.stage{i}.2"]["channel"].shape[1] for i in (2, 3, 4, 5)] == \
        [32, 64, 128, 256]
    assert [o.shape[1:] for o in outputs] == [(24, 8, 8), (24, 4, 4), (24, 2, 2)]


def test_registered_names_bring_official_anchors_and_yolov5s_loss():
    det = build_detector("yolov5s", 80)
    assert det.img_size == 640 and det.rule == "neighbours"
    assert [a.tolist() for a in det.anchors] == [
        [[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]],
        [[116, 90], [156, 198], [373, 326]]]
    assert isinstance(det.criterion.assigner, NeighbourCellAssigner)
    assert isinstance(det.criterion.coder, YOLOv5BoxCoder)
    assert ANCHORS.reference_size == 640
    small = build_detector("yolov5n", 3, 128)
    # scaled by 128 / 640 = 1/5
    torch.testing.assert_close(small.anchors[0], torch.tensor([[2, 2.6], [3.2, 6], [6.6, 4.6]]))


def test_yolov5n_trains_two_steps_at_128px(tmp_path):
    exp = make_experiment("yolov5n", "shapes", n_train=16, n_val=8, epochs=1, img_size=128,
                          batch_size=8, out_dir=tmp_path, progress=False, augment="none",
                          val_every=0)
    assert isinstance(exp.detector.model, YOLOv5) and exp.detector.rule == "neighbours"
    history = exp.trainer.fit()
    assert history[-1]["iteration"] == 2
    assert math.isfinite(history[-1]["train_loss"])


def test_registered_cpu_nano_se_and_mish_variants_cost():
    names = ("yolov5-cpu-nano", "yolov5-cpu-nano-se", "yolov5-cpu-nano-se-mish")
    with torch.device("meta"):
        plain, with_se, with_both = (build_detector(n, 6).model for n in names)
        # n widths of the backbone's C3s, strides 4-32: 32, 64, 128, 256
        blocks = [SE(c, 16) for c in (32, 64, 128, 256)]
    # an SE block costs 2 C (C/16) + C/16 + C: 32 -> 2*32*2+2+32 = 162, ..., 256 -> 8,464
    added = sum(count_parameters(b) for b in blocks)
    assert added == 162 + 580 + 2_184 + 8_464
    assert count_parameters(with_se) - count_parameters(plain) == added
    assert count_parameters(with_both) == count_parameters(with_se)  # Mish has no weights
    assert not any(isinstance(m, nn.SiLU) for m in with_both.modules())
    assert any(isinstance(m, Mish) for m in with_both.neck.modules())


def test_transfer_from_the_baseline_loads_all_but_the_se_tensors():
    from yolo_teach.transfer import transfer_weights

    torch.manual_seed(0)
    source = build_detector("yolov5-cpu-nano", 6, 256).model.state_dict()
    target = build_detector("yolov5-cpu-nano-se-mish", 6, 256).model
    report = transfer_weights(target, source)
    se_names = {name for name, m in target.named_modules() if isinstance(m, SE)}
    assert report.new and all(key.rsplit(".", 3)[0] in se_names for key in report.new)
    assert len(report.new) == 4 * 4  # four SE blocks, two convs with weight and bias
    assert not report.skipped and not report.unused
    assert len(report.loaded) == len(source)
    state = target.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in report.loaded)
