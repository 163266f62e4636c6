"""YOLOv5 (Ultralytics, v6.0 and later; no paper: the code at ultralytics/yolov5 v7.0 is the
specification), with the SE-block and Mish variants of the CT-lesion study (seed 000).

YOLOv5 keeps YOLOv4's plan (a CSP backbone, SPP, a PAN neck, three anchor scales) in one block
vocabulary: ``Conv`` (conv, BN, SiLU), the C3 block (:mod:`yolo_teach.layers.c3`) and SPPF.
A single network is written once and scaled by two multipliers, so n, s, m, l and x are the
same class: every block count ``n`` becomes ``max(round(n * depth_multiple), 1)`` and every
width ``c`` becomes ``ceil(c * width_multiple / 8) * 8`` (models/yolo.py ``parse_model``).

Flow (``yolov5l()``: multipliers 1.0; shape comments give its channels, 640 px)::

    image (B, 3, 640, 640)
      -> stem: 6x6 stride-2 conv (B, 64, 320, 320)                       (v6.0: replaces Focus)
      -> 4 stages of [3x3 stride-2 conv, C3 x n]: (B, 128, 160, 160), c3 (B, 256, 80, 80),
         c4 (B, 512, 40, 40), (B, 1024, 20, 20); then SPPF -> c5 (B, 1024, 20, 20)
      -> PANet neck, C3 blocks without shortcuts: top-down to p3 (B, 256, 80, 80),
         bottom-up to p4 (B, 512, 40, 40) and p5 (B, 1024, 20, 20)
      -> Detect: one 1x1 conv with bias per scale -> 3 maps (B, A*(5+K), H/s, W/s)

Output order: strides 8, 16, 32; channels anchor-major ``[tx, ty, tw, th, to, classes * K]``,
raw. The loss (neighbour cells, 2σ-0.5 coding, CIoU, IoU objectness) is the ``"neighbours"``
rule of :mod:`yolo_teach.losses.recipes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers.activations import Mish
from yolo_teach.layers.attention import SE
from yolo_teach.layers.c3 import C3
from yolo_teach.layers.conv import ConvBNAct, set_batch_norm
from yolo_teach.layers.heads import AnchorHead, Detect
from yolo_teach.layers.pan import PANet
from yolo_teach.layers.spp import SPPF
from yolo_teach.losses.recipes import darknet_rules
from yolo_teach.registry import AnchorSet

STRIDES = (8, 16, 32)  # output order of YOLOv5.forward (P3, P4, P5)
INPUT_SIZE = 640
# models/yolov5*.yaml P5 anchors (w, h) in pixels at 640, P3/8 first (those of YOLOv3).
ANCHORS = AnchorSet(
    sizes=((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
           (373, 326)),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)  # fmt: skip
# The yaml's numbers before scaling: stage widths (P1 to P5) and C3 depths (P2 to P5, neck).
WIDTHS = (64, 128, 256, 512, 1024)
DEPTHS = (3, 6, 9, 3)
NECK_DEPTH = 3


def make_divisible(channels: float, divisor: int = 8) -> int:
    """The smallest multiple of ``divisor`` >= ``channels`` (utils/general.py)."""
    return math.ceil(channels / divisor) * divisor


@dataclass(frozen=True)
class YOLOv5Config:
    """Sizes of a YOLOv5 network; the defaults are yolov5l.yaml (80 classes).

    ``activation`` and ``se`` are the seed's variants (CT-lesion study, Table 1: "YOLOv5x +
    SEBlock + Mish"): ``activation=Mish`` replaces every SiLU; ``se=True`` puts an SE block
    (reduction ``se_reduction``) after each C3 of the backbone.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    depth_multiple: float = 1.0
    width_multiple: float = 1.0
    activation: type[nn.Module] = nn.SiLU
    se: bool = False
    se_reduction: int = 16

    def width(self, channels: int) -> int:
        """A yaml width scaled by ``width_multiple`` (rounded up to a multiple of 8)."""
        return make_divisible(channels * self.width_multiple, 8)

    def depth(self, n: int) -> int:
        """A yaml block count scaled by ``depth_multiple`` (at least 1)."""
        return max(round(n * self.depth_multiple), 1)


class SPPFBlock(nn.Module):
    """YOLOv5's SPPF (models/common.py): 1x1 conv to C/2, three 5x5 max-pools in series
    (:class:`~yolo_teach.layers.spp.SPPF`), concatenation, 1x1 conv over 4 * C/2.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = ConvBNAct(in_channels, hidden, 1, act_layer=act_layer)
        # NOTE(paper): Ultralytics concatenates [x, m5, m9, m13]; SPPF here gives Darknet's
        # [m13, m9, m5, x]. Same counts; only weight porting would need a permutation.
        self.pool = SPPF(kernel_size)
        self.cv2 = ConvBNAct(4 * hidden, out_channels, 1, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.cv1(x))  # (B, C_in/2 -> 2 C_in, H, W)
        return self.cv2(x)  # (B, C_out, H, W)


class YOLOv5Backbone(nn.Module):
    """The CSP-Darknet of yolov5*.yaml, layers 0-9: a 6x6 stem, four [stride-2 conv, C3] stages
    and SPPF; with ``cfg.se`` an SE block after each stage's C3.

    Shapes:
        (B, 3, H, W) -> c3 (B, 256, H/8, W/8), c4 (B, 512, H/16, W/16), c5 (B, 1024, H/32, W/32)
    """

    def __init__(self, cfg: YOLOv5Config):
        super().__init__()
        act = cfg.activation
        w = [cfg.width(c) for c in WIDTHS]  # 64, 128, 256, 512, 1024 (yolov5l)
        # v6.0: Conv(3, 64, k=6, s=2, p=2) replaced Focus + 3x3 conv (same params and FLOPs)
        self.stem = ConvBNAct(3, w[0], 6, stride=2, act_layer=act, padding=2)

        def stage(c_in: int, c_out: int, n: int) -> nn.Sequential:
            blocks = [ConvBNAct(c_in, c_out, 3, stride=2, act_layer=act),
                      C3(c_out, c_out, cfg.depth(n), shortcut=True, act_layer=act)]
            if cfg.se:
                # NOTE(paper): the CT-lesion study adds "SEBlocks" to YOLOv5x without saying
                # where; we put one after each backbone C3, as the improved-YOLOX paper (seed
                # 004) places its CBAMs (4 modules).
                blocks.append(SE(c_out, cfg.se_reduction))
            return nn.Sequential(*blocks)

        self.stage2 = stage(w[0], w[1], DEPTHS[0])
        self.stage3 = stage(w[1], w[2], DEPTHS[1])
        self.stage4 = stage(w[2], w[3], DEPTHS[2])
        self.stage5 = stage(w[3], w[4], DEPTHS[3])
        self.sppf = SPPFBlock(w[4], w[4], 5, act)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, 64, H/2, W/2)
        x = self.stage2(x)  # (B, 128, H/4, W/4)
        c3 = self.stage3(x)  # (B, 256, H/8, W/8)
        c4 = self.stage4(c3)  # (B, 512, H/16, W/16)
        c5 = self.sppf(self.stage5(c4))  # (B, 1024, H/32, W/32)
        return c3, c4, c5


class YOLOv5(nn.Module):
    """The YOLOv5 detector (v6.0+): backbone, PANet neck, Detect; every size from ``cfg``.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/8, W/8), (B, A*(5+K), H/16, W/16),
        (B, A*(5+K), H/32, W/32)], raw outputs, anchor-major channels.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv5Config = YOLOv5Config()):
        super().__init__()
        self.cfg = cfg
        self.backbone = YOLOv5Backbone(cfg)
        widths = tuple(cfg.width(c) for c in WIDTHS[2:])  # 256, 512, 1024 (yolov5l)
        # the PANet of yolov5*.yaml's head, layers 10-23 (C3 blocks without shortcuts)
        self.neck = PANet(widths, cfg.depth(NECK_DEPTH), act_layer=cfg.activation)
        self.head = Detect(widths, cfg.num_anchors, cfg.num_classes)
        set_batch_norm(self)  # utils/torch_utils.py initialize_weights
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(c3, c4, c5)  # [(B, 256, H/8, W/8), ..., (B, 1024, H/32, W/32)]
        return self.head(features)  # [(B, A*(5+K), H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float | None = None) -> None:
        """YOLOv5's bias initialisation; ``prior`` replaces its per-stride objectness prior."""
        self.head.init_bias(self.strides, prior)


# Factories: models/yolov5{n,s,m,l,x}.yaml (depth_multiple, width_multiple). Counts: unfused,
# FLOPs = 2 x conv MACs; the README's (fused, thop) figures are 1.9/4.5 ... 86.7/205.7.
def yolov5n(num_classes: int = 80, **options) -> YOLOv5:
    """YOLOv5n (v6.0+): depth 0.33, width 0.25 (1.87 M params, 4.47 GFLOPs at 640 px)."""
    return YOLOv5(YOLOv5Config(num_classes, depth_multiple=0.33, width_multiple=0.25, **options))


def yolov5s(num_classes: int = 80, **options) -> YOLOv5:
    """YOLOv5s (v6.0+): depth 0.33, width 0.50 (7.24 M params, 16.43 GFLOPs at 640 px)."""
    return YOLOv5(YOLOv5Config(num_classes, depth_multiple=0.33, width_multiple=0.5, **options))


def yolov5m(num_classes: int = 80, **options) -> YOLOv5:
    """YOLOv5m (v6.0+): depth 0.67, width 0.75 (21.19 M params, 48.87 GFLOPs at 640 px)."""
    return YOLOv5(YOLOv5Config(num_classes, depth_multiple=0.67, width_multiple=0.75, **options))


def yolov5l(num_classes: int = 80, **options) -> YOLOv5:
    """YOLOv5l (v6.0+): depth 1.0, width 1.0 (46.56 M params, 108.99 GFLOPs at 640 px)."""
    return YOLOv5(YOLOv5Config(num_classes, depth_multiple=1.0, width_multiple=1.0, **options))


def yolov5x(num_classes: int = 80, **options) -> YOLOv5:
    """YOLOv5x (v6.0+): depth 1.33, width 1.25 (86.75 M params, 205.45 GFLOPs at 640 px)."""
    return YOLOv5(YOLOv5Config(num_classes, depth_multiple=1.33, width_multiple=1.25, **options))


def yolov5n_se_mish(num_classes: int = 80) -> YOLOv5:
    """YOLOv5n with the CT-lesion study's changes: SE blocks in the backbone, Mish for SiLU."""
    return yolov5n(num_classes, activation=Mish, se=True)


class YOLOv5CPUNano(nn.Module):
    """YOLOv5n's backbone and neck with two changes for 128 px inputs on a CPU.

    * SPPF pools with a 1 x 1 window (no pooling). At 640 px the deepest map is 20 x 20 and
      SPPF's 5 x 5 window spans a quarter of its side; at 128 px the map is 4 x 4, where the
      9 x 9 and 13 x 13 windows return the maximum of the whole map at every cell. A quarter
      of 4 cells is 1.
    * YOLOv3's head: per scale a 3 x 3 conv doubling the width before the 1 x 1 output conv
      (:class:`~yolo_teach.layers.heads.AnchorHead`, objectness prior 0.01), instead of
      YOLOv5's single 1 x 1 conv on the thin PAN outputs.

    Shapes: as :class:`YOLOv5`.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv5Config):
        super().__init__()
        self.cfg = cfg
        self.backbone = YOLOv5Backbone(cfg)
        # NOTE(paper): Ultralytics pools with k = 5 at every input size; we size the window to
        # the 4 x 4 map of a 128 px input (k = 1), measured with the head change below.
        self.backbone.sppf.pool = SPPF(1)
        widths = tuple(cfg.width(c) for c in WIDTHS[2:])  # 64, 128, 256 (n)
        self.neck = PANet(widths, cfg.depth(NECK_DEPTH), act_layer=cfg.activation)
        set_batch_norm(self)  # YOLOv5's batch norm settings in its backbone and neck
        # NOTE(paper): YOLOv5's Detect is one 1x1 conv per scale; see yolov5_cpu_nano().
        self.head = AnchorHead(widths, cfg.num_anchors, cfg.num_classes, act_layer=cfg.activation)
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(c3, c4, c5)  # [(B, 64, H/8, W/8), ..., (B, 256, H/32, W/32)] (n)
        return self.head(features)  # [(B, A*(5+K), H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (the package's anchor heads)."""
        self.head.init_bias(prior)


CPU_NANO_INPUT_SIZE = 128


def yolov5_cpu_nano(num_classes: int = 80, **options) -> YOLOv5CPUNano:
    """YOLOv5n for 128 px on a laptop CPU: no SPPF pooling, YOLOv3's 3x3 head (3.33 M params
    with 3 classes; :class:`YOLOv5CPUNano`).

    Measured on the one-shape scenes (``ONE_SHAPE``: 400 training, 100 validation images), short
    recipe, 1 thread, validation mAP50 (one run each):

    * 300 steps of 8 at lr 0.003, seeds 0 / 1 / 2: ``yolov5n`` 0.21 / 0.07 / 0.12, this model
      0.47 / 0.26 / 0.43 (at lr 0.002: 0.34 / 0.35 / 0.26).
    * One change at a time (swapped into a built ``yolov5n``), seed 1, 400 steps at lr 0.005:
      ``yolov5n`` 0.10, SPPF window 1 x 1 0.12, the 3x3 head 0.24, both 0.43. A 3x3 head that
      keeps the width (2.54 M params) instead of doubling it: 0.29 (seed 0, 300 steps, lr 0.003).
    * lr 0.005 (:data:`~yolo_teach.experiment.SHORT_RUN`) against 0.003, 250 steps, seeds 0 / 1:
      0.12 / 0.21 against 0.36 / 0.22, hence its ``short_run`` learning rate.

    Cost: 1.9 x ``yolov5n``'s parameters (the doubled 3x3 convs of the head) and about 1.3 x its
    time per training step (178 against 135 ms, batch 8, 2 threads, a shared machine).
    """
    return YOLOv5CPUNano(YOLOv5Config(num_classes, depth_multiple=0.33, width_multiple=0.25,
                                      **options))


def yolov5_cpu_nano_se(num_classes: int = 80) -> YOLOv5CPUNano:
    """The CPU nano with SE blocks in the backbone (the CT-lesion study's "+ SEBlock")."""
    return yolov5_cpu_nano(num_classes, se=True)


def yolov5_cpu_nano_se_mish(num_classes: int = 80) -> YOLOv5CPUNano:
    """The CPU nano with SE blocks in the backbone and Mish for SiLU (CT-lesion study)."""
    return yolov5_cpu_nano(num_classes, activation=Mish, se=True)


# Registration: official P5 anchors, the three rules of an anchor model, YOLOv5's by default.
register_anchor_models(
    [("yolov5n", yolov5n, INPUT_SIZE), ("yolov5s", yolov5s, INPUT_SIZE),
     ("yolov5m", yolov5m, INPUT_SIZE), ("yolov5l", yolov5l, INPUT_SIZE),
     ("yolov5x", yolov5x, INPUT_SIZE), ("yolov5n-se-mish", yolov5n_se_mish, INPUT_SIZE)],
    ANCHORS, darknet_rules(), default_rule="neighbours",
)
register_anchor_models(
    [("yolov5-cpu-nano", yolov5_cpu_nano, CPU_NANO_INPUT_SIZE),
     ("yolov5-cpu-nano-se", yolov5_cpu_nano_se, CPU_NANO_INPUT_SIZE),
     ("yolov5-cpu-nano-se-mish", yolov5_cpu_nano_se_mish, CPU_NANO_INPUT_SIZE)],
    ANCHORS, darknet_rules(), default_rule="neighbours", short_run={"lr": 0.003},
)
