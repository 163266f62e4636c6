"""Fidelity and smoke tests for YOLOv1-v3, the shared conv layers and the model summary.

Full-size networks are built on the meta device (shapes, no data), so their 60-270 M
parameters cost nothing; the nano networks run real forward and backward passes at 128 px.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from yolo_teach.layers import ConvBNAct, DarknetLeaky, MaxPoolStride1, Reorg
from yolo_teach.models import (
    count_flops,
    count_parameters,
    summary,
    yolov1,
    yolov1_nano,
    yolov2,
    yolov2_nano,
    yolov2_tiny,
    yolov3,
    yolov3_nano,
    yolov3_tiny,
)

# factory, input size, parameters, GFLOPs (2 x MACs), output shape(s) of one image.
# Parameters: YOLOv1 = 24 biased convs + FC 4096 + FC 1470 (no batch norm, §2.1); YOLOv2,
# YOLOv3 and YOLOv3-tiny as their official Darknet cfgs with BN scale and shift per conv.
# GFLOPs: the totals Darknet prints for the same cfgs (yolov2-tiny-voc: 6.97 Bn on the YOLOv2
# web page).
FULL_SIZE = [
    (yolov1, 448, 271_703_550, 40.57, [(7, 7, 30)]),
    (yolov2, 416, 50_655_389, 29.36, [(125, 13, 13)]),
    (yolov2_tiny, 416, None, 6.97, [(125, 13, 13)]),
    (yolov3, 416, 61_949_149, 65.86, [(255, 52, 52), (255, 26, 26), (255, 13, 13)]),
    (yolov3_tiny, 416, 8_852_366, 5.57, [(255, 26, 26), (255, 13, 13)]),
]
NANO = [yolov1_nano, yolov2_nano, yolov3_nano]


def meta_model(factory, **kwargs):
    with torch.device("meta"):
        return factory(**kwargs)


def as_list(output):
    return output if isinstance(output, list) else [output]


@pytest.mark.parametrize(("factory", "size", "params", "gflops", "shapes"), FULL_SIZE)
def test_full_size_models_match_the_official_networks(factory, size, params, gflops, shapes):
    model = meta_model(factory)
    if params is not None:
        assert count_parameters(model) == pytest.approx(params, rel=1e-3)
    assert count_flops(model, size) / 1e9 == pytest.approx(gflops, rel=1e-2)
    outputs = as_list(model(torch.empty(2, 3, size, size, device="meta")))
    assert [tuple(o.shape) for o in outputs] == [(2, *s) for s in shapes]


@pytest.mark.parametrize("factory", NANO)
def test_nano_models_run_at_128px_and_have_finite_gradients(factory):
    torch.manual_seed(0)
    model = factory(num_classes=3)
    images = torch.rand(2, 3, 128, 128)
    outputs = as_list(model(images))
    loss = sum(o.square().mean() for o in outputs)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():  # raw maps in eval too: same shapes, nothing decoded
        assert [o.shape for o in as_list(model(images))] == [o.shape for o in outputs]


def test_nano_output_shapes_and_sizes():
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        # S=4 grid, 2 boxes, 20 classes: 4 x 4 x (2*5 + 20)
        assert yolov1_nano().eval()(x).shape == (1, 4, 4, 30)
        # 128 / 32 = 4 cells, 5 anchors x (5 + 20) = 125 channels
        assert yolov2_nano().eval()(x).shape == (1, 125, 4, 4)
        # strides 8, 16, 32 -> 16, 8, 4 cells, 3 anchors x (5 + 80) = 255 channels
        shapes = [o.shape for o in yolov3_nano().eval()(x)]
        assert shapes == [(1, 255, 16, 16), (1, 255, 8, 8), (1, 255, 4, 4)]
    assert 1.0e6 <= count_parameters(yolov3_nano()) <= 1.5e6
    for factory in NANO:
        assert count_parameters(factory()) <= 2e6 and count_flops(factory(), 128) <= 0.5e9


def test_yolov1_last_conv_map_is_the_grid():
    # paper: 448 / 32 = 14, then the stride-2 detection conv: 7 x 7 = S
    paper = meta_model(yolov1)
    assert paper.cfg.feature_size == paper.cfg.grid_size == 7 and paper.cfg.stride == 64
    assert [c.conv.stride for c in paper.head.convs] == [(1, 1), (2, 2), (1, 1), (1, 1)]
    assert paper.head.fc1.in_features == 1024 * 7 * 7
    # nano: no detection convs, 128 / 32 = 4 x 4 = S; 128 channels x 16 cells into the FC layer
    nano = yolov1_nano(num_classes=7)
    assert nano.cfg.feature_size == nano.cfg.grid_size == 4 and len(nano.head.convs) == 0
    assert nano.cfg.stride == 32
    assert nano.head.fc1.in_features == 128 * 4 * 4 and nano.head.dropout.p == 0.0


def test_num_classes_changes_only_the_prediction_layers():
    # YOLOv3's three 1x1 prediction convs see 256, 512 and 1024 channels; with K=3 each has
    # 3 * (5 + 3) = 24 outputs instead of 255, each with one weight per channel and a bias:
    # (255 - 24) * ((256 + 1) + (512 + 1) + (1024 + 1)) = 231 * 1795.
    v3_80, v3_3 = meta_model(yolov3), meta_model(yolov3, num_classes=3)
    assert count_parameters(v3_80) - count_parameters(v3_3) == 231 * 1795
    outputs = v3_3(torch.empty(1, 3, 416, 416, device="meta"))
    assert [o.shape[1] for o in outputs] == [24, 24, 24]
    # YOLOv1 with K=3: 7 * 7 * (2*5 + 3) = 637 outputs of the last FC layer instead of 1470.
    v1_3 = meta_model(yolov1, num_classes=3)
    assert v1_3(torch.empty(1, 3, 448, 448, device="meta")).shape == (1, 7, 7, 13)
    assert count_parameters(meta_model(yolov1)) - count_parameters(v1_3) == (1470 - 637) * 4097
    assert meta_model(yolov2, num_classes=3).pred.out_channels == 5 * (5 + 3)
    assert meta_model(yolov3_tiny, num_classes=3).head32[-1].out_channels == 24


@pytest.mark.parametrize(("factory", "size"), [(f, s) for f, s, *_ in FULL_SIZE])
def test_summary_totals_equal_the_independent_counts(factory, size):
    model = meta_model(factory)
    table = summary(model, size)
    assert table.total_params == count_parameters(model)
    # per-row FLOPs come from weight shapes, count_flops from FlopCounterMode
    assert table.total_flops == count_flops(model, size)
    assert f"{table.total_params:,}" in str(table)


def test_summary_rows_read_like_darknet():
    rows = summary(yolov3_tiny(), 416).rows
    # one ConvBNAct = one row: 11 of them (BN + leaky inside) + 2 prediction convs = 13 convs,
    # + 6 max-pools + 1 upsample = 20 rows, Darknet's 24 layers minus 2 routes and 2 yolo layers.
    assert [r.kind for r in rows].count("conv") == 13 and len(rows) == 20
    first = rows[0]
    # 3x3x3x16 weights + 16 BN scales + 16 BN shifts = 464; 2 * 432 * 416 * 416 = 0.150 GFLOPs
    assert (first.kind, first.filters, first.kernel_stride) == ("conv", 16, "3 x 3/ 1")
    assert first.output_shape == (16, 416, 416) and first.params == 464
    assert first.flops == 2 * 432 * 416 * 416
    assert rows[11].kind == "max" and rows[11].output_shape == (512, 13, 13)  # stride-1 pool


def test_count_flops_leaves_real_weights_and_mode_untouched():
    model = yolov2_nano().train()
    before = model.pred.weight.clone()
    count_flops(model, 128)
    summary(model, 128)
    assert model.training and torch.equal(model.pred.weight, before)
    assert model.pred.weight.device.type == "cpu"


def test_init_bias_sets_the_objectness_prior():
    # sigmoid(-log((1 - 0.01) / 0.01)) = 0.01 for the t_o channel of every anchor
    for model in (yolov2_nano(num_classes=3), yolov3_nano(num_classes=3)):
        model.init_bias(prior=0.01)
        preds = [model.pred] if hasattr(model, "pred") else [b[-1] for b in model.head.branches]
        for pred in preds:
            bias = pred.bias.view(model.cfg.num_anchors, 5 + 3)  # (A, 5+K)
            assert torch.allclose(torch.sigmoid(bias[:, 4]), torch.full((bias.shape[0],), 0.01))
    v1 = yolov1_nano(num_classes=3)
    v1.init_bias(prior=0.01)  # linear confidences: the bias is the prior itself
    bias = v1.head.fc2.bias.view(4, 4, 13)
    assert torch.all(bias[..., [4, 9]] == 0.01)


def test_reorg_stacks_the_four_shifted_subimages():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    naive = torch.cat([x[:, :, dy::2, dx::2] for dy in range(2) for dx in range(2)], dim=1)
    assert torch.equal(Reorg(stride=2)(x), naive)  # (2, 12, 2, 3)
    assert sorted(Reorg(2)(x).flatten().tolist()) == x.flatten().tolist()  # a permutation


def test_maxpool_stride1_matches_darknet_minus_infinity_padding():
    x = torch.randn(2, 4, 13, 13) - 1.0  # mostly negative: zero padding would differ here
    darknet = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 2, stride=1)
    assert torch.equal(MaxPoolStride1()(x), darknet) and darknet.shape == x.shape


def test_conv_bn_act_and_leaky():
    assert torch.equal(DarknetLeaky()(torch.tensor([-10.0, 3.0])), torch.tensor([-1.0, 3.0]))
    conv = ConvBNAct(3, 8, 3, stride=2)
    assert conv.conv.bias is None and conv(torch.rand(1, 3, 10, 10)).shape == (1, 8, 5, 5)
    plain = ConvBNAct(3, 8, 1, act_layer=None, norm_layer=None)  # YOLOv1-style, linear
    assert plain.conv.bias is not None and count_parameters(plain) == 3 * 8 + 8


def test_yolov1_detector_checks_the_img_size_against_its_stride():
    from yolo_teach.detectors import build_detector

    assert build_detector("yolov1-nano", 7, 160).img_size == 160  # nano: stride 32
    with pytest.raises(ValueError, match="divisible by 32"):
        build_detector("yolov1-nano", 7, 150)
