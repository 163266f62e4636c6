"""YOLOv3: "YOLOv3: An Incremental Improvement" (Redmon & Farhadi, arXiv 2018).

YOLOv3 predicts boxes at three scales (§2.3 "Predictions Across Scales"): a residual backbone,
Darknet-53 (§2.4 "Feature Extractor"), and a top-down path "similar to feature pyramid networks"
that upsamples the deep map by 2 and concatenates it with an earlier, finer map. Each scale has
A = 3 anchors of the 9 k-means clusters; the smallest three go to the finest map.

Flow (``yolov3()``, as Darknet's yolov3.cfg, 416 px)::

    image (B, 3, 416, 416)
      -> Darknet-53: c3 (B, 256, 52, 52), c4 (B, 512, 26, 26), c5 (B, 1024, 13, 13)
      -> neck (top-down, FPN-like): p3 (B, 128, 52, 52), p4 (B, 256, 26, 26), p5 (B, 512, 13, 13)
      -> head: a 3x3 conv and a 1x1 conv per scale -> 3 maps (B, A*(5+K), H/s, W/s)

Output order, kept everywhere in the package: **strides 8, 16, 32** (finest map first), the
order of the anchors in yolov3.cfg (``mask = 0,1,2`` is the stride-8 map). Channels are
anchor-major, ``[tx, ty, tw, th, to, class scores * K]`` per anchor, raw (no sigmoid).
Shape comments give the channels of the full-size network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers import (
    AnchorHead,
    ConvBNAct,
    ConvSet,
    DarknetStage,
    MaxPoolStride1,
    init_objectness_bias_,
)
from yolo_teach.losses.recipes import darknet_rules
from yolo_teach.registry import AnchorSet

STRIDES = (8, 16, 32)  # output order of YOLOv3.forward
INPUT_SIZE = 416  # yolov3.cfg width and height; the anchors below are pixels at this size
# yolov3.cfg (COCO): 9 k-means anchors (w, h) in pixels at 416; mask 0,1,2 is the stride-8 map.
ANCHORS = AnchorSet(
    sizes=((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
           (373, 326)),
    masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)
# yolov3-tiny.cfg: 6 anchors in pixels at 416, two maps.
# NOTE(paper): yolov3-tiny.cfg uses anchors 1,2,3 at stride 16 (anchor 0 unused, anchor 3 twice),
# a known slip; like most ports we use 0,1,2 at stride 16 and 3,4,5 at stride 32.
TINY_ANCHORS = AnchorSet(
    sizes=((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)),
    masks=((0, 1, 2), (3, 4, 5)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)


@dataclass(frozen=True)
class YOLOv3Config:
    """Sizes of a YOLOv3 network. The defaults are Darknet's yolov3.cfg (COCO).

    ``channels`` are the widths of Darknet-53's five downsampling stages (strides 2 to 32) and
    ``depths`` the number of residual blocks in each (1, 2, 8, 8, 4: Table 1 of the paper).
    The neck works at half the backbone width of each scale. With ``stem_stride=2`` (not in the
    paper; the nano model, see :func:`yolov3_nano`) the stem itself downsamples, so the first
    stage keeps the resolution and the outputs keep strides 8, 16 and 32.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    stem_channels: int = 32
    stem_stride: int = 1  # Darknet-53: 1; a stride-2 stem replaces the first stage's downsampling
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024)
    depths: tuple[int, ...] = (1, 2, 8, 8, 4)
    neck_depth: int = 5  # convs per ConvSet in the neck (yolov3.cfg: 5)


class Darknet53(nn.Module):
    """Darknet-53 without its classifier: 52 conv layers, 23 residual blocks (§2.4, Table 1).

    Shapes:
        (B, 3, H, W) -> c3 (B, 256, H/8, W/8), c4 (B, 512, H/16, W/16), c5 (B, 1024, H/32, W/32)
    """

    def __init__(self, stem_channels: int, channels: tuple[int, ...], depths: tuple[int, ...],
                 stem_stride: int = 1):
        super().__init__()
        c, d = channels, depths
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 (Darknet-53) or 2, got {stem_stride}")
        self.stem = ConvBNAct(3, stem_channels, 3, stride=stem_stride)
        # the total stride stays 32: a stride-2 stem takes over the first stage's downsampling
        self.stage1 = DarknetStage(stem_channels, c[0], d[0], stride=2 // stem_stride)
        self.stage2 = DarknetStage(c[0], c[1], d[1])
        self.stage3 = DarknetStage(c[1], c[2], d[2])
        self.stage4 = DarknetStage(c[2], c[3], d[3])
        self.stage5 = DarknetStage(c[3], c[4], d[4])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, 32, H, W)
        x = self.stage1(x)  # (B, 64, H/2, W/2)
        x = self.stage2(x)  # (B, 128, H/4, W/4)
        c3 = self.stage3(x)  # (B, 256, H/8, W/8)
        c4 = self.stage4(c3)  # (B, 512, H/16, W/16)
        c5 = self.stage5(c4)  # (B, 1024, H/32, W/32)
        return c3, c4, c5


class YOLOv3Neck(nn.Module):
    """The top-down path: "take the feature map from 2 layers previous and upsample it by 2x ...
    merge it with our upsampled features using concatenation" (§2.3).

    Shapes:
        c3, c4, c5 -> p3 (B, 128, H/8, W/8), p4 (B, 256, H/16, W/16), p5 (B, 512, H/32, W/32)
    """

    def __init__(self, channels: tuple[int, int, int], depth: int = 5):
        super().__init__()
        c3, c4, c5 = channels  # backbone widths at strides 8, 16, 32
        self.set5 = ConvSet(c5, c5 // 2, depth)
        self.lateral5 = ConvBNAct(c5 // 2, c4 // 2, 1)
        self.set4 = ConvSet(c4 // 2 + c4, c4 // 2, depth)
        self.lateral4 = ConvBNAct(c4 // 2, c3 // 2, 1)
        self.set3 = ConvSet(c3 // 2 + c3, c3 // 2, depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
        p5 = self.set5(c5)  # (B, 512, H/32, W/32)
        x = self.upsample(self.lateral5(p5))  # (B, 256, H/16, W/16)
        p4 = self.set4(torch.cat([x, c4], dim=1))  # (B, 768 -> 256, H/16, W/16)
        x = self.upsample(self.lateral4(p4))  # (B, 128, H/8, W/8)
        p3 = self.set3(torch.cat([x, c3], dim=1))  # (B, 384 -> 128, H/8, W/8)
        return [p3, p4, p5]


class YOLOv3(nn.Module):
    """The YOLOv3 detector: Darknet-53, the top-down neck and three prediction branches.

    Args:
        cfg: network sizes; ``YOLOv3Config()`` is yolov3.cfg.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/8, W/8), (B, A*(5+K), H/16, W/16),
        (B, A*(5+K), H/32, W/32)], raw outputs, anchor-major channels.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv3Config = YOLOv3Config()):
        super().__init__()
        self.cfg = cfg
        c3, c4, c5 = cfg.channels[-3:]
        self.backbone = Darknet53(cfg.stem_channels, cfg.channels, cfg.depths, cfg.stem_stride)
        self.neck = YOLOv3Neck((c3, c4, c5), cfg.neck_depth)
        self.head = AnchorHead((c3 // 2, c4 // 2, c5 // 2), cfg.num_anchors, cfg.num_classes)
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(c3, c4, c5)  # [(B, 128, H/8, W/8), ..., (B, 512, H/32, W/32)]
        return self.head(features)  # [(B, A*(5+K), H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        self.head.init_bias(prior)


@dataclass(frozen=True)
class YOLOv3TinyConfig:
    """Sizes of Tiny YOLOv3. The defaults are Darknet's yolov3-tiny.cfg (COCO).

    ``channels`` are the widths of the seven 3x3 backbone convs; the first five are followed by
    stride-2 max-pools, the sixth by a stride-1 max-pool. ``neck_channels`` is the 1x1 conv on
    the stride-32 map; the upsampled lateral branch has half of it.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    neck_channels: int = 256


class YOLOv3Tiny(nn.Module):
    """Tiny YOLOv3 (yolov3-tiny.cfg): a plain conv/max-pool backbone and two scales.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/16, W/16), (B, A*(5+K), H/32, W/32)], raw outputs.
    """

    strides = (16, 32)

    def __init__(self, cfg: YOLOv3TinyConfig = YOLOv3TinyConfig()):
        super().__init__()
        self.cfg = cfg
        c = (3, *cfg.channels)
        n = cfg.neck_channels
        layers: list[nn.Module] = []
        for i in range(4):  # stride 1 -> 16
            layers += [ConvBNAct(c[i], c[i + 1], 3), nn.MaxPool2d(2, 2)]
        self.backbone16 = nn.Sequential(*layers, ConvBNAct(c[4], c[5], 3))
        self.backbone32 = nn.Sequential(
            nn.MaxPool2d(2, 2),
            ConvBNAct(c[5], c[6], 3),
            MaxPoolStride1(),
            ConvBNAct(c[6], c[7], 3),
        )
        self.neck32 = ConvBNAct(c[7], n, 1)
        self.lateral32 = ConvBNAct(n, n // 2, 1)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        out_channels = cfg.num_anchors * (5 + cfg.num_classes)
        self.head16 = nn.Sequential(ConvBNAct(n // 2 + c[5], n, 3), nn.Conv2d(n, out_channels, 1))
        self.head32 = nn.Sequential(ConvBNAct(n, 2 * n, 3), nn.Conv2d(2 * n, out_channels, 1))
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.backbone16(images)  # (B, 256, H/16, W/16)
        c5 = self.backbone32(c4)  # (B, 1024, H/32, W/32)
        p5 = self.neck32(c5)  # (B, 256, H/32, W/32)
        x = self.upsample(self.lateral32(p5))  # (B, 128, H/16, W/16)
        p4 = torch.cat([x, c4], dim=1)  # (B, 384, H/16, W/16)
        return [self.head16(p4), self.head32(p5)]  # [(B, A*(5+K), H/s, W/s) for s in (16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        for head in (self.head16, self.head32):
            init_objectness_bias_(head[-1], self.cfg.num_anchors, prior)


def yolov3(num_classes: int = 80) -> YOLOv3:
    """YOLOv3 as Darknet's yolov3.cfg: Darknet-53, three scales, 3 anchors each (61.9 M params)."""
    return YOLOv3(YOLOv3Config(num_classes=num_classes))


def yolov3_tiny(num_classes: int = 80) -> YOLOv3Tiny:
    """Tiny YOLOv3 as Darknet's yolov3-tiny.cfg: two scales, strides 16 and 32 (8.9 M params)."""
    return YOLOv3Tiny(YOLOv3TinyConfig(num_classes=num_classes))


def yolov3_nano(num_classes: int = 80) -> YOLOv3:
    """A YOLOv3 for a laptop CPU at 128-256 px (1.4 M params with 7 classes, 1.5 M with 80).

    The same three scales (strides 8, 16, 32), residual stages and top-down neck as
    ``yolov3()``, sized for a few minutes of CPU training. Three choices, each measured on the
    shapes data with 2 cores (``benchmarks/README.md``):

    * Darknet-53 at 1/4 of its width, with 7 residual blocks instead of 23;
    * a stride-2 stem (Darknet-53's stem keeps the full resolution, the costliest layers of a
      small network); the first stage then keeps the resolution, so the strides are unchanged;
    * one 1x1 conv per neck block instead of five, like the neck of ``yolov3_tiny()``: the thin,
      deep sets slowed learning the class of each cell several times over.
    """
    cfg = YOLOv3Config(
        num_classes=num_classes,
        stem_channels=16,
        stem_stride=2,
        channels=(16, 32, 64, 128, 256),
        depths=(1, 1, 2, 2, 1),
        neck_depth=1,
    )
    return YOLOv3(cfg)


# --------------------------------------------------------------------------------------------
# Registration: the names, with the anchors, rules and input size declared above
# --------------------------------------------------------------------------------------------
# YOLOv3 §2: the faithful rule is Darknet's [yolo] loss
register_anchor_models([("yolov3", yolov3, INPUT_SIZE), ("yolov3-nano", yolov3_nano, 128)],
                       ANCHORS, darknet_rules())
register_anchor_models([("yolov3-tiny", yolov3_tiny, INPUT_SIZE)], TINY_ANCHORS, darknet_rules())
