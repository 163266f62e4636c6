"""Shape, structure and invariant tests for RefineDetLite (Chen et al. 2020, §3).

The paper gives the source widths and map sizes ({576, 1152, 512, 512} at {20, 10, 5, 3},
§3.1-3.2) but no parameter or FLOP count; the counts pinned here are those of our design
(yolo_teach/models/refinedet_lite.py), measured. Full-size networks are built on the meta
device; the real forward passes use the nano network at 128 px.
"""

import math

import pytest
import torch
from torch import nn

from yolo_teach.deploy import fuse
from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.losses.refine_assign import filtered_anchors
from yolo_teach.models.refinedet_lite import (
    PRIOR,
    STRIDES,
    ChannelAffine,
    InputNorm,
    LightHead,
    RefineDetLite,
    RefineDetLiteConfig,
    RefineOutput,
    Res2Block,
    refinedet_lite72,
    refinedet_lite_nano,
)
from yolo_teach.models.summary import count_flops, count_parameters


def meta_model(num_classes: int = 81) -> RefineDetLite:
    with torch.device("meta"):
        return refinedet_lite72(num_classes)


@torch.no_grad()
def randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Random running statistics, scales and shifts, so that eval differs from identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)


def test_parameter_and_flop_counts_as_measured():
    # our design, not the paper's (it gives none): pinned so that a change is noticed
    model = meta_model()
    assert count_parameters(model) == 8_557_248
    # 2 x MACs of every conv at 320 px, one image (YOLOv3-320: 38.97 GFLOPs, 11x more)
    assert count_flops(model, 320) / 1e9 == pytest.approx(3.5746, abs=5e-5)
    with torch.device("meta"):
        nano = refinedet_lite_nano()
    assert count_parameters(nano) == 325_318
    assert count_flops(nano, 128) / 1e9 == pytest.approx(0.03983, abs=5e-6)


def test_sources_at_320_are_the_papers():
    model = meta_model()
    maps = model.backbone(torch.empty(1, 3, 320, 320, device="meta"))
    shapes = {name: tuple(maps[name].shape[1:]) for name in model.cfg.sources}
    # §3.2: {576, 1152, 512, 512} channels (Stage2, Stage3, two extra bottlenecks);
    # §3.1: {20x20, 10x10, 5x5, 3x3}: 320 / 16 = 20, / 32 = 10, / 64 = 5, ceil(5 / 2) = 3
    assert shapes == {"stage2": (576, 20, 20), "stage3": (1152, 10, 10),
                      "extra1": (512, 5, 5), "extra2": (512, 3, 3)}
    assert tuple(maps["stage1"].shape[1:]) == (288, 40, 40)  # 4c at stride 8
    assert model.strides == STRIDES == (16, 32, 64, 128)
    assert model.feature_sizes(320) == [20, 10, 5, 3]
    # Table 1 / §3.2: 3, 7 and 3 Res2Blocks after each stage's bottleneck
    depths = [sum(isinstance(m, Res2Block) for m in model.backbone.stages[f"stage{k}"])
              for k in (1, 2, 3)]
    assert depths == [3, 7, 3]


def test_output_shapes_at_320():
    model = meta_model()
    out = model(torch.empty(2, 3, 320, 320, device="meta"))
    assert isinstance(out, RefineOutput)
    n = (400 + 100 + 25 + 9) * 3  # (20² + 10² + 5² + 3²) x 3 anchors = 1602
    assert out.arm_loc.shape == (2, n, 4)
    assert out.arm_conf.shape == (2, n, 2)
    assert out.odm_loc.shape == (2, n, 4)
    assert out.odm_conf.shape == (2, n, 81)


def test_priors_at_320_by_hand():
    priors = meta_model().priors(320)
    assert priors.shape == (1602, 4) and priors.device.type == "cpu"
    # level 0: 20 x 20 cells over 320 px, step 16; cell (0, 0) centre (0.5 * 16, 0.5 * 16) =
    # (8, 8); ratio 1, side 32 -> (8 - 16, 8 - 16, 8 + 16, 8 + 16)
    torch.testing.assert_close(priors[0], torch.tensor([-8.0, -8.0, 24.0, 24.0]))
    # next location (0, 1): centre x 8 + 16 = 24 (rows location-major, ratios minor)
    torch.testing.assert_close(priors[3], torch.tensor([8.0, -8.0, 40.0, 24.0]))
    # level 3 starts after (400 + 100 + 25) * 3 = 1575 rows: 3 x 3 cells, step 320 / 3
    step = 320 / 3
    centres = (priors[1575::3, :2] + priors[1575::3, 2:]) / 2  # ratio-1 anchors, (9, 2)
    torch.testing.assert_close(centres[1] - centres[0], torch.tensor([step, 0.0]))
    torch.testing.assert_close(centres[0], torch.tensor([step / 2, step / 2]))
    # the last anchor: cell (2, 2), centre 2.5 * 320 / 3, ratio 1/2 of 256:
    # w = 256 / sqrt 2, h = 256 sqrt 2
    c, r2 = 2.5 * step, math.sqrt(2)
    torch.testing.assert_close(priors[-1], torch.tensor(
        [c - 128 / r2, c - 128 * r2, c + 128 / r2, c + 128 * r2]))


def test_rows_match_priors_at_other_sizes():
    model = meta_model().eval()  # eval: BatchNorm on the 1 x 1 maps of a 100 px input
    for size in (256, (192, 320), 100):  # 100 px: 25, 13, 7, 4, 2, 1, 1 (ceil halvings)
        h, w = (size, size) if isinstance(size, int) else size
        out = model(torch.empty(1, 3, h, w, device="meta"))
        assert out.odm_conf.shape[1] == len(model.priors(size))
    assert model.feature_sizes((192, 320)) == [(12, 20), (6, 10), (3, 5), (2, 3)]


def test_nano_trains_at_128_with_finite_gradients():
    torch.manual_seed(0)
    model = refinedet_lite_nano()
    assert model.strides == (8, 16, 32, 64)
    assert model.feature_sizes(128) == [16, 8, 4, 2]
    out = model(torch.randn(2, 3, 128, 128))
    n = (256 + 64 + 16 + 4) * 4  # (16² + 8² + 4² + 2²) x 4 anchors (3 ratios + max) = 1360
    assert out.arm_loc.shape == (2, n, 4) and out.arm_conf.shape == (2, n, 2)
    assert out.odm_loc.shape == (2, n, 4) and out.odm_conf.shape == (2, n, 8)
    assert len(model.priors(128)) == n
    loss = sum(t.square().mean() for t in out)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_every_grouped_conv_has_g_2():
    # §3.2: "maximal g = 2 for all group convolutions"; every 3x3 after the stem is one
    model = meta_model()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    stem_conv = model.backbone.stem[1].conv
    assert stem_conv.groups == 1 and stem_conv.stride == (2, 2)
    assert all(m.groups == 2 for m in convs if m is not stem_conv)
    heads = [*model.arm.loc, *model.arm.conf, *model.odm.loc, *model.odm.conf]
    assert all(m.kernel_size == (1, 1) and m.bias is not None for m in heads)  # §3.3


def res2block(channels: int = 32, seed: int = 0) -> Res2Block:
    torch.manual_seed(seed)
    block = Res2Block(channels, scales=4, groups=2)
    randomise_batch_norms(block, seed)
    return block.eval()


def test_res2block_keeps_shape_and_follows_eq_1():
    block = res2block()  # C = 32: hidden 8, w = 2 per split
    x = torch.randn(2, 32, 5, 7)
    assert block(x).shape == x.shape
    assert block.width == 2 and len(block.K) == 3  # K_2 .. K_s
    # an independent re-computation of eq. 1 from the submodules
    x1, x2, x3, x4 = block.reduce(x).split(2, dim=1)
    y2 = block.K[0](x2)
    y3 = block.K[1](x3 + y2)
    y4 = block.K[2](x4 + y3)
    reference = torch.relu(block.expand(torch.cat([x1, y2, y3, y4], dim=1)) + x)
    torch.testing.assert_close(block(x), reference)


def test_res2block_hierarchy_flows_one_way():
    block = res2block()
    hidden = torch.randn(1, 8, 6, 6)  # the splits x_1 .. x_4, 2 channels each
    ys = block.hierarchy(hidden)
    assert torch.equal(ys[0], hidden[:, :2])  # y_1 = x_1, untouched
    # changing only x_s changes only y_s
    changed = hidden.clone()
    changed[:, 6:] += 1.0
    ys_changed = block.hierarchy(changed)
    for i in range(3):
        assert torch.equal(ys[i], ys_changed[i])
    assert not torch.equal(ys[3], ys_changed[3])
    # changing only x_2 reaches y_2 .. y_s (through the additions) but not y_1
    changed = hidden.clone()
    changed[:, 2:4] += 1.0
    ys_changed = block.hierarchy(changed)
    assert torch.equal(ys[0], ys_changed[0])
    assert all(not torch.equal(ys[i], ys_changed[i]) for i in (1, 2, 3))


def test_res2block_is_identity_plus_relu_without_its_last_conv():
    block = res2block()
    with torch.no_grad():
        block.expand.conv.weight.zero_()
        block.expand.bn.running_mean.zero_()
        block.expand.bn.bias.zero_()  # expand(.) = 0 in eval
    x = torch.randn(2, 32, 4, 4)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_light_head_is_relu_of_bottleneck_plus_shortcut():
    torch.manual_seed(0)
    head = LightHead(24, 32)
    randomise_batch_norms(head)
    head.eval()
    x = torch.randn(2, 24, 5, 3)
    out = head(x)
    assert out.shape == (2, 32, 5, 3)
    reference = torch.relu(head.bottleneck(x) + head.shortcut(x))
    torch.testing.assert_close(out, reference)
    mid = head.bottleneck[1].conv
    assert (mid.in_channels, mid.kernel_size, mid.groups) == (8, (3, 3), 2)  # C_out / 4, g = 2
    assert isinstance(head.shortcut.act, nn.Identity)  # linear 1x1 shortcut


def test_input_norm_fuses_into_a_channel_affine():
    torch.manual_seed(0)
    norm = InputNorm(3)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([120.0, 110.0, 100.0]))  # pixel statistics
        norm.running_var.copy_(torch.tensor([3600.0, 3000.0, 3300.0]))
        norm.weight.copy_(torch.tensor([0.8, 1.2, 1.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.0]))
    norm.eval()
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    fused = norm.fuse()
    assert isinstance(fused, ChannelAffine)
    assert not isinstance(fused, nn.modules.batchnorm._BatchNorm)
    x = torch.rand(2, 3, 8, 8) * 255
    torch.testing.assert_close(fused(x), norm(x))
    # fuse() returns a new module and leaves the BatchNorm as it was
    assert all(torch.equal(v, norm.state_dict()[k]) for k, v in state.items())
    # channel 0: scale 0.8 / sqrt(3600 + 1e-5) ~ 0.8 / 60, shift 0.1 - 120 * 0.8 / 60 = -1.5
    assert fused.scale[0].item() == pytest.approx(0.8 / 60, rel=1e-6)
    assert fused.shift[0].item() == pytest.approx(-1.5, rel=1e-5)
    assert fused.train()(x).shape == x.shape  # no running statistics: same in train mode


def test_init_bias_gives_the_prior():
    model = refinedet_lite_nano(num_classes=8)
    k_fg, p, a = 7, PRIOR, 4  # A = 4 anchors per location (3 ratios + the max-size square)
    assert p == 0.25  # OHEM's 1 positive : 3 negatives
    for conv in model.arm.conf:  # A anchors x [background, object]
        bias = conv.bias.detach().view(a, 2)
        assert bias[:, 0].tolist() == pytest.approx([math.log(0.75 / 0.25)] * a)  # log 3
        assert bias.softmax(-1)[:, 1].tolist() == pytest.approx([p] * a)
    for conv in model.odm.conf:
        bias = conv.bias.detach().view(a, 8)
        # b = log(K_fg (1 - p) / p) = log(7 x 3) = log 21: e^b / (e^b + 7) = 21 / 28 = 0.75
        assert bias[:, 0].tolist() == pytest.approx([math.log(21)] * a)
        probs = bias.softmax(-1)
        assert probs[:, 0].tolist() == pytest.approx([1 - p] * a)
        torch.testing.assert_close(probs[:, 1:], torch.full((a, 7), p / k_fg))
    for conv in (*model.arm.loc, *model.odm.loc):
        assert torch.equal(conv.bias.detach(), torch.zeros(4 * a))
    # and on the first training batch the features barely move it (prediction weights are
    # N(0, 0.01^2)); train mode: the BatchNorms, InputNorm included, use the batch statistics
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.train()(torch.rand(2, 3, 128, 128) * 255)
    assert out.arm_conf.softmax(-1)[..., 1].mean().item() == pytest.approx(p, rel=0.1)
    assert out.odm_conf.softmax(-1)[..., 0].mean().item() == pytest.approx(1 - p, abs=0.02)
    # far from negative anchor filtering's 0.99: a fresh network filters nothing
    assert not filtered_anchors(out.arm_conf).any()
    # any prior can be asked for: RetinaNet's 0.01
    model.init_bias(0.01)
    bias = model.arm.conf[0].bias.detach().view(a, 2)
    assert bias.softmax(-1)[:, 1].tolist() == pytest.approx([0.01] * a)


def test_fused_nano_equals_unfused_in_eval():
    torch.manual_seed(0)
    model = refinedet_lite_nano()
    randomise_batch_norms(model, seed=1)
    model.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        reference = model(x)
    # every ConvBNAct by its fuse(), the InputNorm by its ChannelAffine
    fused = refinedet_lite_nano()
    fused.load_state_dict(model.state_dict())
    for parent in list(fused.modules()):
        for name, child in parent.named_children():
            if isinstance(child, (ConvBNAct, InputNorm)):
                setattr(parent, name, child.fuse())
    fused.eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        out = fused(x)
        out_deploy = fuse(model)(x)  # the package's deployment transform does the same
    for a, b, c in zip(out, reference, out_deploy):
        scale = b.abs().max()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * scale)
        torch.testing.assert_close(c, b, rtol=1e-4, atol=1e-4 * scale)


def test_config_rejects_unknown_or_unordered_sources():
    with torch.device("meta"):
        with pytest.raises(ValueError, match="unknown sources"):
            RefineDetLite(RefineDetLiteConfig(sources=("stage2", "stage3", "extra1", "extra3")))
        with pytest.raises(ValueError, match="finest first"):
            RefineDetLite(RefineDetLiteConfig(sources=("stage3", "stage2", "extra1", "extra2")))
    with pytest.raises(ValueError, match="min sizes"):
        RefineDetLiteConfig(sources=("stage2", "stage3"))
    with pytest.raises(ValueError, match="background"):
        RefineDetLiteConfig(num_classes=1)
