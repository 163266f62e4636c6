"""Fidelity and smoke tests for YOLOX (architecture only; SimOTA and the loss come later).

Full-size networks are built on the meta device (shapes, no data); the CPU nano runs a real
forward and backward pass at 128 px.
"""

import math

import pytest
import torch
from torch import nn

from yolo_teach.layers.c3 import C3, DWConv
from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.heads import DecoupledHead
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolox import (
    CPU_NANO_INPUT_SIZE,
    STRIDES,
    YOLOX,
    Focus,
    SPPBottleneck,
    YOLOXConfig,
    decode_outputs,
    yolox_cpu_nano,
    yolox_l,
    yolox_m,
    yolox_nano,
    yolox_s,
    yolox_tiny,
    yolox_x,
)

# factory, parameters, GFLOPs at 640 px (conv-only 2 x MACs), 80 classes. Counted from
# Megvii's exps/default/yolox_*.py @6ddff482 (shared/reference/architectures.md); the README's
# 26.8 / 73.8 / 155.6 / 281.9 also count batch norm (see test_readme_flop_convention).
FULL_SIZE = [
    (yolox_s, 8_968_255, 26.686),
    (yolox_m, 25_326_495, 73.53),
    (yolox_l, 54_208_895, 155.293),
    (yolox_x, 99_071_455, 281.41),
]
# factory, input size, README params (M) and GFLOPs, both printed to 2 decimals
README_SMALL = [(yolox_tiny, 416, 5.06, 6.45), (yolox_nano, 416, 0.91, 1.08)]


def meta_model(factory, **kwargs):
    with torch.device("meta"):
        return factory(**kwargs)


def batchnorm_elements(model: nn.Module, size: int) -> int:
    """Output elements of every BatchNorm2d for one meta image of ``size`` px."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize(("factory", "params", "gflops"), FULL_SIZE)
def test_full_size_models_match_the_official_networks(factory, params, gflops):
    model = meta_model(factory)
    assert count_parameters(model) == params  # exact
    assert count_flops(model, 640) / 1e9 == pytest.approx(gflops, rel=1e-2)
    outputs = model(torch.empty(2, 3, 640, 640, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [(2, 85, 80, 80), (2, 85, 40, 40),
                                                 (2, 85, 20, 20)]
    assert decode_outputs(outputs).shape == (2, 8400, 85)  # 80^2 + 40^2 + 20^2 = 8400


@pytest.mark.parametrize(("factory", "size", "params_m", "gflops"), README_SMALL)
def test_tiny_and_nano_match_the_readme(factory, size, params_m, gflops):
    model = meta_model(factory)
    # tiny 5,055,855 and nano 912,159 parameters; the README rounds to 0.01 M
    assert count_parameters(model) / 1e6 == pytest.approx(params_m, abs=0.005)
    conv_only = count_flops(model, size) / 1e9  # tiny 6.413, nano 1.045
    # The README counts with thop-0.0.31 on the unfused model: conv MACs plus 2 ops per
    # batch-norm output (normalise, then scale and shift), all doubled. Conv-only is 0.6 %
    # (tiny) and 3.3 % (nano) below it: the nano's depth-wise convs are so cheap that batch
    # norm is a visible share of its FLOPs.
    readme_convention = conv_only + 4 * batchnorm_elements(model, size) / 1e9
    assert readme_convention == pytest.approx(gflops, abs=0.005)  # 6.450 and 1.079
    assert conv_only < gflops


def test_readme_flop_convention_reproduces_yolox_s():
    model = meta_model(yolox_s)
    # 26.686 + 4 * 0.02985 = 26.805; README 26.8 (architectures.md: 26.806)
    total = count_flops(model, 640) + 4 * batchnorm_elements(model, 640)
    assert total / 1e9 == pytest.approx(26.806, abs=0.002)


def test_depth_and_width_multiples_follow_the_official_rounding():
    # backbone n = max(round(3 d), 1), dark3/dark4 3n; neck round(3 d); widths int(c * w)
    for factory, n, width in [(yolox_s, 1, 32), (yolox_m, 2, 48), (yolox_l, 3, 64),
                              (yolox_x, 4, 80), (yolox_tiny, 1, 24), (yolox_nano, 1, 16)]:
        model = meta_model(factory)
        b = model.backbone
        assert b.stem.conv.conv.out_channels == width
        assert [len(stage[-1].m) for stage in (b.dark2, b.dark3, b.dark4, b.dark5)] == \
            [n, 3 * n, 3 * n, n]
        assert len(model.neck.top_down4.m) == n
        assert model.head.stems[0].conv.out_channels == int(4 * width)  # int(256 * w)


def test_shortcuts_backbone_yes_dark5_and_neck_no():
    model = meta_model(yolox_s)
    b = model.backbone
    assert all(block.add for stage in (b.dark2, b.dark3, b.dark4) for block in stage[-1].m)
    assert isinstance(b.dark5[1], SPPBottleneck)
    assert not any(block.add for block in b.dark5[-1].m)
    neck_csps = [m for m in model.neck.modules() if isinstance(m, C3)]
    assert len(neck_csps) == 4
    assert not any(block.add for c3 in neck_csps for block in c3.m)


def test_nano_is_depthwise_except_stem_and_1x1s():
    model = meta_model(yolox_nano)
    assert not isinstance(model.backbone.stem.conv, DWConv)  # Focus' conv stays plain
    assert all(isinstance(m, ConvBNAct) for m in model.head.stems)
    assert isinstance(model.head.cls_convs[0][0], DWConv)
    assert isinstance(model.backbone.dark2[0], DWConv)
    assert isinstance(model.neck.down3, DWConv)
    assert not any(isinstance(m, DWConv) for m in meta_model(yolox_tiny).modules())


def test_num_classes_changes_only_the_class_preds():
    # YOLOX-S: three 1x1 cls_preds on 128 channels; K 80 -> 3 removes 77 * (128 + 1) each
    diff = count_parameters(meta_model(yolox_s)) - count_parameters(meta_model(yolox_s,
                                                                                num_classes=3))
    assert diff == 3 * 77 * 129


def test_init_bias_and_batchnorm_settings():
    model = yolox_cpu_nano(num_classes=3)
    head = model.head
    for pred in [*head.cls_preds, *head.obj_preds]:
        assert torch.allclose(torch.sigmoid(pred.bias), torch.tensor(0.01))
    # the box regression keeps PyTorch's default (uniform, |b| < 1/sqrt(fan_in)) bias
    assert all(p.bias.abs().max() < 1 / math.sqrt(p.in_channels) for p in head.reg_preds)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)


def test_focus_space_to_depth_order():
    focus = Focus(1, 4)
    focus.conv = nn.Identity()
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = focus(x)  # (1, 4, 2, 2): top-left, bottom-left, top-right, bottom-right
    assert y[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]  # x[0,0], x[1,0], x[0,1], x[1,1]


def test_spp_bottleneck_order_is_x_5_9_13():
    spp = SPPBottleneck(2, 8)
    spp.conv1, spp.conv2 = nn.Identity(), nn.Identity()
    x = torch.randn(1, 2, 16, 16)
    y = spp(x)  # (1, 8, 16, 16)
    expected = [x] + [nn.functional.max_pool2d(x, k, 1, k // 2) for k in (5, 9, 13)]
    assert torch.equal(y, torch.cat(expected, dim=1))


def test_decoupled_head_channel_layout():
    torch.manual_seed(0)
    head = DecoupledHead((8, 16), num_classes=3, hidden_channels=8).eval()
    features = [torch.randn(1, 8, 4, 4), torch.randn(1, 16, 2, 2)]
    outputs = head(features)
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 4, 4), (1, 8, 2, 2)]  # 4 + 1 + 3
    x = head.stems[1](features[1])
    reg_feat = head.reg_convs[1](x)
    assert torch.allclose(outputs[1][:, :4], head.reg_preds[1](reg_feat))
    assert torch.allclose(outputs[1][:, 4:5], head.obj_preds[1](reg_feat))
    assert torch.allclose(outputs[1][:, 5:], head.cls_preds[1](head.cls_convs[1](x)))


def test_decode_outputs_by_hand():
    # zero raw maps: centre = (cell + 0) * stride, size = e^0 * stride, scores sigmoid(0) = 0.5
    outputs = [torch.zeros(1, 6, 2, 3), torch.zeros(1, 6, 1, 1)]  # K = 1, strides 8 and 16
    outputs[0][0, 0, 1, 2] = 0.5  # t_x at row 1, column 2
    outputs[0][0, 3, 1, 2] = math.log(2.0)  # t_h
    decoded = decode_outputs(outputs, strides=(8, 16))  # (1, 2*3 + 1, 6)
    assert decoded.shape == (1, 7, 6)
    # rows are cells row-major: row 1, column 2 is index 1 * 3 + 2 = 5
    # x = (0.5 + 2) * 8 = 20, y = (0 + 1) * 8 = 8, w = 8, h = 2 * 8 = 16
    assert decoded[0, 5].tolist() == pytest.approx([20.0, 8.0, 8.0, 16.0, 0.5, 0.5])
    assert decoded[0, 1, :4].tolist() == pytest.approx([8.0, 0.0, 8.0, 8.0])  # row 0, col 1
    assert decoded[0, 6, :4].tolist() == pytest.approx([0.0, 0.0, 16.0, 16.0])  # stride 16


def test_cpu_nano_trains_at_128_px():
    torch.manual_seed(0)
    model = yolox_cpu_nano(num_classes=3)
    assert isinstance(model, YOLOX) and model.cfg == YOLOXConfig(
        num_classes=3, depth=0.33, width=0.25, depthwise=True)
    assert model.strides == STRIDES
    images = torch.randn(2, 3, CPU_NANO_INPUT_SIZE, CPU_NANO_INPUT_SIZE)
    outputs = model(images)
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]
    sum(o.square().mean() for o in outputs).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()  # forward returns the same raw maps in eval mode
    with torch.no_grad():
        assert decode_outputs(model(images)).shape == (2, 16 * 16 + 8 * 8 + 4 * 4, 8)
