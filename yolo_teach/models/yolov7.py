"""YOLOv7 (Wang, Bochkovskiy, Liao 2022, "YOLOv7: Trainable bag-of-freebies sets new
state-of-the-art for real-time object detectors"; seed 003), as the official training configs
WongKinYiu/yolov7 ``cfg/training/yolov7-tiny.yaml``, ``yolov7.yaml`` and ``yolov7x.yaml``.

YOLOv7 keeps YOLOv5's plan (a backbone, SPP, a PAN neck, three anchor scales) and changes the
blocks: ELAN computational blocks with 1x1 transitions (:mod:`yolo_teach.layers.elan`, §3.1),
MP downsampling (max-pool and stride-2 conv branches), SPPCSPC, RepConv before the head
(:mod:`yolo_teach.layers.rep`, §4.1) and the IDetect head with implicit knowledge
(:mod:`yolo_teach.layers.implicit`). yolov7x is yolov7 after compound scaling (§3.2: depth of
the computational blocks x1.5, width of the transitions x1.25;
:func:`~yolo_teach.layers.elan.compound_scale`).

Flow (``yolov7()``, 640 px)::

    image (B, 3, 640, 640)
      -> stem: 3x3 convs 32, 64/2, 64, 128/2                            (B, 128, 160, 160)
      -> ELAN (B, 256, 160, 160); [MP, ELAN] x 3: c3 (B, 512, 80, 80), c4 (B, 1024, 40, 40),
         (B, 1024, 20, 20) -> SPPCSPC -> c5 (B, 512, 20, 20)
      -> neck: top-down ELANs to p4 (B, 256, 40, 40) and p3 (B, 128, 80, 80), bottom-up
         [MP, concat, ELAN] to n4 (B, 256, 40, 40) and n5 (B, 512, 20, 20)
      -> RepConv 3x3 doubling each width -> IDetect -> 3 maps (B, A*(5+K), H/s, W/s)

yolov7-tiny has the same plan with a 2-conv stride-4 stem, plain max-pools between its ELANs,
3x3 stride-2 convs in the bottom-up path, SPPCSPC without its 3x3 convs, plain 3x3 convs before
IDetect and leaky ReLU (0.1). Output order: strides 8, 16, 32; raw maps, anchor-major channels
``[tx, ty, tw, th, to, classes * K]``, as YOLOv5; the loss is the ``"neighbours"`` rule.

``yolov7-tiny-nano-aux`` adds §4.2's auxiliary head (:class:`AuxiliaryHead`, training only)
trained with coarse-to-fine lead-guided assignment (:mod:`yolo_teach.losses.lead_guided`); the
rule ``"ota"`` is the official loss of the models without one. Not built here: the P6 models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from yolo_teach.deploy import fuse_blocks
from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, set_batch_norm
from yolo_teach.layers.elan import MP, SPPCSPC, ELANSize, SPPCSPCTiny
from yolo_teach.layers.heads import YOLOV7_CLASS_OFFSET, Detect
from yolo_teach.layers.implicit import IDetect
from yolo_teach.layers.rep import RepConv
from yolo_teach.losses.lead_guided import TOPK_LEAD_ONLY
from yolo_teach.losses.recipes import darknet_rules
from yolo_teach.losses.yolov7_loss import lead_aux_recipe
from yolo_teach.registry import AnchorSet

STRIDES = (8, 16, 32)  # output order (P3, P4, P5)
INPUT_SIZE = 640
# yolov7-tiny.yaml: YOLOv5's P5 anchors (w, h) in pixels at 640, P3/8 first.
ANCHORS = AnchorSet(
    sizes=((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
           (373, 326)),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)  # fmt: skip
# yolov7.yaml and yolov7x.yaml: the anchors of yolov4.cfg (chosen at 512/608 px), used at 640.
ANCHORS_V7 = AnchorSet(
    sizes=((12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110), (192, 243),
           (459, 401)),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)  # fmt: skip


@dataclass(frozen=True)
class YOLOv7Config:
    """Sizes of a YOLOv7 network; the defaults are yolov7.yaml (80 classes).

    ``backbone`` sizes the ELANs at strides 4, 8, 16, 32; ``neck`` the top-down ELANs at
    strides 16 and 8, then the bottom-up ones at 16 and 32. Every other width follows from them
    as in the yaml files: MP halves the width of each branch in the backbone and keeps it in the
    neck, the lateral 1x1 convs halve the map they reduce, the head convs double the neck's.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    tiny: bool = False  # yolov7-tiny's variants of the stem, downsampling, SPP and head convs
    stem_channels: tuple[int, ...] = (32, 64, 64, 128)
    stem_strides: tuple[int, ...] = (1, 2, 1, 2)
    backbone: tuple[ELANSize, ...] = (ELANSize(64, 4, 256, concat_every=2),
                                      ELANSize(128, 4, 512, concat_every=2),
                                      ELANSize(256, 4, 1024, concat_every=2),
                                      ELANSize(256, 4, 1024, concat_every=2))
    spp_channels: int = 512
    spp_kernel_sizes: tuple[int, ...] = (5, 9, 13)
    neck: tuple[ELANSize, ...] = (ELANSize(256, 4, 256, 128), ELANSize(128, 4, 128, 64),
                                  ELANSize(256, 4, 256, 128), ELANSize(512, 4, 512, 256))
    rep_conv: bool = True  # RepConv (yolov7) or a plain 3x3 conv (tiny, yolov7x) before IDetect
    activation: type[nn.Module] = nn.SiLU
    aux_head: bool = False  # §4.2: an auxiliary head on the top-down maps, for training only


class YOLOv7Backbone(nn.Module):
    """A stem of 3x3 convs, then an ELAN per stride 4, 8, 16, 32, with MP blocks (tiny: 2x2
    max-pools) between them.

    Shapes:
        (B, 3, H, W) -> c3 (B, C3, H/8, W/8), c4 (B, C4, H/16, W/16), c5 (B, C5, H/32, W/32)
    """

    def __init__(self, cfg: YOLOv7Config):
        super().__init__()
        act, widths = cfg.activation, (3, *cfg.stem_channels)
        self.stem = nn.Sequential(*(ConvBNAct(c_in, c_out, 3, s, act)
                                    for c_in, c_out, s in zip(widths, widths[1:],
                                                              cfg.stem_strides)))
        c = widths[-1]
        stages = []
        for k, size in enumerate(cfg.backbone):
            down = [] if k == 0 else [nn.MaxPool2d(2, 2) if cfg.tiny else MP(c, c // 2, act)]
            stages.append(nn.Sequential(*down, size.build(c, act)))  # MP keeps the width c
            c = size.out_channels
        self.stage2, self.stage3, self.stage4, self.stage5 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stage2(self.stem(x))  # (B, C2, H/4, W/4)
        c3 = self.stage3(x)  # (B, C3, H/8, W/8)
        c4 = self.stage4(c3)  # (B, C4, H/16, W/16)
        return c3, c4, self.stage5(c4)  # c5: (B, C5, H/32, W/32)


class YOLOv7Neck(nn.Module):
    """The PAN of YOLOv7 with ELAN blocks: top-down (1x1 reduce, upsample, concat with a 1x1
    lateral of the backbone map, ELAN), then bottom-up (downsample to twice the width, concat
    with the top-down map, ELAN).

    Shapes:
        c3 (B, C3, H/8, W/8), c4 (B, C4, H/16, W/16), c5 (B, C5, H/32, W/32) ->
        [p3 (B, P3, H/8, W/8), n4 (B, N4, H/16, W/16), n5 (B, N5, H/32, W/32)] for the lead
        head, and the top-down maps [p3, p4 (B, P4, H/16, W/16)] for an auxiliary head
    """

    def __init__(self, in_channels: tuple[int, int, int], sizes: tuple[ELANSize, ...],
                 downsample: Callable[[int], nn.Module], act_layer: type[nn.Module]):
        super().__init__()
        c3, c4, c5 = in_channels
        td4, td3, bu4, bu5 = sizes
        act, r5, r4 = act_layer, c5 // 2, td4.out_channels // 2
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce5, self.lateral4 = ConvBNAct(c5, r5, 1, 1, act), ConvBNAct(c4, r5, 1, 1, act)
        self.elan_td4 = td4.build(2 * r5, act)
        self.reduce4, self.lateral3 = ConvBNAct(td4.out_channels, r4, 1, 1, act), \
            ConvBNAct(c3, r4, 1, 1, act)
        self.elan_td3 = td3.build(2 * r4, act)
        self.down3 = downsample(td3.out_channels)  # -> 2 P3 channels at stride 16
        self.elan_bu4 = bu4.build(2 * td3.out_channels + td4.out_channels, act)
        self.down4 = downsample(bu4.out_channels)  # -> 2 N4 channels at stride 32
        self.elan_bu5 = bu5.build(2 * bu4.out_channels + c5, act)

    def forward(self, c3: torch.Tensor, c4: torch.Tensor,
                c5: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = self.up(self.reduce5(c5))  # (B, C5/2, H/16, W/16)
        p4 = self.elan_td4(torch.cat([self.lateral4(c4), x], 1))  # (B, C5 -> P4, H/16, W/16)
        x = self.up(self.reduce4(p4))  # (B, P4/2, H/8, W/8)
        p3 = self.elan_td3(torch.cat([self.lateral3(c3), x], 1))  # (B, P4 -> P3, H/8, W/8)
        n4 = self.elan_bu4(torch.cat([self.down3(p3), p4], 1))  # (B, 2 P3 + P4 -> N4, H/16, W/16)
        n5 = self.elan_bu5(torch.cat([self.down4(n4), c5], 1))  # (B, 2 N4 + C5 -> N5, H/32, W/32)
        return [p3, n4, n5], [p3, p4]


class AuxiliaryHead(nn.Module):
    """YOLOv7 §4.2's auxiliary head (deep supervision): per scale a 3x3 conv doubling the width
    and a 1x1 prediction conv, on maps the lead head sees only through further layers.

    # NOTE(paper): the official P6 models (``IAuxDetect``) read the auxiliary maps from the
    # top-down path of the neck; we do the same for a P5 network: the stride-8 top-down map
    # (which the lead head shares), the stride-16 top-down map and the SPPCSPC output.

    Shapes:
        [(B, C_i, H_i, W_i)] -> [(B, A*(5+K), H_i, W_i)], strides 8, 16, 32
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int,
                 act_layer: type[nn.Module]):
        super().__init__()
        self.convs = nn.ModuleList(ConvBNAct(c, 2 * c, 3, 1, act_layer) for c in in_channels)
        self.head = Detect(tuple(2 * c for c in in_channels), num_anchors, num_classes)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.head([conv(x) for conv, x in zip(self.convs, features)])


class YOLOv7(nn.Module):
    """The YOLOv7 detector: backbone, SPPCSPC, ELAN-PAN neck, 3x3 convs (RepConv), IDetect.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/8, W/8), (B, A*(5+K), H/16, W/16),
        (B, A*(5+K), H/32, W/32)], raw outputs, anchor-major channels. With ``aux_head``, in
        training mode only, the auxiliary head's three maps follow the lead head's (the loss,
        :class:`~yolo_teach.losses.yolov7_loss.LeadAuxLoss`, tells them apart); :meth:`fuse`
        drops the auxiliary head.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv7Config = YOLOv7Config()):
        super().__init__()
        self.cfg = cfg
        act = cfg.activation
        self.backbone = YOLOv7Backbone(cfg)
        c3, c4, c5 = (size.out_channels for size in cfg.backbone[1:])

        def downsample(c: int) -> nn.Module:  # bottom-up: to 2c channels at half the size
            return ConvBNAct(c, 2 * c, 3, 2, act) if cfg.tiny else MP(c, c, act)

        def head_conv(c: int) -> nn.Module:  # 3x3 to 2c channels, the input of IDetect
            return RepConv(c, 2 * c, 1, act) if cfg.rep_conv else ConvBNAct(c, 2 * c, 3, 1, act)

        # yolov7-tiny.yaml: SPP without the 3x3 convs (SPPCSPCTiny); yolov7.yaml: SPPCSPC
        spp = SPPCSPCTiny if cfg.tiny else SPPCSPC
        self.spp = spp(c5, cfg.spp_channels, cfg.spp_kernel_sizes, act)
        self.neck = YOLOv7Neck((c3, c4, cfg.spp_channels), cfg.neck, downsample, act)
        widths = [cfg.neck[i].out_channels for i in (1, 2, 3)]  # p3, n4, n5
        self.head_convs = nn.ModuleList(head_conv(c) for c in widths)
        self.head = IDetect(tuple(2 * c for c in widths), cfg.num_anchors, cfg.num_classes)
        self.aux_head = AuxiliaryHead((cfg.neck[1].out_channels, cfg.neck[0].out_channels,
                                       cfg.spp_channels), cfg.num_anchors, cfg.num_classes,
                                      act) if cfg.aux_head else None
        set_batch_norm(self)  # utils/torch_utils.py initialize_weights: eps 1e-3, momentum 0.03
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(images)  # strides 8, 16, 32
        c5 = self.spp(c5)  # (B, SPP, H/32, W/32)
        features, (p3, p4) = self.neck(c3, c4, c5)  # [p3, n4, n5], top-down maps
        features = [conv(x) for conv, x in zip(self.head_convs, features)]  # widths doubled
        maps = self.head(features)  # [(B, A*(5+K), H/s, W/s) for s in (8, 16, 32)]
        if self.aux_head is not None and self.training:  # §4.2: deep supervision, training only
            maps = maps + self.aux_head([p3, p4, c5])  # 3 more maps, strides 8, 16, 32
        return maps

    def init_bias(self, prior: float | None = None) -> None:
        """YOLOv7's bias initialisation; ``prior`` replaces its per-stride objectness prior."""
        self.head.init_bias(self.strides, prior)
        if self.aux_head is not None:
            self.aux_head.head.init_bias(self.strides, prior, YOLOV7_CLASS_OFFSET)

    def fuse(self) -> YOLOv7:
        """The inference network (:func:`yolo_teach.deploy.fuse`): the auxiliary head dropped
        (§4.2: it exists for training), then every block fused."""
        lead = copy.deepcopy(self).eval()
        lead.aux_head, lead.cfg = None, replace(self.cfg, aux_head=False)
        return fuse_blocks(lead)


# ---- factories: the official training configs (counts: unfused, FLOPs = 2 x conv MACs) ------
TINY_ACT = DarknetLeaky  # nn.LeakyReLU(0.1) in every layer of yolov7-tiny.yaml


def yolov7_tiny(num_classes: int = 80) -> YOLOv7:
    """yolov7-tiny (training cfg): leaky ReLU (6.23 M params, 6.22 M fused; 13.70 GFLOPs)."""
    return YOLOv7(YOLOv7Config(
        num_classes, tiny=True, stem_channels=(32, 64), stem_strides=(2, 2),
        backbone=(ELANSize(32, 2, 64), ELANSize(64, 2, 128), ELANSize(128, 2, 256),
                  ELANSize(256, 2, 512)),
        spp_channels=256,
        neck=(ELANSize(64, 2, 128), ELANSize(32, 2, 64), ELANSize(64, 2, 128),
              ELANSize(128, 2, 256)),
        rep_conv=False, activation=TINY_ACT))


def yolov7(num_classes: int = 80) -> YOLOv7:
    """YOLOv7 (training cfg): SiLU, RepConv (37.62 M params, 36.91 M fused; 104.51 GFLOPs)."""
    return YOLOv7(YOLOv7Config(num_classes))


def yolov7x(num_classes: int = 80) -> YOLOv7:
    """YOLOv7-X (training cfg): yolov7 compound-scaled (71.35 M params, 71.31 M fused; 189.67
    GFLOPs). Its yaml has plain 3x3 convs before IDetect, not RepConv."""
    return YOLOv7(YOLOv7Config(
        num_classes, stem_channels=(40, 80, 80, 160),
        backbone=(ELANSize(64, 6, 320, concat_every=2), ELANSize(128, 6, 640, concat_every=2),
                  ELANSize(256, 6, 1280, concat_every=2), ELANSize(256, 6, 1280, concat_every=2)),
        spp_channels=640,
        # NOTE(paper): compound scaling of yolov7's neck blocks (n = 6, e = 1, h_b = 128) gives
        # the same 1280-wide concatenation; the yaml gets it with 3x3 convs as wide as the stems
        # and every second output concatenated.
        neck=(ELANSize(256, 6, 320, concat_every=2), ELANSize(128, 6, 160, concat_every=2),
              ELANSize(256, 6, 320, concat_every=2), ELANSize(512, 6, 640, concat_every=2)),
        rep_conv=False))


NANO_INPUT_SIZE = 128


def yolov7_tiny_nano(num_classes: int = 80) -> YOLOv7:
    """yolov7-tiny at half its width for a laptop CPU at 128 px, one 3x3 SPP window (1.48 M
    params with 3 classes, 0.13 GFLOPs at 128 px).

    Every width of yolov7-tiny halved (its ELANs already have the fewest convs, two 3x3); the
    depth, the leaky ReLU, the RepConv-free head and IDetect are yolov7-tiny's.
    """
    return YOLOv7(YOLOv7Config(
        num_classes, tiny=True, stem_channels=(16, 32), stem_strides=(2, 2),
        backbone=(ELANSize(16, 2, 32), ELANSize(32, 2, 64), ELANSize(64, 2, 128),
                  ELANSize(128, 2, 256)),
        spp_channels=128,
        # NOTE(paper): yolov7-tiny pools 5, 9 and 13 windows on the 20 x 20 map of 640 px; at
        # 128 px the map is 4 x 4, where those windows return the maximum of the whole map at
        # (nearly) every cell (our YOLOv4 and YOLOv5 nano measurements). One 3 x 3 window keeps
        # a local pool at the map's scale.
        spp_kernel_sizes=(3,),
        neck=(ELANSize(32, 2, 64), ELANSize(16, 2, 32), ELANSize(32, 2, 64),
              ELANSize(64, 2, 128)),
        rep_conv=False, activation=TINY_ACT))


def yolov7_tiny_nano_aux(num_classes: int = 80) -> YOLOv7:
    """The yolov7-tiny nano with an auxiliary head for training (§4.2; dropped by ``fuse``)."""
    return YOLOv7(replace(yolov7_tiny_nano(num_classes).cfg, aux_head=True))


# Registration. The anchor rules of the zoo, plus "ota": YOLOv7's own assignment for a model
# without an auxiliary head (official ComputeLossOTA: YOLOv5's candidates, then OTA on the
# predictions, top-10 dynamic k). The auxiliary-head nano has the three assignments of Table 6.
# NOTE(paper): "neighbours" stays the default of the models without an auxiliary head (it is the
# rule every other anchor model of the zoo is compared with); pass assign="ota" for YOLOv7's.
RULES = {**darknet_rules(), "ota": lead_aux_recipe("lead", topk=TOPK_LEAD_ONLY)}
AUX_RULES = {
    "coarse-to-fine": lead_aux_recipe("lead"),  # Fig. 5e, the paper's
    "lead-guided": lead_aux_recipe("lead_fine"),  # Fig. 5d
    "independent": lead_aux_recipe("independent"),  # Fig. 5c
}
register_anchor_models(
    [("yolov7-tiny", yolov7_tiny, INPUT_SIZE),
     ("yolov7-tiny-nano", yolov7_tiny_nano, NANO_INPUT_SIZE)],
    ANCHORS, RULES, default_rule="neighbours",
)
register_anchor_models([("yolov7-tiny-nano-aux", yolov7_tiny_nano_aux, NANO_INPUT_SIZE)],
                       ANCHORS, AUX_RULES, default_rule="coarse-to-fine")
register_anchor_models(
    [("yolov7", yolov7, INPUT_SIZE), ("yolov7x", yolov7x, INPUT_SIZE)],
    ANCHORS_V7, RULES, default_rule="neighbours",
)
