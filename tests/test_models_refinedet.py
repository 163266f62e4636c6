"""Fidelity and smoke tests for RefineDet320 (VGG16).

Counts are those of shared/reference/architectures.md, re-implemented from the official Caffe
definition sfzhang15/RefineDet examples/refinedet/VGG16_VOC2007_320.py @52b6fe23. Full-size
networks are built and measured on the meta device; one real forward runs on CPU.
"""

import math

import pytest
import torch
from torch import nn

from yolo_teach.models.refinedet import (
    STRIDES,
    L2Norm,
    MultiBoxHead,
    RefineDet,
    RefineOutput,
    TransferConnectionBlock,
    refinedet320_vgg16,
    refinedet_anchors,
)
from yolo_teach.models.summary import count_flops, count_parameters


def meta_model(num_classes: int = 21) -> RefineDet:
    with torch.device("meta"):
        return refinedet320_vgg16(num_classes)


@pytest.mark.parametrize(("num_classes", "params", "gflops"), [
    (21, 34_440_884, 75.546),  # VOC, background included
    (81, 36_100_484, 77.308),  # COCO
])
def test_parameter_and_flop_counts_match_official(num_classes, params, gflops):
    model = meta_model(num_classes)
    assert count_parameters(model) == params
    # 2 x MACs of every conv and deconv at 320 px, one image
    assert count_flops(model, 320) / 1e9 == pytest.approx(gflops, abs=5e-4)


def test_flops_at_512_follow_the_maps():
    # same weights, (512/320)^2 = 2.56x the positions: the table's RefineDet512 row
    assert count_flops(meta_model(), 512) / 1e9 == pytest.approx(193.397, abs=5e-4)


def test_anchor_count_and_first_boxes_by_hand():
    anchors = refinedet_anchors(320)
    # (40*40 + 20*20 + 10*10 + 5*5) * 3 = (1600 + 400 + 100 + 25) * 3 = 6375
    assert anchors.shape == (6375, 4)
    r2 = math.sqrt(2)
    # cell (0, 0) of stride 8: centre (4, 4); min size 32
    expected = torch.tensor([
        [4 - 16, 4 - 16, 4 + 16, 4 + 16],  # ratio 1: 32 x 32 -> (-12, -12, 20, 20)
        [4 - 16 * r2, 4 - 16 / r2, 4 + 16 * r2, 4 + 16 / r2],  # ratio 2: w = 32 sqrt 2
        [4 - 16 / r2, 4 - 16 * r2, 4 + 16 / r2, 4 + 16 * r2],  # ratio 1/2: h = 32 sqrt 2
    ])
    torch.testing.assert_close(anchors[:3], expected)
    # the next row is cell (0, 1): centre x 12, location-major then anchor-minor
    torch.testing.assert_close(anchors[3], torch.tensor([-4.0, -12.0, 28.0, 20.0]))
    # the last anchor: stride 64, cell (4, 4) centre 4.5 * 64 = 288, ratio 1/2 of 256:
    # w = 256 / sqrt 2, h = 256 sqrt 2
    torch.testing.assert_close(anchors[-1], torch.tensor(
        [288 - 128 / r2, 288 - 128 * r2, 288 + 128 / r2, 288 + 128 * r2]))
    # first anchor of stride 16 (after 1600 * 3 rows): centre (8, 8), 64 x 64
    torch.testing.assert_close(anchors[4800], torch.tensor([-24.0, -24.0, 40.0, 40.0]))


def test_output_shapes_at_320_and_per_level_maps():
    model = meta_model()
    maps = {}
    for name in ("loc", "conf"):
        for level, conv in enumerate(getattr(model.odm, name)):
            conv.register_forward_hook(
                lambda m, i, o, key=(name, level): maps.__setitem__(key, tuple(o.shape[1:])))
    out = model(torch.empty(1, 3, 320, 320, device="meta"))
    assert isinstance(out, RefineOutput)
    assert out.arm_loc.shape == (1, 6375, 4)
    assert out.arm_conf.shape == (1, 6375, 2)
    assert out.odm_loc.shape == (1, 6375, 4)
    assert out.odm_conf.shape == (1, 6375, 21)
    sizes = (40, 20, 10, 5)
    for level, s in enumerate(sizes):
        assert maps["loc", level] == (12, s, s)  # 3 anchors x 4
        assert maps["conf", level] == (63, s, s)  # 3 anchors x 21
    assert [320 // stride for stride in STRIDES] == list(sizes)


def test_rows_match_anchors_at_other_sizes():
    model = meta_model()
    for size in (512, (64, 128), (384, 448)):
        out = model(torch.empty(2, 3, *((size, size) if isinstance(size, int) else size),
                                device="meta"))
        assert out.odm_conf.shape == (2, len(refinedet_anchors(size)), 21)
    assert len(refinedet_anchors(512)) == (64**2 + 32**2 + 16**2 + 8**2) * 3  # 16,320
    with pytest.raises(ValueError, match="multiples of 64"):  # fc7 at 96/32 = 3 cells, but
        model(torch.empty(1, 3, 96, 96, device="meta"))  # the deconvolved P6 has 2 x 2 = 4


def test_l2norm_normalises_over_channels_then_scales():
    norm = L2Norm(3, 10.0)
    assert torch.equal(norm.scale.detach(), torch.full((3,), 10.0))
    x = torch.tensor([3.0, 4.0, 0.0]).view(1, 3, 1, 1)  # |x| = sqrt(9 + 16) = 5 over channels
    torch.testing.assert_close(norm(x).flatten(), torch.tensor([6.0, 8.0, 0.0]))  # 10 x / 5
    assert isinstance(norm.scale, nn.Parameter)  # learnable, one value per channel


def test_vgg_pool5_fc6_and_no_batch_norm():
    model = meta_model()
    backbone = model.backbone
    assert (backbone.pool5.kernel_size, backbone.pool5.stride) == (2, 2)  # not SSD's 3x3/1
    fc6 = backbone.fc6
    assert fc6.kernel_size == (3, 3) and fc6.dilation == (3, 3) and fc6.padding == (3, 3)
    assert fc6.out_channels == 1024 and backbone.fc7.kernel_size == (1, 1)
    assert backbone.conv6_1.kernel_size == (1, 1) and backbone.conv6_2.stride == (2, 2)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is not None for m in convs)  # use_batchnorm=False: every conv has a bias
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # 13 VGG convs + fc6, fc7, conv6_1, conv6_2 + 4 TCBs x 3 convs + 3 deconvs + 16 head convs
    assert len(convs) == 13 + 4 + 12 + 3 + 16


def test_tcb_layout():
    top = TransferConnectionBlock(512, 256, top=True)
    assert top.upsample is None
    tcb = TransferConnectionBlock(1024, 256)
    up = tcb.upsample
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.kernel_size, up.stride, up.bias is not None) == ((2, 2), (2, 2), True)
    x, coarser = torch.randn(1, 1024, 6, 6), torch.randn(1, 256, 3, 3)
    assert tcb(x, coarser).shape == (1, 256, 6, 6)
    assert top(torch.randn(1, 512, 3, 3)).shape == (1, 256, 3, 3)


def test_flatten_order_is_location_major_anchor_minor():
    torch.manual_seed(0)
    head = MultiBoxHead((4, 4), num_anchors=3, num_classes=5)
    features = [torch.randn(1, 4, 2, 3), torch.randn(1, 4, 1, 2)]
    loc, conf = head(features)
    assert loc.shape == (1, (6 + 2) * 3, 4) and conf.shape == (1, 24, 5)
    raw = head.conf[0](features[0])  # (1, 3*5, 2, 3), channels anchor-major
    y, x, a = 1, 2, 1  # row (y * W + x) * A + a = (1 * 3 + 2) * 3 + 1 = 16
    torch.testing.assert_close(conf[0, 16], raw[0, a * 5:(a + 1) * 5, y, x])
    raw = head.loc[1](features[1])  # second level starts after 2 * 3 * 3 = 18 rows
    torch.testing.assert_close(loc[0, 18 + 1 * 3 + 2], raw[0, 8:12, 0, 1])


def test_smoke_forward_320_on_cpu():
    torch.manual_seed(0)
    model = refinedet320_vgg16().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 320, 320))
    for t in (out.arm_loc, out.arm_conf, out.odm_loc, out.odm_conf):
        assert torch.isfinite(t).all()
    assert out.odm_conf.shape == (1, 6375, 21)
    # official normalizations [10, 8, -1, -1]: conv4_3 and conv5_3, one scale per channel
    assert torch.equal(model.norm4_3.scale.detach(), torch.full((512,), 10.0))
    assert torch.equal(model.norm5_3.scale.detach(), torch.full((512,), 8.0))


def test_small_input_trains_with_finite_gradients():
    torch.manual_seed(0)
    model = refinedet320_vgg16(num_classes=3)
    out = model(torch.randn(1, 3, 64, 64))  # maps 8, 4, 2, 1: (64 + 16 + 4 + 1) * 3 = 255
    assert out.odm_loc.shape == (1, 255, 4)
    loss = sum(t.square().mean() for t in (out.arm_loc, out.arm_conf, out.odm_loc, out.odm_conf))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.norm4_3.scale.grad.abs().sum() > 0  # the L2Norm scales learn
    assert model.train().training  # raw outputs in train mode too (same dataclass)


def test_features_are_the_arm_sources_and_the_tcb_pyramid():
    model = meta_model()
    sources, pyramid = model.features(torch.empty(1, 3, 320, 320, device="meta"))
    assert [tuple(s.shape[1:]) for s in sources] == [(512, 40, 40), (512, 20, 20),
                                                     (1024, 10, 10), (512, 5, 5)]
    assert [tuple(p.shape[1:]) for p in pyramid] == [(256, 40, 40), (256, 20, 20),
                                                     (256, 10, 10), (256, 5, 5)]
    assert model.feature_sizes(320) == [40, 20, 10, 5]
