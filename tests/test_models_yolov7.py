"""Fidelity and smoke tests for YOLOv7 (tiny, yolov7, yolov7x) and its 128 px CPU nano.

Full-size networks are built, measured and fused on the meta device; the nano runs on real
tensors (fused equals eval) and trains two steps at 128 px.
"""

import math

import pytest
import torch
from torch import nn

from yolo_teach.deploy import fuse
from yolo_teach.detectors import build_detector
from yolo_teach.experiment import make_experiment
from yolo_teach.layers.conv import DarknetLeaky
from yolo_teach.layers.elan import ELAN, MP, SPPCSPC, SPPCSPCTiny, compound_scale
from yolo_teach.layers.implicit import IDetect, PlainDetect
from yolo_teach.layers.rep import RepConv
from yolo_teach.losses.assign import NeighbourCellAssigner
from yolo_teach.losses.yolov7_loss import LeadAuxLoss
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolov7 import (
    STRIDES,
    YOLOv7,
    YOLOv7Config,
    yolov7,
    yolov7_tiny,
    yolov7_tiny_nano,
    yolov7_tiny_nano_aux,
    yolov7x,
)
from yolo_teach.registry import get_spec

# factory, params, fused params, GFLOPs (2 x MACs of conv, unfused), counted from the official
# training configs WongKinYiu/yolov7 cfg/training/*.yaml @a207844b at 640 px with 80 classes
# (shared/reference/architectures.md). "Fused" there is the official Model.fuse(): Conv+BN and
# RepConv folded, IDetect's implicit vectors folded into the convs but kept as (now unused)
# parameters: 896 / 2,557 / 3,005 of them. Our fuse() drops them, which gives the deploy
# configs' fused counts (6,219,709 / 36,905,341 / 71,311,741).
OFFICIAL = [
    (yolov7_tiny, 6_228_762, 6_221_370, 1_661, 13.70),
    (yolov7, 37_622_682, 36_907_898, 2_557, 104.51),
    (yolov7x, 71_347_394, 71_314_746, 3_005, 189.67),
]
OUTPUT_SHAPES = [(2, 255, 80, 80), (2, 255, 40, 40), (2, 255, 20, 20)]


def meta_model(factory, **kwargs):
    with torch.device("meta"):
        return factory(**kwargs)


@pytest.mark.parametrize(("factory", "params", "fused", "implicit", "gflops"), OFFICIAL)
def test_every_size_matches_the_official_network(factory, params, fused, implicit, gflops):
    model = meta_model(factory)
    assert count_parameters(model) == params
    # implicit vectors: ImplicitA on the head inputs (sum of their widths), ImplicitM on the
    # 3 x 255 outputs
    assert count_parameters(model.head) - sum(count_parameters(c) for c in model.head.m) == \
        implicit
    deployed = fuse(model)  # on meta: shapes only, no weights read
    assert count_parameters(deployed) + implicit == fused
    # yolov7's FLOPs are counted on the re-parameterised model (RepConv -> one 3x3 conv), as
    # the paper's 104.7 G; the three 1x1 branches add 2 x (128 x 256 x 80^2 + 256 x 512 x 40^2
    # + 512 x 1024 x 20^2) = 1.258 GFLOPs during training. tiny and x have no RepConv.
    rep_1x1 = sum(2 * m.conv1x1.conv.in_channels * m.conv1x1.conv.out_channels * (640 // s) ** 2
                  for m, s in zip(model.head_convs, STRIDES) if isinstance(m, RepConv))
    assert count_flops(deployed, 640) / 1e9 == pytest.approx(gflops, rel=1e-3)
    assert count_flops(model, 640) == count_flops(deployed, 640) + rep_1x1
    outputs = model(torch.empty(2, 3, 640, 640, device="meta"))
    assert [tuple(o.shape) for o in outputs] == OUTPUT_SHAPES


def test_blocks_as_the_training_configs():
    tiny, v7, v7x = meta_model(yolov7_tiny), meta_model(yolov7), meta_model(yolov7x)
    # RepConv before IDetect in yolov7.yaml only (yolov7x.yaml: plain Conv 3x3), no identity:
    # widths double (128 -> 256 ...)
    assert [type(m) for m in v7.head_convs] == [RepConv] * 3
    assert all(m.identity is None for m in v7.head_convs)
    assert not any(isinstance(m, RepConv) for m in [*tiny.modules(), *v7x.modules()])
    assert [(m.conv.in_channels, m.conv.out_channels) for m in v7x.head_convs] == \
        [(160, 320), (320, 640), (640, 1280)]
    assert [c.in_channels for c in tiny.head.m] == [128, 256, 512]
    # ELAN counts: 4 backbone + 4 neck; MP: 3 backbone + 2 neck in v7/v7x, none in tiny
    for model in (tiny, v7, v7x):
        assert sum(isinstance(m, ELAN) for m in model.modules()) == 8
        assert isinstance(model.head, IDetect)
    assert sum(isinstance(m, MP) for m in v7.modules()) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in tiny.backbone.modules()) == 3
    assert isinstance(tiny.spp, SPPCSPCTiny) and isinstance(v7x.spp, SPPCSPC)
    assert [len(e.blocks) for e in v7x.modules() if isinstance(e, ELAN)] == [6] * 8
    # activations: leaky 0.1 everywhere in tiny, SiLU in v7 / v7x
    assert {type(m) for m in tiny.modules() if isinstance(m, (nn.SiLU, nn.LeakyReLU))} == \
        {DarknetLeaky}
    assert {type(m) for m in v7.modules() if isinstance(m, (nn.SiLU, nn.LeakyReLU))} == {nn.SiLU}
    assert all(bn.eps == 1e-3 and bn.momentum == 0.03
               for bn in v7.modules() if isinstance(bn, nn.BatchNorm2d))


def test_yolov7x_is_yolov7_compound_scaled():
    v7, v7x = YOLOv7Config(), meta_model(yolov7x).cfg
    # computational blocks: depth x1.5; their transitions (and every transition layer) x1.25
    for small, big in zip(v7.backbone, v7x.backbone):
        scaled, width = compound_scale(small, 1.5)
        assert scaled == big and width == 1.25
    assert [c * 5 // 4 for c in v7.stem_channels] == list(v7x.stem_channels)
    assert v7.spp_channels * 5 // 4 == v7x.spp_channels
    for small, big in zip(v7.neck, v7x.neck):
        scaled, width = compound_scale(small, 1.5)
        assert width == 1.25 and scaled.out_channels == big.out_channels
        assert scaled.concat_channels == big.concat_channels


def test_bias_initialisation_as_yolov7():
    model = yolov7_tiny_nano(num_classes=3)
    for conv, s in zip(model.head.m, STRIDES):
        bias = conv.bias.view(3, 5 + 3)  # (A, 5+K)
        # 8 objects per 640 px image over its (640/s)^2 cells; classes 0.6 / (K - 0.99)
        torch.testing.assert_close(torch.sigmoid(bias[:, 4]), torch.full((3,), 8 / (640 / s) ** 2))
        assert torch.allclose(bias[:, 5:], torch.tensor(math.log(0.6 / (3 - 0.99))))


# ---- the 128 px nano -------------------------------------------------------------------------
def test_nano_is_half_of_tiny_with_a_local_spp_window():
    nano, tiny = yolov7_tiny_nano(3), meta_model(yolov7_tiny, num_classes=3)
    assert nano.spp.spp.kernel_sizes == (3,) and tiny.spp.spp.kernel_sizes == (5, 9, 13)
    assert [c.in_channels for c in nano.head.m] == [c.in_channels // 2 for c in tiny.head.m]
    # about a quarter of the weights (widths halved), measured: 1,481,952 params with K = 3
    assert count_parameters(nano) == 1_481_952
    assert count_flops(nano, 128) / 1e9 == pytest.approx(0.1318, rel=1e-3)
    with torch.no_grad():
        outputs = nano.eval()(torch.rand(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(2, 24, 16, 16), (2, 24, 8, 8), (2, 24, 4, 4)]


def test_fused_nano_equals_the_model_in_eval_mode():
    torch.manual_seed(0)
    model = yolov7_tiny_nano(3)
    for bn in model.modules():  # trained-looking statistics
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.normal_(1, 0.2)
            bn.bias.data.normal_(0, 0.2)
    model.eval()
    deployed = fuse(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, IDetect)) for m in deployed.modules())
    assert isinstance(deployed.head, PlainDetect)
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        for y, y_fused in zip(model(images), deployed(images)):
            assert (y_fused - y).abs().max() <= 1e-4 * y.abs().max()


def test_fused_yolov7_re_parameterises_every_rep_conv():
    deployed = fuse(meta_model(yolov7))
    assert not any(isinstance(m, (RepConv, nn.BatchNorm2d, IDetect)) for m in deployed.modules())
    assert [m.conv.kernel_size for m in deployed.head_convs] == [(3, 3)] * 3


def test_registered_names_anchors_and_rule():
    for name, size in [("yolov7-tiny", 640), ("yolov7", 640), ("yolov7x", 640),
                       ("yolov7-tiny-nano", 128)]:
        spec = get_spec(name)
        assert spec.img_size == size and spec.default_rule == "neighbours"
    # yolov7-tiny.yaml: YOLOv5's P5 anchors; yolov7.yaml / yolov7x.yaml: yolov4.cfg's
    assert get_spec("yolov7-tiny-nano").anchors is get_spec("yolov7-tiny").anchors
    assert get_spec("yolov7-tiny").anchors.sizes == get_spec("yolov5s").anchors.sizes
    assert get_spec("yolov7").anchors.sizes[:3] == ((12, 16), (19, 36), (40, 28))
    det = build_detector("yolov7-tiny-nano", 3, 128)
    assert isinstance(det.criterion.assigner, NeighbourCellAssigner)
    # 10 x 13 px at 640 -> 2 x 2.6 at 128
    torch.testing.assert_close(det.anchors[0][0], torch.tensor([2.0, 2.6]))


def test_nano_trains_two_steps_at_128px(tmp_path):
    exp = make_experiment("yolov7-tiny-nano", "shapes", n_train=16, n_val=8, epochs=1,
                          img_size=128, batch_size=8, out_dir=tmp_path, progress=False,
                          augment="none", val_every=0)
    assert isinstance(exp.detector.model, YOLOv7) and exp.detector.rule == "neighbours"
    history = exp.trainer.fit()
    assert history[-1]["iteration"] == 2
    assert math.isfinite(history[-1]["train_loss"])


# ------------------------------------------------------------ the auxiliary head (§4.2)
def test_auxiliary_head_exists_in_training_only_and_fuse_drops_it():
    torch.manual_seed(0)
    model = yolov7_tiny_nano_aux(3)
    lead_only = yolov7_tiny_nano(3)
    images = torch.rand(2, 3, 128, 128)
    train_maps = model(images)  # lead (strides 8, 16, 32), then aux (8, 16, 32)
    assert [tuple(m.shape[-2:]) for m in train_maps] == [(16, 16), (8, 8), (4, 4)] * 2
    assert all(m.shape[1] == 3 * (5 + 3) for m in train_maps)
    model.eval()
    with torch.no_grad():
        eval_maps = model(images)
        assert len(eval_maps) == 3
        deployed = fuse(model)
        assert deployed.aux_head is None and not deployed.cfg.aux_head
        for y, y_fused in zip(eval_maps, deployed(images)):
            assert (y_fused - y).abs().max() <= 1e-4 * y.abs().max()
    # the deployed network is the lead network: the auxiliary head costs nothing at inference
    assert count_parameters(deployed) == count_parameters(fuse(lead_only.eval()))
    assert count_parameters(model) > count_parameters(lead_only)
    assert model.training is False and model.aux_head is not None  # the original is untouched


@pytest.mark.parametrize("rule", ["coarse-to-fine", "lead-guided", "independent"])
def test_auxiliary_nano_trains_with_each_assignment_of_table_6(rule, tmp_path):
    exp = make_experiment("yolov7-tiny-nano-aux", "shapes", assign=rule, n_train=16, n_val=8,
                          epochs=1, img_size=128, batch_size=8, out_dir=tmp_path,
                          progress=False, augment="none", val_every=0)
    assert isinstance(exp.detector.criterion, LeadAuxLoss)
    last = exp.trainer.fit()[-1]
    assert last["iteration"] == 2 and math.isfinite(last["train_loss"])
    assert last["train_aux_box"] > 0  # the auxiliary head learned
    assert math.isfinite(last["map_50"])  # validation ran on the lead maps alone


def test_ota_rule_of_the_models_without_auxiliary_head():
    det = build_detector("yolov7-tiny-nano", 3, 128, assign="ota")
    assert isinstance(det.criterion, LeadAuxLoss) and det.criterion.fine.topk == 10
    assert get_spec("yolov7-tiny-nano-aux").default_rule == "coarse-to-fine"
    assert build_detector("yolov7-tiny-nano-aux", 3, 128).criterion.guide == "lead"
