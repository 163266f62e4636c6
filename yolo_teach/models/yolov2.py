"""YOLOv2: "YOLO9000: Better, Faster, Stronger" (Redmon & Farhadi, CVPR 2017).

YOLOv2 keeps one network and one pass, but predicts boxes relative to A anchor boxes on a
13 x 13 grid (§2 "Convolutional With Anchor Boxes"), adds batch norm to every conv layer, and
brings fine-grained 26 x 26 features to the last layers through a passthrough layer (§2
"Fine-Grained Features"). The backbone is Darknet-19 (§3 "Faster", Table 6).

Flow (``yolov2()``, as Darknet's yolov2-voc.cfg, 416 px)::

    image (B, 3, 416, 416)
      -> Darknet-19 without its classifier  -> c4 (B, 512, 26, 26), c5 (B, 1024, 13, 13)
      -> two 3x3 convs on c5                -> (B, 1024, 13, 13)
      -> passthrough: 1x1 conv 64 on c4, reorg 2 -> (B, 256, 13, 13)
      -> concat [passthrough, deep]         -> (B, 1280, 13, 13)
      -> 3x3 conv 1024, 1x1 conv A*(5+K)    -> (B, 125, 13, 13)

Output channels are anchor-major, ``[tx, ty, tw, th, to, class scores * K]`` per anchor, raw
(no sigmoid, no softmax); decoding with the anchors lives in :mod:`yolo_teach.anchors`.
Shape comments give the channels of the full-size network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_anchor_models
from yolo_teach.layers import ConvBNAct, MaxPoolStride1, Reorg, init_objectness_bias_
from yolo_teach.losses.recipes import darknet_rules
from yolo_teach.losses.terms import SoftmaxClassLoss, objectness_iou
from yolo_teach.registry import AnchorSet

STRIDE = 32  # one output map, 13 x 13 for a 416 px input
INPUT_SIZE = 416  # yolov2-voc.cfg width and height
# yolov2-voc.cfg [region]: 5 k-means anchors (w, h) in grid cells of stride 32 (§2 "Dimension
# Clusters"); 1.3221 cells = 42.3 px at 416.
ANCHORS = AnchorSet(
    sizes=((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053),
           (11.2364, 10.0071)),
    masks=((0, 1, 2, 3, 4),),
    unit="cells",
    reference_size=INPUT_SIZE,
    cell_stride=STRIDE,
)
# yolov2-tiny-voc.cfg [region] has its own 5 anchors, also in cells of stride 32.
TINY_ANCHORS = AnchorSet(
    sizes=((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52)),
    masks=((0, 1, 2, 3, 4),),
    unit="cells",
    reference_size=INPUT_SIZE,
    cell_stride=STRIDE,
)
# The faithful loss is Darknet's [region] layer of yolov2-voc.cfg: the objectness learns the IoU
# (rescore=1), predictions overlapping a truth by > 0.6 are ignored (thresh=.6), and the classes
# are a softmax (softmax=1).
RULES = darknet_rules(objectness_target=objectness_iou, ignore_threshold=0.6,
                      class_loss=SoftmaxClassLoss())


@dataclass(frozen=True)
class YOLOv2Config:
    """Sizes of a YOLOv2 network. The defaults are Darknet's yolov2-voc.cfg (PASCAL VOC).

    ``channels`` are the widths of Darknet-19's six stages (strides 1 to 32); each stage is a 3x3
    conv followed by ``depths[i]`` pairs of a 1x1 halving conv and a 3x3 conv (Table 6).
    """

    num_classes: int = 20  # K
    num_anchors: int = 5  # A
    channels: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    depths: tuple[int, ...] = (0, 0, 1, 1, 2, 2)
    passthrough_channels: int = 64
    head_channels: int = 1024


class Darknet19Stage(nn.Module):
    """A 3x3 conv, then ``depth`` pairs of (1x1 conv to C/2, 3x3 conv back to C) (Table 6).

    Like VGG, 3x3 filters and channels doubled after each pool; like Network in Network, 1x1
    filters compress the features between the 3x3 convolutions (§3 "Darknet-19").

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int):
        super().__init__()
        layers = [ConvBNAct(in_channels, out_channels, 3)]
        for _ in range(depth):
            layers += [
                ConvBNAct(out_channels, out_channels // 2, 1),
                ConvBNAct(out_channels // 2, out_channels, 3),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, C_out, H, W)


class Darknet19(nn.Module):
    """Darknet-19's 18 conv layers and 5 max-pools (Table 6), without the classifier.

    Returns the stride-16 map (input of the passthrough layer) and the stride-32 map.

    Shapes:
        (B, 3, H, W) -> (B, 512, H/16, W/16), (B, 1024, H/32, W/32)
    """

    def __init__(self, channels: tuple[int, ...], depths: tuple[int, ...]):
        super().__init__()
        c, d = channels, depths
        self.stage1 = Darknet19Stage(3, c[0], d[0])
        self.stage2 = nn.Sequential(nn.MaxPool2d(2, 2), Darknet19Stage(c[0], c[1], d[1]))
        self.stage3 = nn.Sequential(nn.MaxPool2d(2, 2), Darknet19Stage(c[1], c[2], d[2]))
        self.stage4 = nn.Sequential(nn.MaxPool2d(2, 2), Darknet19Stage(c[2], c[3], d[3]))
        self.stage5 = nn.Sequential(nn.MaxPool2d(2, 2), Darknet19Stage(c[3], c[4], d[4]))
        self.stage6 = nn.Sequential(nn.MaxPool2d(2, 2), Darknet19Stage(c[4], c[5], d[5]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage1(x)  # (B, 32, H, W)
        x = self.stage2(x)  # (B, 64, H/2, W/2)
        x = self.stage3(x)  # (B, 128, H/4, W/4)
        x = self.stage4(x)  # (B, 256, H/8, W/8)
        c4 = self.stage5(x)  # (B, 512, H/16, W/16)
        c5 = self.stage6(c4)  # (B, 1024, H/32, W/32)
        return c4, c5


class YOLOv2(nn.Module):
    """The YOLOv2 detector: Darknet-19, the passthrough layer and a 1x1 prediction conv.

    Args:
        cfg: network sizes; ``YOLOv2Config()`` is yolov2-voc.cfg.

    Shapes:
        (B, 3, H, W) -> (B, A*(5+K), H/32, W/32), raw outputs, anchor-major channels.
    """

    strides = (STRIDE,)

    def __init__(self, cfg: YOLOv2Config = YOLOv2Config()):
        super().__init__()
        self.cfg = cfg
        c4, c5 = cfg.channels[-2], cfg.channels[-1]
        p, h = cfg.passthrough_channels, cfg.head_channels
        self.backbone = Darknet19(cfg.channels, cfg.depths)
        # "we remove the last convolutional layer and instead add on three 3x3 convolutional
        # layers with 1024 filters each followed by a final 1x1 convolutional layer" (§3
        # "Training for detection"); the passthrough enters before the third.
        self.conv1 = ConvBNAct(c5, h, 3)
        self.conv2 = ConvBNAct(h, h, 3)
        # NOTE(paper): the paper describes the passthrough as reorganising the 26x26x512 map
        # itself (-> 13x13x2048); yolov2-voc.cfg first squeezes it with a 1x1 conv to 64
        # channels (-> 13x13x256). We follow the official cfg, whose sizes the tests check.
        self.passthrough = nn.Sequential(ConvBNAct(c4, p, 1), Reorg(stride=2))
        self.conv3 = ConvBNAct(4 * p + h, h, 3)
        self.pred = nn.Conv2d(h, cfg.num_anchors * (5 + cfg.num_classes), 1)
        self.init_bias()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c4, c5 = self.backbone(images)  # (B, 512, H/16, W/16), (B, 1024, H/32, W/32)
        deep = self.conv2(self.conv1(c5))  # (B, 1024, H/32, W/32)
        fine = self.passthrough(c4)  # (B, 256, H/32, W/32)
        x = torch.cat([fine, deep], dim=1)  # (B, 1280, H/32, W/32)
        x = self.conv3(x)  # (B, 1024, H/32, W/32)
        return self.pred(x)  # (B, A*(5+K), H/32, W/32)

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        init_objectness_bias_(self.pred, self.cfg.num_anchors, prior)


@dataclass(frozen=True)
class YOLOv2TinyConfig:
    """Sizes of Tiny YOLOv2. The defaults are Darknet's yolov2-tiny-voc.cfg.

    ``channels`` are the widths of the seven 3x3 convs of the backbone; the first five are each
    followed by a stride-2 max-pool, the sixth by a stride-1 max-pool that keeps 13 x 13.
    """

    num_classes: int = 20  # K
    num_anchors: int = 5  # A
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    head_channels: int = 1024


class YOLOv2Tiny(nn.Module):
    """Tiny YOLOv2 (yolov2-tiny-voc.cfg): nine plain conv layers, no passthrough.

    Args:
        cfg: network sizes; ``YOLOv2TinyConfig()`` is yolov2-tiny-voc.cfg.

    Shapes:
        (B, 3, H, W) -> (B, A*(5+K), H/32, W/32), raw outputs, anchor-major channels.
    """

    strides = (STRIDE,)

    def __init__(self, cfg: YOLOv2TinyConfig = YOLOv2TinyConfig()):
        super().__init__()
        self.cfg = cfg
        c = (3, *cfg.channels)
        layers: list[nn.Module] = []
        for i in range(5):  # stride 1 -> 32
            layers += [ConvBNAct(c[i], c[i + 1], 3), nn.MaxPool2d(2, 2)]
        layers += [ConvBNAct(c[5], c[6], 3), MaxPoolStride1(), ConvBNAct(c[6], c[7], 3)]
        self.backbone = nn.Sequential(*layers)
        self.conv = ConvBNAct(c[7], cfg.head_channels, 3)
        self.pred = nn.Conv2d(cfg.head_channels, cfg.num_anchors * (5 + cfg.num_classes), 1)
        self.init_bias()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.backbone(images)  # (B, 1024, H/32, W/32)
        x = self.conv(x)  # (B, 1024, H/32, W/32)
        return self.pred(x)  # (B, A*(5+K), H/32, W/32)

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        init_objectness_bias_(self.pred, self.cfg.num_anchors, prior)


def yolov2(num_classes: int = 20) -> YOLOv2:
    """YOLOv2 as Darknet's yolov2-voc.cfg: Darknet-19, passthrough, 5 anchors (50.7 M params)."""
    return YOLOv2(YOLOv2Config(num_classes=num_classes))


def yolov2_tiny(num_classes: int = 20) -> YOLOv2Tiny:
    """Tiny YOLOv2 as Darknet's yolov2-tiny-voc.cfg (15.9 M params)."""
    return YOLOv2Tiny(YOLOv2TinyConfig(num_classes=num_classes))


def yolov2_nano(num_classes: int = 20) -> YOLOv2:
    """A YOLOv2 for a laptop CPU at 128-256 px (1.5 M params).

    Darknet-19 at a quarter of its width with one 1x1-3x3 pair per stage (Table 6 has two in the
    last two stages), a passthrough of 16 channels and a head of 128: an eighth of the original.
    """
    cfg = YOLOv2Config(
        num_classes=num_classes,
        channels=(8, 16, 32, 64, 128, 256),
        depths=(0, 0, 1, 1, 1, 1),
        passthrough_channels=16,
        head_channels=128,
    )
    return YOLOv2(cfg)


# --------------------------------------------------------------------------------------------
# Registration: the names, with the anchors, rules and input size declared above
# --------------------------------------------------------------------------------------------
register_anchor_models([("yolov2", yolov2, INPUT_SIZE), ("yolov2-nano", yolov2_nano, 128)],
                       ANCHORS, RULES)
register_anchor_models([("yolov2-tiny", yolov2_tiny, INPUT_SIZE)], TINY_ANCHORS, RULES)
