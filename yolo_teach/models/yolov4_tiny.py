"""YOLOv4-tiny (Darknet's yolov4-tiny.cfg; not in the YOLOv4 paper, released with Darknet).

It keeps YOLOv3-tiny's two scales and replaces its plain conv/max-pool backbone with three
channel-split CSP blocks (:class:`~yolo_teach.layers.csp.TinyCSPBlock`: a 3x3 conv, keep the
second half of its channels, two 3x3 convs, a 1x1 transition and the concatenation with the
block's input). Leaky ReLU (0.1) everywhere; yolov4.cfg's loss per ``[yolo]`` layer
(``scale_x_y`` 1.05, CIoU x 0.07, ignore 0.7) but no ``iou_thresh``: one anchor per truth.

Flow (``yolov4_tiny()``, 416 px)::

    image (B, 3, 416, 416)
      -> two stride-2 convs                 -> (B, 64, 104, 104)
      -> 3 TinyCSPBlocks with max-pools     -> (B, 512, 26, 26), c4 (B, 256, 26, 26)
      -> max-pool, 3x3 conv                 -> c5 (B, 512, 13, 13)
      -> 1x1 conv -> head32; upsampled lateral + c4 -> head16
      -> [(B, A*(5+K), 26, 26), (B, A*(5+K), 13, 13)]

Output order: strides 16, 32 (finest first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, init_objectness_bias_
from yolo_teach.layers.csp import TinyCSPBlock
from yolo_teach.losses.recipes import yolov4_rules
from yolo_teach.nms import batched_diou_nms
from yolo_teach.registry import AnchorSet

STRIDES = (16, 32)  # output order of YOLOv4Tiny.forward
INPUT_SIZE = 416  # yolov4-tiny.cfg width = height = 416; its anchors are pixels at 416
# yolov4-tiny.cfg: mask = 1,2,3 at stride 16 and 3,4,5 at stride 32, kept as in the cfg:
# anchor 0 is never used and anchor 3 serves both maps.
ANCHORS = AnchorSet(
    sizes=((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)),
    masks=((1, 2, 3), (3, 4, 5)),
    unit="pixels",
    reference_size=INPUT_SIZE,
)
SCALE_X_Y = (1.05, 1.05)
NANO_INPUT_SIZE = 128  # the input size yolov4_tiny_nano() is sized for


@dataclass(frozen=True)
class YOLOv4TinyConfig:
    """Sizes of YOLOv4-tiny. The defaults are Darknet's yolov4-tiny.cfg (COCO).

    ``channels`` are the widths of the six 3x3 backbone convs that are not inside a CSP block's
    split: the two stride-2 stem convs, the first conv of each of the three
    :class:`~yolo_teach.layers.csp.TinyCSPBlock` (each block outputs twice its width) and the
    last conv at stride 32. ``neck_channels`` is the 1x1 conv on the stride-32 map; the
    upsampled lateral branch has half of it.
    """

    num_classes: int = 80  # K
    num_anchors: int = 3  # A, per scale
    channels: tuple[int, ...] = (32, 64, 64, 128, 256, 512)
    neck_channels: int = 256
    act_layer: type[nn.Module] = DarknetLeaky


class YOLOv4Tiny(nn.Module):
    """YOLOv4-tiny (yolov4-tiny.cfg): a stride-4 stem, three channel-split CSP blocks with
    max-pools between them, and YOLOv3-tiny's two-scale neck and head.

    Shapes:
        (B, 3, H, W) -> [(B, A*(5+K), H/16, W/16), (B, A*(5+K), H/32, W/32)], raw outputs.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOv4TinyConfig = YOLOv4TinyConfig()):
        super().__init__()
        self.cfg = cfg
        c, n, act = cfg.channels, cfg.neck_channels, cfg.act_layer
        self.stem = nn.Sequential(
            ConvBNAct(3, c[0], 3, stride=2, act_layer=act),
            ConvBNAct(c[0], c[1], 3, stride=2, act_layer=act),
        )
        self.block1 = TinyCSPBlock(c[1], c[2], act)
        self.block2 = TinyCSPBlock(2 * c[2], c[3], act)
        self.block3 = TinyCSPBlock(2 * c[3], c[4], act)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv5 = ConvBNAct(2 * c[4], c[5], 3, act_layer=act)
        self.neck32 = ConvBNAct(c[5], n, 1, act_layer=act)
        self.lateral32 = ConvBNAct(n, n // 2, 1, act_layer=act)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        out_channels = cfg.num_anchors * (5 + cfg.num_classes)
        self.head32 = nn.Sequential(
            ConvBNAct(n, 2 * n, 3, act_layer=act), nn.Conv2d(2 * n, out_channels, 1)
        )
        self.head16 = nn.Sequential(
            ConvBNAct(n // 2 + c[4], n, 3, act_layer=act), nn.Conv2d(n, out_channels, 1)
        )
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images)  # (B, 64, H/4, W/4)
        x, _ = self.block1(x)  # (B, 128, H/4, W/4)
        x, _ = self.block2(self.pool(x))  # (B, 256, H/8, W/8)
        x, c4 = self.block3(self.pool(x))  # (B, 512, H/16, W/16), c4 (B, 256, H/16, W/16)
        c5 = self.conv5(self.pool(x))  # (B, 512, H/32, W/32)
        p5 = self.neck32(c5)  # (B, 256, H/32, W/32)
        out32 = self.head32(p5)  # (B, A*(5+K), H/32, W/32), computed first as in the cfg
        x = self.upsample(self.lateral32(p5))  # (B, 128, H/16, W/16)
        out16 = self.head16(torch.cat([x, c4], dim=1))  # (B, 384 -> A*(5+K), H/16, W/16)
        return [out16, out32]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        for head in (self.head16, self.head32):
            init_objectness_bias_(head[-1], self.cfg.num_anchors, prior)


def yolov4_tiny(num_classes: int = 80) -> YOLOv4Tiny:
    """YOLOv4-tiny as Darknet's yolov4-tiny.cfg: two scales, strides 16 and 32 (6.1 M params)."""
    return YOLOv4Tiny(YOLOv4TinyConfig(num_classes=num_classes))


def yolov4_tiny_nano(num_classes: int = 80) -> YOLOv4Tiny:
    """YOLOv4-tiny at half its width for a laptop CPU at 128 px (1.5 M params with 7 classes,
    0.16 GFLOPs at 128 px).

    The tiny's stem already downsamples by 4, so nothing else changes: its step (batch 8,
    128 px, 2 threads) takes ~0.85x the time of ``yolov3_nano``'s.
    """
    cfg = YOLOv4TinyConfig(
        num_classes=num_classes, channels=(16, 32, 32, 64, 128, 256), neck_channels=128
    )
    return YOLOv4Tiny(cfg)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
# yolov4-tiny.cfg has no iou_thresh: one anchor per truth ("single")
register_anchor_models(
    [("yolov4-tiny", yolov4_tiny, INPUT_SIZE),
     ("yolov4-tiny-nano", yolov4_tiny_nano, NANO_INPUT_SIZE)],
    ANCHORS, yolov4_rules(SCALE_X_Y), nms=batched_diou_nms,
)
