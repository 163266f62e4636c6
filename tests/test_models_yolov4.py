"""Fidelity and smoke tests for YOLOv4, YOLOv4-tiny, the CSPDarknet53 classifier and the nanos.

Full-size networks are built on the meta device (shapes, no data); the nano networks run real
forward and backward passes at 128 px.
"""

import dataclasses
import math

import pytest
import torch
from torch import nn

from yolo_teach.layers.activations import Mish
from yolo_teach.layers.conv import DarknetLeaky
from yolo_teach.layers.csp import ChannelSplit
from yolo_teach.models.summary import count_flops, count_parameters, summary
from yolo_teach.models.yolov4 import (
    ANCHORS,
    INPUT_SIZE,
    SCALE_X_Y,
    STRIDES,
    YOLOv4,
    YOLOv4Config,
    cspdarknet53,
    yolov4,
    yolov4_nano,
)
from yolo_teach.models.yolov4_tiny import ANCHORS as TINY_ANCHORS
from yolo_teach.models.yolov4_tiny import INPUT_SIZE as TINY_INPUT_SIZE
from yolo_teach.models.yolov4_tiny import STRIDES as TINY_STRIDES
from yolo_teach.models.yolov4_tiny import YOLOv4Tiny, yolov4_tiny, yolov4_tiny_nano

# factory, kwargs, input size, parameters, GFLOPs (2 x MACs of conv and linear), outputs of one
# image. Counted from AlexeyAB/darknet's cfgs (shared/reference/architectures.md): params =
# conv weights + BN scale and shift (or the bias of the linear 1x1 convs).
FULL_SIZE = [
    (cspdarknet53, {}, 256, 27_642_184, 13.07, [(1000,)]),
    (yolov4, {}, 416, 64_363_101, 60.10, [(255, 52, 52), (255, 26, 26), (255, 13, 13)]),
    (
        yolov4,
        {"num_classes": 3},
        416,
        63_948_456,
        59.55,
        [(24, 52, 52), (24, 26, 26), (24, 13, 13)],
    ),
    (yolov4_tiny, {}, 416, 6_056_606, 6.91, [(255, 26, 26), (255, 13, 13)]),
]
NANO = [yolov4_nano, yolov4_tiny_nano]


def meta_model(factory, **kwargs):
    with torch.device("meta"):
        return factory(**kwargs)


def as_list(output):
    return output if isinstance(output, list) else [output]


@pytest.mark.parametrize(("factory", "kwargs", "size", "params", "gflops", "shapes"), FULL_SIZE)
def test_full_size_models_match_the_official_networks(
    factory, kwargs, size, params, gflops, shapes
):
    model = meta_model(factory, **kwargs)
    assert count_parameters(model) == pytest.approx(params, rel=1e-3)
    assert count_flops(model, size) / 1e9 == pytest.approx(gflops, rel=1e-2)
    outputs = as_list(model(torch.empty(2, 3, size, size, device="meta")))
    assert [tuple(o.shape) for o in outputs] == [(2, *s) for s in shapes]


def test_counts_are_exact():
    # the 0.1 % tolerance above is for the table; the networks are built to match exactly
    assert count_parameters(meta_model(yolov4)) == 64_363_101
    assert count_parameters(meta_model(yolov4_tiny)) == 6_056_606
    assert count_parameters(meta_model(cspdarknet53)) == 27_642_184


def test_num_classes_changes_only_the_prediction_layers():
    # the 1x1 prediction convs see 256, 512 and 1024 channels (2x the neck widths); with K=3
    # each has 3 * (5 + 3) = 24 outputs instead of 255:
    # (255 - 24) * ((256 + 1) + (512 + 1) + (1024 + 1)) = 231 * 1,795 = 414,645
    assert (
        count_parameters(meta_model(yolov4)) - count_parameters(meta_model(yolov4, num_classes=3))
        == 231 * 1795
    )
    # the tiny's prediction convs see 512 (stride 32) and 256 (stride 16) channels
    tiny_3 = meta_model(yolov4_tiny, num_classes=3)
    assert count_parameters(meta_model(yolov4_tiny)) - count_parameters(tiny_3) == 231 * (513 + 257)


def test_cspdarknet53_facts_from_the_paper():
    backbone = meta_model(cspdarknet53).backbone
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    # §3.1, Table 1: "CSPDarknet53 contains 29 convolutional layers 3x3":
    # stem 1 + 5 downsampling convs + 23 residual blocks (1 + 2 + 8 + 8 + 4)
    assert sum(c.kernel_size == (3, 3) for c in convs) == 29
    # 72 convs in all, yolov4.cfg's layers 0-104 without its 10 routes and 23 shortcuts
    assert len(convs) == 72
    assert all(not isinstance(m, DarknetLeaky) for m in backbone.modules())
    assert sum(isinstance(m, Mish) for m in backbone.modules()) == 72


def test_yolov4_activations_mish_backbone_leaky_neck_and_head():
    model = meta_model(yolov4)
    for part in (model.neck, model.head):
        assert not any(isinstance(m, Mish) for m in part.modules())
        assert any(isinstance(m, DarknetLeaky) for m in part.modules())
    assert any(isinstance(m, Mish) for m in model.backbone.modules())


def test_yolov4_layer_table_reads_like_darknet():
    table = summary(meta_model(yolov4, num_classes=3), 416)
    rows = table.rows
    assert table.total_params == 63_948_456
    assert table.total_flops == count_flops(meta_model(yolov4, num_classes=3), 416)
    convs = [r for r in rows if r.kind == "conv"]
    assert len(convs) == 110  # yolov4.cfg has 110 [convolutional] layers
    # the annex's first layers (0, 1, 2, 4, 5, 6, 8, 10, 11, 12; routes and shortcuts have
    # no row here): filters, size/stride
    annex = [(32, 3, 1), (64, 3, 2), (64, 1, 1), (64, 1, 1), (32, 1, 1), (64, 3, 1), (64, 1, 1),
             (64, 1, 1), (128, 3, 2), (64, 1, 1)]  # fmt: skip
    ours = [(r.filters, int(r.kernel_stride[0]), int(r.kernel_stride.split("/")[1])) for r in convs]
    assert ours[:10] == annex
    # SPP: layers 108, 110, 112 of the annex, max 5x5, 9x9, 13x13 at 13 x 13 x 512
    pools = [r for r in rows if r.kind == "max"]
    assert [(r.kernel_stride, r.output_shape) for r in pools] == [
        (f"{k} x {k}/ 1", (512, 13, 13)) for k in (5, 9, 13)
    ]
    # the three linear prediction convs: 24 filters at 52, 26 and 13 (annex 138, 149, 160)
    assert [r.output_shape for r in convs if r.filters == 24] == [
        (24, 52, 52),
        (24, 26, 26),
        (24, 13, 13),
    ]


def test_model_facts():
    assert STRIDES == YOLOv4.strides == (8, 16, 32)
    assert TINY_STRIDES == YOLOv4Tiny.strides == (16, 32)
    # anchors are pixels at yolov4.cfg's 608 (yolov4-tiny.cfg's 416)
    assert ANCHORS.num_anchors == 9 and ANCHORS.unit == "pixels"
    assert ANCHORS.reference_size == INPUT_SIZE == 608
    assert TINY_ANCHORS.reference_size == TINY_INPUT_SIZE == 416
    assert [ANCHORS.sizes[i] for i in ANCHORS.masks[0]] == [(12, 16), (19, 36), (40, 28)]
    assert SCALE_X_Y == (1.2, 1.1, 1.05)
    # the tiny's stride-16 map uses anchors 1, 2, 3 (not 0, 1, 2), as yolov4-tiny.cfg
    assert [TINY_ANCHORS.sizes[i] for i in TINY_ANCHORS.masks[0]] == [(23, 27), (37, 58), (81, 82)]
    assert TINY_ANCHORS.masks[1] == (3, 4, 5)
    assert len(ANCHORS.masks) == len(STRIDES) and len(TINY_ANCHORS.masks) == len(TINY_STRIDES)
    model = meta_model(yolov4, num_classes=3)
    assert model.cfg.num_classes == 3 and model.cfg.num_anchors == 3
    with pytest.raises(AttributeError):
        model.cfg.num_classes = 4  # frozen


@pytest.mark.parametrize("factory", [yolov4_nano, yolov4_tiny_nano])
def test_building_initialises_the_objectness_bias(factory):
    model = factory(num_classes=3)
    preds = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert len(preds) == len(model.strides)
    for pred in preds:
        # sigmoid(b_o) = 0.01 <=> b_o = -log(99) = -4.595, for each of the 3 anchors
        objectness = pred.bias.view(3, 8)[:, 4]
        torch.testing.assert_close(objectness, torch.full((3,), -math.log(99.0)))


def test_tiny_takes_the_second_half_of_the_channels():
    torch.manual_seed(0)
    model = yolov4_tiny_nano(num_classes=3).eval()
    for block in (model.block1, model.block2, model.block3):
        assert isinstance(block.split, ChannelSplit) and block.split.group_id == 1
    seen = {}
    model.block1.conv1.register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0]))
    model.block1.conv.register_forward_hook(lambda m, inp, out: seen.update(out=out))
    with torch.no_grad():
        model(torch.rand(1, 3, 128, 128))
    half = seen["out"].shape[1] // 2
    torch.testing.assert_close(seen["inp"], seen["out"][:, half:])


@pytest.mark.parametrize("factory", NANO)
def test_nano_models_run_at_128px_and_have_finite_gradients(factory):
    torch.manual_seed(0)
    model = factory(num_classes=3)
    images = torch.rand(2, 3, 128, 128)
    outputs = model(images)
    loss = sum(o.square().mean() for o in outputs)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():  # raw maps in eval too: same shapes, nothing decoded
        assert [o.shape for o in model(images)] == [o.shape for o in outputs]


def test_nano_output_shapes_and_sizes():
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        # strides 8, 16, 32 -> 16, 8, 4 cells; 3 anchors x (5 + 3) = 24 channels
        shapes = [tuple(o.shape) for o in yolov4_nano(num_classes=3).eval()(x)]
        assert shapes == [(1, 24, 16, 16), (1, 24, 8, 8), (1, 24, 4, 4)]
        shapes = [tuple(o.shape) for o in yolov4_tiny_nano(num_classes=3).eval()(x)]
        assert shapes == [(1, 24, 8, 8), (1, 24, 4, 4)]
    for factory in NANO:
        model = factory(num_classes=7)
        # comparable to yolov3_nano (1.4 M parameters, 0.17 GFLOPs at 128 px with 7 classes)
        assert 1.0e6 <= count_parameters(model) <= 2.0e6
        assert count_flops(model, 128) <= 0.3e9


def test_nano_keeps_the_yolov4_design():
    cfg = yolov4_nano().cfg
    assert isinstance(cfg, YOLOv4Config) and cfg.spp_kernel_sizes == (5, 9, 13)
    # the stem and the first CSP stage downsample, the second stage keeps 32 x 32 at 128 px
    assert cfg.stem_stride == 2 and cfg.stage_strides == (2, 1, 2, 2, 2)
    # leaky in the backbone (measured: Mish made the CPU step ~1.3-1.4x slower); Mish is one
    # config field away and gives the same shapes
    assert cfg.backbone_act is DarknetLeaky
    with_mish = YOLOv4(dataclasses.replace(cfg, backbone_act=Mish))
    assert any(isinstance(m, Mish) for m in with_mish.backbone.modules())
    assert [o.shape[-1] for o in with_mish(torch.rand(1, 3, 64, 64))] == [8, 4, 2]


def test_backbone_strides_must_end_at_8_16_32():
    with pytest.raises(ValueError, match="8, 16, 32"):
        YOLOv4(YOLOv4Config(stem_stride=2, channels=(8, 8, 8, 8, 8), depths=(1, 1, 1, 1, 1)))
