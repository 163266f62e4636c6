"""YOLOv4: "YOLOv4: Optimal Speed and Accuracy of Object Detection" (Bochkovskiy, Wang & Liao,
arXiv 2020).

YOLOv4 §3.4 keeps YOLOv3's anchor-based head and replaces what feeds it: "Backbone:
CSPDarknet53, Neck: SPP, PAN, Head: YOLOv3". CSPDarknet53 (§3.1, Table 1) is Darknet-53 with
cross-stage-partial stages (:mod:`yolo_teach.layers.csp`) and Mish activations (§3.4, "BoS for
backbone"); an SPP block (:mod:`yolo_teach.layers.spp`) widens the receptive field of the
deepest map (§3.1); and a PAN neck with concatenation instead of addition (§3.3, Fig. 6,
"modified PAN") adds a bottom-up path after YOLOv3's top-down one, so that the fine maps'
localisation reaches the coarse outputs through a few layers instead of the whole backbone.

Flow (``yolov4()``, as Darknet's yolov4.cfg, 416 px)::

    image (B, 3, 416, 416)
      -> CSPDarknet53 (Mish): c3 (B, 256, 52, 52), c4 (B, 512, 26, 26), c5 (B, 1024, 13, 13)
      -> neck (leaky 0.1): 3 convs, SPP(5, 9, 13), 3 convs -> p5 (B, 512, 13, 13)
         top-down:  p4 (B, 256, 26, 26), n3 (B, 128, 52, 52)
         bottom-up: n4 (B, 256, 26, 26), n5 (B, 512, 13, 13)
      -> head: a 3x3 conv and a linear 1x1 conv per scale -> 3 maps (B, A*(5+K), H/s, W/s)

Output order: **strides 8, 16, 32** (finest first), the package's convention and yolov4.cfg's
own order (its first ``[yolo]`` layer, ``mask = 0,1,2``, is the 52x52 map). Channels are
anchor-major, ``[tx, ty, tw, th, to, class scores * K]`` per anchor, raw (no sigmoid).
Shape comments give the channels of the full-size network.

YOLOv4-tiny lives in :mod:`yolo_teach.models.yolov4_tiny`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers.activations import Mish
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky
from yolo_teach.layers.csp import CSPStage
from yolo_teach.layers.darknet import ConvSet, DarknetStage
from yolo_teach.layers.heads import AnchorHead
from yolo_teach.layers.spp import SPP
from yolo_teach.losses.recipes import yolov4_rules
from yolo_teach.nms import batched_diou_nms
from yolo_teach.registry import AnchorSet

# ---- YOLOv4 (yolov4.cfg) -------------------------------------------------------------------
STRIDES = (8, 16, 32)  # output order of YOLOv4.forward
INPUT_SIZE = 608  # yolov4.cfg [net] width = height = 608; the anchors below are pixels at 608
# yolov4.cfg (COCO): 9 k-means anchors (w, h) in pixels at 608, smallest first; mask 0,1,2 is
# the stride-8 map (yolov4.cfg's first [yolo] layer).
ANCHORS = AnchorSet(
    sizes=((12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110), (192, 243),
           (459, 401)),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)  # fmt: skip
# "Eliminate grid sensitivity" (§3.4, BoF for detector): b_x = s * sigmoid(t_x) - (s - 1) / 2
# + c_x, with Darknet's scale_x_y = s per output map (strides 8, 16, 32).
SCALE_X_Y = (1.2, 1.1, 1.05)

# ---- nano models (ours, not in the paper) --------------------------------------------------
NANO_INPUT_SIZE = 128  # the input size yolov4_nano() is sized for


@dataclass(frozen=True)
class YOLOv4Config:
    """Sizes of a YOLOv4 network. The defaults are Darknet's yolov4.cfg (COCO).

    ``channels`` and ``depths`` are CSPDarknet53's five stages (strides 2 to 32), as
    Darknet-53's (1, 2, 8, 8, 4 residual blocks). The neck works at half the backbone width of
    each scale. ``spp_depth`` convs come before and after the SPP pools (3 and 3 in yolov4.cfg)
    and ``neck_depth`` convs make each of the four PAN blocks (5 in yolov4.cfg).
    ``stem_stride`` and ``stage_strides`` place the downsampling: CSPDarknet53 has a stride-1
    stem and five stride-2 stages; the nano model downsamples in the stem and keeps the
    resolution in its second stage (see :func:`yolov4_nano`). The stages 3, 4 and 5 must end at
    strides 8, 16 and 32.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    stem_channels: int = 32
    stem_stride: int = 1
    stage_strides: tuple[int, ...] = (2, 2, 2, 2, 2)
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    depths: tuple[int, ...] = (1, 2, 8, 8, 4)
    spp_kernel_sizes: tuple[int, ...] = (5, 9, 13)
    spp_depth: int = 3
    neck_depth: int = 5
    backbone_act: type[nn.Module] = Mish  # §3.4 BoS for backbone
    cross_stage_partial: bool = True  # False: Darknet-53 stages (an ablation, not the paper)
    neck_act: type[nn.Module] = DarknetLeaky  # yolov4.cfg: leaky 0.1 after the backbone


class CSPDarknet53(nn.Module):
    """CSPDarknet53 without its classifier: a 3x3 stem and five CSP stages (YOLOv4 §3.1).

    The first stage keeps both CSP parts at the full width (64 + 64 channels, see
    :class:`~yolo_teach.layers.csp.CSPStage`); the others split into halves.

    Args:
        stem_channels: width of the stem conv.
        channels: widths of the five stages.
        depths: residual blocks per stage.
        stem_stride: stride of the stem conv (1 in CSPDarknet53).
        stage_strides: stride of each stage's first conv (2 in CSPDarknet53); the outputs
            c3, c4, c5 must be at strides 8, 16 and 32.
        act_layer: activation class (Mish).
        cross_stage_partial: ``False`` builds Darknet-53's residual stages at the same widths
            and depths instead of CSP stages (an ablation: what does the split do?).

    Shapes:
        (B, 3, H, W) -> c3 (B, 256, H/8, W/8), c4 (B, 512, H/16, W/16), c5 (B, 1024, H/32, W/32)
    """

    def __init__(
        self,
        stem_channels: int = 32,
        channels: tuple[int, ...] = (64, 128, 256, 512, 1024),
        depths: tuple[int, ...] = (1, 2, 8, 8, 4),
        stem_stride: int = 1,
        stage_strides: tuple[int, ...] = (2, 2, 2, 2, 2),
        act_layer: type[nn.Module] = Mish,
        cross_stage_partial: bool = True,
    ):
        super().__init__()
        total = [stem_stride * math.prod(stage_strides[: i + 1]) for i in range(5)]
        if total[2:] != [8, 16, 32]:
            raise ValueError(f"stages 3-5 must end at strides 8, 16, 32, got {total[2:]}")
        c, d, s, act = channels, depths, stage_strides, act_layer

        def stage(c_in: int, c_out: int, depth: int, stride: int, hidden: int | None = None):
            if not cross_stage_partial:  # Darknet-53's stage, for ablations
                return DarknetStage(c_in, c_out, depth, stride, act_layer=act)
            return CSPStage(c_in, c_out, depth, hidden, stride, act_layer=act)

        self.stem = ConvBNAct(3, stem_channels, 3, stride=stem_stride, act_layer=act)
        self.stage1 = stage(stem_channels, c[0], d[0], s[0], hidden=c[0])
        self.stage2 = stage(c[0], c[1], d[1], s[1])
        self.stage3 = stage(c[1], c[2], d[2], s[2])
        self.stage4 = stage(c[2], c[3], d[3], s[3])
        self.stage5 = stage(c[3], c[4], d[4], s[4])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, 32, H, W)
        x = self.stage1(x)  # (B, 64, H/2, W/2)
        x = self.stage2(x)  # (B, 128, H/4, W/4)
        c3 = self.stage3(x)  # (B, 256, H/8, W/8)
        c4 = self.stage4(c3)  # (B, 512, H/16, W/16)
        c5 = self.stage5(c4)  # (B, 1024, H/32, W/32)
        return c3, c4, c5


class CSPDarknet53Classifier(nn.Module):
    """The ImageNet classifier CSPDarknet53 (csdarknet53-omega.cfg): backbone, global average
    pool and a 1x1 conv with bias, which on a 1x1 map is a fully connected layer.

    Shapes:
        (B, 3, H, W) -> (B, K) class logits (Darknet applies softmax in the loss)
    """

    def __init__(self, num_classes: int = 1000, act_layer: type[nn.Module] = Mish):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = CSPDarknet53(act_layer=act_layer)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(1024, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, _, c5 = self.backbone(images)  # (B, 1024, H/32, W/32)
        x = self.pool(c5)  # (B, 1024, 1, 1)
        return self.fc(x).flatten(1)  # (B, K)


class YOLOv4Neck(nn.Module):
    """SPP on the deepest map, then PAN: YOLOv3's top-down path and a bottom-up path, every
    merge a concatenation (YOLOv4 §3.3 "replace shortcut connection of PAN to concatenation").

    Following PANet's names, p4 and p3 (here n3) come out of the top-down path and n4, n5 out
    of the bottom-up one. Each merge first brings both inputs to the same width with a 1x1 conv
    (top-down: the lateral conv before upsampling and a 1x1 on the backbone map; bottom-up: a
    stride-2 3x3 conv), then concatenates them ``[backbone or new, upsampled or earlier]`` in
    yolov4.cfg's ``[route]`` order.

    Shapes:
        c3, c4, c5 -> n3 (B, 128, H/8, W/8), n4 (B, 256, H/16, W/16), n5 (B, 512, H/32, W/32)
    """

    def __init__(
        self,
        channels: tuple[int, int, int],
        spp_kernel_sizes: tuple[int, ...] = (5, 9, 13),
        spp_depth: int = 3,
        depth: int = 5,
        act_layer: type[nn.Module] = DarknetLeaky,
    ):
        super().__init__()
        c3, c4, c5 = channels  # backbone widths at strides 8, 16, 32
        h3, h4, h5 = c3 // 2, c4 // 2, c5 // 2  # neck widths
        act = act_layer
        self.pre_spp = ConvSet(c5, h5, spp_depth, act)
        self.spp = SPP(spp_kernel_sizes)
        self.post_spp = ConvSet((len(spp_kernel_sizes) + 1) * h5, h5, spp_depth, act)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # top-down
        self.lateral5 = ConvBNAct(h5, h4, 1, act_layer=act)
        self.reduce4 = ConvBNAct(c4, h4, 1, act_layer=act)
        self.top_down4 = ConvSet(2 * h4, h4, depth, act)
        self.lateral4 = ConvBNAct(h4, h3, 1, act_layer=act)
        self.reduce3 = ConvBNAct(c3, h3, 1, act_layer=act)
        self.top_down3 = ConvSet(2 * h3, h3, depth, act)
        # bottom-up
        self.down3 = ConvBNAct(h3, h4, 3, stride=2, act_layer=act)
        self.bottom_up4 = ConvSet(2 * h4, h4, depth, act)
        self.down4 = ConvBNAct(h4, h5, 3, stride=2, act_layer=act)
        self.bottom_up5 = ConvSet(2 * h5, h5, depth, act)

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
        x = self.spp(self.pre_spp(c5))  # (B, 512 -> 2048, H/32, W/32)
        p5 = self.post_spp(x)  # (B, 512, H/32, W/32)
        # top-down: upsample the coarse map, concatenate with the backbone map
        x = self.upsample(self.lateral5(p5))  # (B, 256, H/16, W/16)
        p4 = self.top_down4(torch.cat([self.reduce4(c4), x], dim=1))  # (B, 512 -> 256, H/16, ...)
        x = self.upsample(self.lateral4(p4))  # (B, 128, H/8, W/8)
        n3 = self.top_down3(torch.cat([self.reduce3(c3), x], dim=1))  # (B, 256 -> 128, H/8, ...)
        # bottom-up: downsample the fine map, concatenate with the top-down map
        x = self.down3(n3)  # (B, 256, H/16, W/16)
        n4 = self.bottom_up4(torch.cat([x, p4], dim=1))  # (B, 512 -> 256, H/16, W/16)
        x = self.down4(n4)  # (B, 512, H/32, W/32)
        n5 = self.bottom_up5(torch.cat([x, p5], dim=1))  # (B, 1024 -> 512, H/32, W/32)
        return [n3, n4, n5]


class YOLOv4(nn.Module):
    """The YOLOv4 detector: CSPDarknet53, SPP + PAN neck, YOLOv3 head (§3.4).

    Args:
        cfg: network sizes; ``YOLOv4Config()`` is yolov4.cfg.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/8, W/8), (B, A*(5+K), H/16, W/16),
        (B, A*(5+K), H/32, W/32)], raw outputs, anchor-major channels.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv4Config = YOLOv4Config()):
        super().__init__()
        self.cfg = cfg
        c3, c4, c5 = cfg.channels[-3:]
        self.backbone = CSPDarknet53(
            cfg.stem_channels,
            cfg.channels,
            cfg.depths,
            cfg.stem_stride,
            cfg.stage_strides,
            cfg.backbone_act,
            cfg.cross_stage_partial,
        )
        self.neck = YOLOv4Neck(
            (c3, c4, c5), cfg.spp_kernel_sizes, cfg.spp_depth, cfg.neck_depth, cfg.neck_act
        )
        self.head = AnchorHead(
            (c3 // 2, c4 // 2, c5 // 2), cfg.num_anchors, cfg.num_classes, cfg.neck_act
        )
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(c3, c4, c5)  # [(B, 128, H/8, W/8), ..., (B, 512, H/32, W/32)]
        # NOTE(paper): yolov4.cfg computes each head right after its neck block (layers
        # 137-138, 148-149, 159-160); here the three heads run after the neck, same results.
        return self.head(features)  # [(B, A*(5+K), H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        self.head.init_bias(prior)


def cspdarknet53(num_classes: int = 1000) -> CSPDarknet53Classifier:
    """CSPDarknet53 as csdarknet53-omega.cfg: the ImageNet classifier (27.6 M params)."""
    return CSPDarknet53Classifier(num_classes)


def yolov4(num_classes: int = 80) -> YOLOv4:
    """YOLOv4 as Darknet's yolov4.cfg: CSPDarknet53, SPP, PAN, three scales (64.4 M params)."""
    return YOLOv4(YOLOv4Config(num_classes=num_classes))


def yolov4_nano(num_classes: int = 80) -> YOLOv4:
    """A YOLOv4 for a laptop CPU at 128 px, sized like ``yolov3_nano`` (1.5 M params with 7
    classes, 0.15 GFLOPs at 128 px).

    The same three scales (strides 8, 16, 32), CSP stages, SPP(5, 9, 13), PAN neck and head as
    ``yolov4()``, with ``yolov3_nano``'s sizes: 1/4 of the width, 7 residual blocks instead of
    23, a stride-2 stem, and one 1x1 conv per neck block (and around SPP) instead of five (and
    three), since thin, deep neck blocks slowed learning the class of each cell. Two further
    choices, measured as forward+backward at batch 8, 128 px, 2 threads (yolov3_nano = 1.0):

    * the first CSP stage downsamples and the second keeps the resolution, so no CSP stage runs
      at the stem's stride 2 (64 x 64 at 128 px): with full-width parts and two more 1x1 convs, CSPDarknet53's first stage
      was the costliest part of the small network (1.5x -> 1.2x, with leaky);
    * leaky ReLU (0.1) in the backbone instead of Mish: on a CPU Mish costs 3-4x leaky per
      element (:func:`~yolo_teach.layers.activations.activation_cost`) and made the whole step
      ~1.35x slower (1.2x -> 1.6x); the paper's GPU hardly notices it.
      ``YOLOv4Config(..., backbone_act=Mish)`` puts it back.
    """
    cfg = YOLOv4Config(
        num_classes=num_classes,
        stem_channels=16,
        stem_stride=2,
        stage_strides=(2, 1, 2, 2, 2),
        channels=(16, 32, 64, 128, 256),
        depths=(1, 1, 2, 2, 1),
        spp_depth=1,
        neck_depth=1,
        # NOTE(paper): Mish in the backbone (§3.4); leaky here, measured above.
        backbone_act=DarknetLeaky,
    )
    return YOLOv4(cfg)


# --------------------------------------------------------------------------------------------
# Registration: the loss of yolov4.cfg's [yolo] layers, and the names
# --------------------------------------------------------------------------------------------
def yolov4_nano_mish(num_classes: int = 80) -> YOLOv4:
    """The nano YOLOv4 with the paper's Mish in its backbone (1.35x the step time on a CPU)."""
    return YOLOv4(replace(yolov4_nano(num_classes).cfg, backbone_act=Mish))


# NOTE(paper): yolov4.cfg sets nms_kind=greedynms (plain NMS); the paper's detector lists
# DIoU-NMS among its bag of specials (§3.4), which we use.
register_anchor_models(
    [("yolov4", yolov4, INPUT_SIZE), ("yolov4-nano", yolov4_nano, NANO_INPUT_SIZE),
     ("yolov4-nano-mish", yolov4_nano_mish, NANO_INPUT_SIZE)],
    ANCHORS, yolov4_rules(SCALE_X_Y), default_rule="multi", nms=batched_diou_nms,
)  # default rule: iou_thresh=0.213
