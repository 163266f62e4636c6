"""YOLOv7's blocks: RepConv / RepConvN collapse, implicit knowledge and IDetect folding, ELAN
against the yaml's layer-by-layer wiring, E-ELAN against g separate ELANs, MP, SPPCSPC, and
compound scaling (§3.2)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.elan import (
    EELAN,
    ELAN,
    MP,
    SPPCSPC,
    ELANSize,
    SPPCSPCTiny,
    compound_scale,
)
from yolo_teach.layers.implicit import IDetect, ImplicitA, ImplicitM, PlainDetect
from yolo_teach.layers.rep import (
    RepConv,
    RepConvN,
    fold_branch,
    identity_conv,
    pad_1x1_to_3x3,
)
from yolo_teach.models.summary import count_parameters
from yolo_teach.protocols import Fusable


def randomise_batch_norm(module: nn.Module) -> None:
    """Non-trivial BN statistics and affine terms, or folding would be tested on an identity."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.normal_(1, 0.3)
            bn.bias.data.normal_(0, 0.3)


# ---- RepConv ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("block", "has_identity"), [
    (lambda: RepConv(8, 8), True),  # same shapes: 3 branches
    (lambda: RepConv(8, 12), False),  # widths differ: no identity
    (lambda: RepConv(8, 8, stride=2), False),  # stride 2: no identity
    (lambda: RepConv(8, 8, groups=2), True),
    (lambda: RepConvN(8, 8), False),  # planned re-parameterisation: never an identity
])
def test_rep_conv_fuses_to_one_3x3_conv_equal_in_eval(block, has_identity):
    torch.manual_seed(0)
    rep = block()
    assert (rep.identity is not None) == has_identity and isinstance(rep, Fusable)
    randomise_batch_norm(rep)
    rep.eval()
    x = torch.randn(2, 8, 9, 9)
    fused = rep.fuse()
    torch.testing.assert_close(fused(x), rep(x), rtol=1e-5, atol=1e-5)
    assert fused.conv.kernel_size == (3, 3) and fused.conv.bias is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    # fused: one 3x3 kernel + bias; unfused: 3x3 + 1x1 kernels, 2 C_out (BN) each, 2 C_in (id)
    c_in, c_out, g = 8, rep.conv3x3.conv.out_channels, rep.groups
    assert count_parameters(fused) == 9 * c_in // g * c_out + c_out
    assert count_parameters(rep) == 10 * c_in // g * c_out + 4 * c_out + 2 * c_in * has_identity


def test_collapse_steps_one_by_one():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 6)
    # a 1x1 kernel padded to 3x3 computes the same map (padding 0 vs 1), also at stride 2
    k1 = torch.randn(5, 4, 1, 1)
    for s in (1, 2):
        torch.testing.assert_close(F.conv2d(x, pad_1x1_to_3x3(k1), stride=s, padding=1),
                                   F.conv2d(x, k1, stride=s))
    # the identity as a 3x3 kernel, also inside groups (channel i -> i mod C/g of its group)
    for groups in (1, 2, 4):
        torch.testing.assert_close(identity_conv(4, groups)(x), x)
    # fold_branch: the branch bn(conv(x)) as one kernel and bias
    branch = ConvBNAct(4, 5, 3, act_layer=None)
    randomise_batch_norm(branch)
    branch.eval()
    kernel, bias = fold_branch(branch.conv, branch.bn)
    torch.testing.assert_close(F.conv2d(x, kernel, bias, padding=1), branch(x))
    # step 3: the fused kernel is the sum of the three
    rep = RepConv(4, 4).eval()
    randomise_batch_norm(rep)
    kernel, bias = rep.fused_kernel()
    k3, b3 = fold_branch(rep.conv3x3.conv, rep.conv3x3.bn)
    k1, b1 = fold_branch(rep.conv1x1.conv, rep.conv1x1.bn)
    k0, b0 = fold_branch(identity_conv(4), rep.identity)
    torch.testing.assert_close(kernel, k3 + pad_1x1_to_3x3(k1) + k0)
    torch.testing.assert_close(bias, b3 + b1 + b0)


def test_rep_conv_fuse_leaves_the_block_untouched():
    rep = RepConv(4, 4).train()
    before = {k: v.clone() for k, v in rep.state_dict().items()}
    rep.eval().fuse()
    assert all(torch.equal(before[k], v) for k, v in rep.state_dict().items())


# ---- implicit knowledge and IDetect -------------------------------------------------------------
def test_implicit_initialisation_and_operation():
    torch.manual_seed(0)
    a, m = ImplicitA(20_000), ImplicitM(20_000)
    assert abs(a.implicit.mean().item()) < 1e-3 and a.implicit.std().item() == pytest.approx(
        0.02, rel=0.05)
    assert m.implicit.mean().item() == pytest.approx(1.0, abs=1e-3)
    assert m.implicit.std().item() == pytest.approx(0.02, rel=0.05)
    x = torch.randn(2, 3, 4, 4)
    a3, m3 = ImplicitA(3), ImplicitM(3)
    torch.testing.assert_close(a3(x), x + a3.implicit.view(1, 3, 1, 1))
    torch.testing.assert_close(m3(x), x * m3.implicit.view(1, 3, 1, 1))


def test_idetect_fuse_folds_implicit_knowledge_into_the_convolutions():
    torch.manual_seed(0)
    head = IDetect((8, 16), num_anchors=3, num_classes=2)
    head.init_bias((8, 16))
    with torch.no_grad():  # bigger implicit vectors than the init, so the fold is visible
        for p in [*head.ia.parameters(), *head.im.parameters()]:
            p.add_(torch.randn_like(p) * 0.5)
    features = [torch.randn(2, 8, 6, 6), torch.randn(2, 16, 3, 3)]
    fused = head.fuse()
    assert isinstance(fused, PlainDetect) and isinstance(head, Fusable)
    for y, y_fused in zip(head.eval()(features), fused(features)):
        torch.testing.assert_close(y_fused, y, rtol=1e-5, atol=1e-5)
    # a (C_i per scale) and m (A (5+K) per scale) are gone; the convolutions keep their names
    implicit = (8 + 16) + 2 * 3 * (5 + 2)
    assert count_parameters(fused) == count_parameters(head) - implicit
    assert set(fused.state_dict()) == {k for k in head.state_dict() if k.startswith("m.")}


def test_idetect_bias_initialisation_as_yolov7():
    head = IDetect((8, 8, 8), num_anchors=3, num_classes=4)
    head.init_bias((8, 16, 32))
    for conv, s in zip(head.m, (8, 16, 32)):
        bias = conv.bias.view(3, 9)  # (A, 5+K)
        # 8 objects per 640 px image over (640/s)^2 cells; classes log(0.6 / (K - 0.99))
        torch.testing.assert_close(bias[:, 4].sigmoid(), torch.full((3,), 8 / (640 / s) ** 2))
        # log(0.6 / (4 - 0.99)) = log(0.19934) = -1.61276
        torch.testing.assert_close(bias[:, 5:], torch.full((3, 4), -1.61276), atol=1e-4, rtol=0)
    head.init_bias((8, 16, 32), prior=0.01)
    torch.testing.assert_close(head.m[2].bias.view(3, 9)[:, 4].sigmoid(), torch.full((3,), 0.01))


# ---- ELAN and E-ELAN -------------------------------------------------------------------------
def run_yaml_layers(elan: ELAN, x: torch.Tensor, concat_from: list[int]) -> torch.Tensor:
    """An independent reading of the yaml: every layer appends ``module(ys[from])`` to the list
    of outputs, ``Concat`` picks relative indices of that list, then the transition conv."""
    ys = [x]
    layers = [(-1, elan.shortcut_conv), (-2, elan.stem_conv)] + [(-1, b) for b in elan.blocks]
    for src, module in layers:
        ys.append(module(ys[src]))
    return elan.transition(torch.cat([ys[i] for i in concat_from], dim=1))


@pytest.mark.parametrize(("elan", "concat_from"), [
    (ELAN(16, 32, 8, depth=2), [-1, -2, -3, -4]),  # yolov7-tiny
    (ELAN(16, 32, 8, depth=4, concat_every=2), [-1, -3, -5, -6]),  # yolov7 backbone
    (ELAN(16, 8, 8, depth=4, block_channels=4), [-1, -2, -3, -4, -5, -6]),  # yolov7 neck
    (ELAN(16, 32, 8, depth=6, concat_every=2), [-1, -3, -5, -7, -8]),  # yolov7x
])
def test_elan_is_the_yaml_wiring(elan, concat_from):
    torch.manual_seed(0)
    randomise_batch_norm(elan)
    elan.eval()
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(elan(x), run_yaml_layers(elan, x, concat_from))


def test_elan_size_matches_the_block():
    size = ELANSize(128, 4, 512, concat_every=2)  # yolov7 backbone at stride 8
    assert size.concat_channels == 2 * 128 + 2 * 128 == 512
    block = size.build(256, nn.SiLU)
    assert block.transition.conv.in_channels == 512 and block.transition.conv.out_channels == 512
    assert len(block.blocks) == 4
    neck = ELANSize(256, 4, 256, 128)  # yolov7 neck at stride 16: 2 x 256 + 4 x 128
    assert neck.concat_channels == 1024 == neck.build(512, nn.SiLU).transition.conv.in_channels


def copy_slice(dst: ConvBNAct, src: ConvBNAct, k: int) -> None:
    """Copy the k-th block of output channels of ``src`` (conv weight and BN) into ``dst``."""
    c = dst.conv.out_channels
    rows = slice(k * c, (k + 1) * c)
    with torch.no_grad():
        dst.conv.weight.copy_(src.conv.weight[rows])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst.bn, name).copy_(getattr(src.bn, name)[rows])


@pytest.mark.parametrize("cardinality", [2, 3])
def test_eelan_equals_the_sum_of_g_elans(cardinality):
    # yolov7-e6e.yaml: two ELANs on the same input, transitions added (Shortcut): g = 2
    torch.manual_seed(0)
    e = EELAN(6, 10, 4, depth=4, block_channels=2, concat_every=2, cardinality=cardinality)
    randomise_batch_norm(e)
    e.eval()
    elans = [ELAN(6, 10, 4, depth=4, block_channels=2, concat_every=2).eval()
             for _ in range(cardinality)]
    for k, elan in enumerate(elans):
        copy_slice(elan.shortcut_conv, e.shortcut_conv, k)
        copy_slice(elan.stem_conv, e.stem_conv, k)
        for dst, src in zip(elan.blocks, e.blocks):
            copy_slice(dst, src, k)
        copy_slice(elan.transition, e.transition, k)
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(e(x), sum(elan(x) for elan in elans), rtol=1e-5, atol=1e-5)
    assert count_parameters(e) == cardinality * count_parameters(elans[0])
    assert e.blocks[0].conv.groups == cardinality == e.transition.conv.groups


# ---- MP, SPPCSPC -------------------------------------------------------------------------------
def test_mp_concatenates_the_strided_conv_then_the_pool():
    torch.manual_seed(0)
    mp = MP(8, 4).eval()
    x = torch.randn(2, 8, 16, 16)
    y = mp(x)
    assert y.shape == (2, 8, 8, 8)
    torch.testing.assert_close(y[:, :4], mp.conv2(mp.conv1(x)))
    torch.testing.assert_close(y[:, 4:], mp.pool_conv(F.max_pool2d(x, 2)))


def test_sppcspc_counts_and_shapes():
    # yolov7's SPPCSPC(1024, 512): 1x1 convs 1024->512 (cv1, cv2), 512->512 (cv4), 2048->512
    # (cv5), 1024->512 (cv7); 3x3 convs 512->512 (cv3, cv6); BN 2 x 512 for each of the 7
    c = 512
    weights = 2 * 1024 * c + c * c + 4 * c * c + 2 * c * c + 2 * 9 * c * c
    assert count_parameters(SPPCSPC(1024, 512)) == weights + 7 * 2 * c
    # yolov7-tiny's: 512->256 twice, 1024->256, 512->256, 4 BNs
    assert count_parameters(SPPCSPCTiny(512, 256)) == (2 * 512 + 1024 + 512) * 256 + 4 * 2 * 256
    x = torch.randn(1, 16, 8, 8)
    assert SPPCSPC(16, 8)(x).shape == SPPCSPCTiny(16, 8)(x).shape == (1, 8, 8, 8)
    assert SPPCSPCTiny(16, 8, kernel_sizes=(3,)).cv5.conv.in_channels == 2 * 8


# ---- compound scaling (§3.2) -----------------------------------------------------------------
def test_compound_scaling_takes_yolov7_to_yolov7x():
    # depth x1.5 (4 -> 6 convs): the concatenation grows from 2h + 2h to 2h + 3h, x1.25,
    # and the transition (256 -> 320) with it (Table 3: depth 1.5, width 1.25)
    v7 = ELANSize(64, 4, 256, concat_every=2)
    v7x, width = compound_scale(v7, 1.5)
    assert width == 1.25
    assert v7x == ELANSize(64, 6, 320, concat_every=2)  # yolov7x.yaml layers 4-13
    assert [compound_scale(ELANSize(h, 4, c, concat_every=2), 1.5)[0].out_channels
            for h, c in ((128, 512), (256, 1024))] == [640, 1280]
    # the neck: yolov7's (h = 256, h_b = 128, e = 1) scaled to 6 convs concatenates
    # 512 + 6 x 128 = 1280, as yolov7x's (h_b = 256, e = 2): 512 + 3 x 256
    scaled, width = compound_scale(ELANSize(256, 4, 256, 128), 1.5)
    assert width == 1.25 and scaled.out_channels == 320
    assert scaled.concat_channels == ELANSize(256, 6, 320, concat_every=2).concat_channels == 1280
