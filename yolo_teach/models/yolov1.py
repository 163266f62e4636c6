"""YOLOv1: "You Only Look Once: Unified, Real-Time Object Detection" (Redmon et al., CVPR 2016).

One network looks at the whole image once and regresses, for each cell of an S x S grid,
``num_boxes`` boxes (x, y, w, h, confidence) and K class probabilities (§2 "Unified Detection").

Flow (paper net, §2.1 and Fig. 3)::

    image (B, 3, 448, 448)
      -> backbone: 20 conv layers, 1x1 reductions + 3x3 convs  (B, 1024, 14, 14)
      -> head: 4 conv layers (one with stride 2)                (B, 1024, 7, 7)
      -> FC 4096 -> dropout -> FC S*S*(5*num_boxes + K)         (B, 1470)
      -> reshape                                                (B, S, S, 5*num_boxes + K)

The count 271,703,550 of the paper net (S=7, num_boxes=2, K=20) is reached with biased
convolutions and no batch norm: batch norm only arrived with YOLOv2 (§2 "Batch Normalization").

Output layout of the last axis, per cell: ``[x, y, w, h, confidence] * num_boxes`` then the K
class scores, all linear ("We use a linear activation function for the final layer", §2.1).
``forward`` returns this raw tensor; the loss and the decoding live elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from yolo_teach.decode import decode_yolov1
from yolo_teach.layers import ConvBNAct, DarknetLeaky
from yolo_teach.losses.yolov1_loss import YOLOv1Loss
from yolo_teach.registry import DetectorSpec, register

# Stride of the backbone: a 7x7/2 conv and four 2x2 max-pools. The paper's head adds a stride-2
# conv, so its last conv map is 448 / 64 = 7 = S.
BACKBONE_STRIDE = 32


@dataclass(frozen=True)
class YOLOv1Config:
    """Sizes of a YOLOv1 network. The defaults are the paper net (Fig. 3, PASCAL VOC).

    ``channels`` are the widths (c1, c2, c3, c4) of Fig. 3: the 7x7 conv (64), the 3x3 conv (192),
    the third block's output (512) and the last blocks' width (1024). ``depth`` is how often the
    fourth block repeats its 1x1-reduce / 3x3 pair (4); the fifth block repeats it ``depth // 2``
    times (2). ``head_strides`` are the strides of the conv layers that §2.2 adds for detection
    (4 layers, the second with stride 2). ``grid_size`` S is set by the last FC layer, not by the
    conv stride, so S need not equal :attr:`feature_size` (it does in the paper: 7).
    """

    num_classes: int = 20  # K (C in the paper)
    grid_size: int = 7  # S
    num_boxes: int = 2  # B in the paper; B is the batch here
    img_size: int = 448
    channels: tuple[int, int, int, int] = (64, 192, 512, 1024)
    depth: int = 4
    head_strides: tuple[int, ...] = (1, 2, 1, 1)  # the 4 conv layers added for detection
    hidden_channels: int = 4096  # first fully connected layer
    dropout: float = 0.5
    norm_layer: type[nn.Module] | None = None  # paper: no batch norm, biased convolutions

    @property
    def stride(self) -> int:
        """Input pixels per cell of the last conv map: 64 for the paper net, 32 without the
        stride-2 detection conv."""
        return BACKBONE_STRIDE * math.prod(self.head_strides)

    @property
    def feature_size(self) -> int:
        """Side of the last conv map, the input of the FC layers (7 for the paper net)."""
        return self.img_size // self.stride

    @property
    def cell_channels(self) -> int:
        """Outputs per cell: 5 numbers per box plus K class scores (30 for the paper net)."""
        return 5 * self.num_boxes + self.num_classes


def reduce_expand(
    in_channels: int, hidden_channels: int, depth: int, conv: type[ConvBNAct]
) -> list[nn.Module]:
    """``depth`` pairs of a 1x1 reduction to ``hidden_channels`` and a 3x3 conv back (§2.1).

    "Instead of the inception modules used by GoogLeNet, we simply use 1x1 reduction layers
    followed by 3x3 convolutional layers, similar to Lin et al [Network in Network]".
    """
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [conv(in_channels, hidden_channels, 1), conv(hidden_channels, in_channels, 3)]
    return layers


class YOLOv1Backbone(nn.Module):
    """The first 20 conv layers of Fig. 3, the part pretrained on ImageNet (§2.2).

    Shapes (paper net):
        (B, 3, 448, 448) -> (B, 1024, 14, 14)
    """

    def __init__(self, cfg: YOLOv1Config):
        super().__init__()
        c1, c2, c3, c4 = cfg.channels
        conv = partial(ConvBNAct, act_layer=DarknetLeaky, norm_layer=cfg.norm_layer)
        self.stage1 = nn.Sequential(conv(3, c1, 7, stride=2), nn.MaxPool2d(2, 2))
        self.stage2 = nn.Sequential(conv(c1, c2, 3), nn.MaxPool2d(2, 2))
        self.stage3 = nn.Sequential(
            conv(c2, c3 // 4, 1),
            conv(c3 // 4, c3 // 2, 3),
            conv(c3 // 2, c3 // 2, 1),
            conv(c3 // 2, c3, 3),
            nn.MaxPool2d(2, 2),
        )
        self.stage4 = nn.Sequential(
            *reduce_expand(c3, c3 // 2, cfg.depth, conv),
            conv(c3, c3, 1),
            conv(c3, c4, 3),
            nn.MaxPool2d(2, 2),
        )
        self.stage5 = nn.Sequential(*reduce_expand(c4, c4 // 2, cfg.depth // 2, conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage1(x)  # (B, 64, H/4, W/4)
        x = self.stage2(x)  # (B, 192, H/8, W/8)
        x = self.stage3(x)  # (B, 512, H/16, W/16)
        x = self.stage4(x)  # (B, 1024, H/32, W/32)
        return self.stage5(x)  # (B, 1024, H/32, W/32)


class YOLOv1Head(nn.Module):
    """The 4 conv layers and 2 fully connected layers added for detection (§2.2).

    The FC layers see the whole image at once, which is how YOLO "reasons globally" (§1).

    Shapes (paper net):
        (B, 1024, 14, 14) -> (B, S*S*(5*num_boxes + K)) = (B, 1470)
    """

    def __init__(self, cfg: YOLOv1Config):
        super().__init__()
        c4 = cfg.channels[3]
        conv = partial(ConvBNAct, act_layer=DarknetLeaky, norm_layer=cfg.norm_layer)
        self.convs = nn.Sequential(*[conv(c4, c4, 3, stride=s) for s in cfg.head_strides])
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c4 * cfg.feature_size**2, cfg.hidden_channels)
        self.act = DarknetLeaky()
        self.dropout = nn.Dropout(cfg.dropout)  # "a dropout layer with rate = .5" (§2.2)
        self.fc2 = nn.Linear(cfg.hidden_channels, cfg.grid_size**2 * cfg.cell_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # (B, 1024, 7, 7) in the paper: (B, c4, feature_size, feature_size)
        x = self.flatten(x)  # (B, 1024 * 7 * 7)
        x = self.dropout(self.act(self.fc1(x)))  # (B, 4096)
        return self.fc2(x)  # (B, S*S*(5*num_boxes + K))


class YOLOv1(nn.Module):
    """The YOLOv1 detector: backbone, detection head and a reshape to the S x S grid.

    Args:
        cfg: network sizes; ``YOLOv1Config()`` is the paper net.

    Shapes:
        (B, 3, img_size, img_size) -> (B, S, S, 5*num_boxes + K), raw (linear) outputs laid out
        per cell as ``[x, y, w, h, confidence] * num_boxes + [class scores] * K``.
    """

    def __init__(self, cfg: YOLOv1Config = YOLOv1Config()):
        super().__init__()
        self.cfg = cfg
        self.backbone = YOLOv1Backbone(cfg)
        self.head = YOLOv1Head(cfg)
        self.init_bias()

    @property
    def strides(self) -> tuple[int]:
        """One S x S grid: the stride of a cell in pixels (64 for the paper net)."""
        return (self.cfg.stride,)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.backbone(images)  # (B, 1024, H/32, W/32)
        x = self.head(x)  # (B, S*S*(5*num_boxes + K))
        # NOTE(paper): Darknet's detection layer stores the 1470 outputs as [all S*S*K class
        # scores | all S*S*num_boxes confidences | all boxes]. We group them per cell instead, a
        # fixed permutation of the FC outputs that is equivalent when training from scratch.
        s = self.cfg.grid_size
        return x.view(-1, s, s, self.cfg.cell_channels)  # (B, S, S, 5*num_boxes + K)

    @torch.no_grad()
    def init_bias(self, prior: float = 0.01) -> None:
        """Start every predicted confidence at ``prior`` instead of a random value.

        Common practice borrowed from later detectors (RetinaNet §4.1, YOLOv5), not from the
        YOLOv1 paper. YOLOv1's confidences are linear (no sigmoid), so the bias is the prior
        itself rather than its logit; the trainer calls this once before training.
        """
        s, n = self.cfg.grid_size, self.cfg.num_boxes
        bias = self.head.fc2.bias.view(s, s, self.cfg.cell_channels)  # (S, S, 5*num_boxes + K)
        bias[..., 4 : 5 * n : 5] = prior


def yolov1(num_classes: int = 20) -> YOLOv1:
    """The paper net: 448 px, S=7, 2 boxes per cell, 24 conv + 2 FC layers (271.7 M params)."""
    return YOLOv1(YOLOv1Config(num_classes=num_classes))


def yolov1_nano(num_classes: int = 20) -> YOLOv1:
    """A YOLOv1 that trains on a laptop CPU (0.8 M params): 128 px input, a 4x4 grid.

    The paper net's 20 backbone convs at a quarter to an eighth of their width, with 2 and 1
    repeated 1x1/3x3 pairs (instead of 4 and 2): 14 conv layers, then the two FC layers with 256
    hidden units (instead of 4096). Its last conv map is 4x4 = S, as the paper's is 7x7 = S.
    """
    # NOTE(paper): three changes so that a small network learns from scratch, without the week of
    # ImageNet pretraining of the paper's first 20 convs (§2.2):
    # - batch norm (YOLOv2 §2 "Batch Normalization");
    # - no detection convs (``head_strides=()``): the paper adds 4 convs to a pretrained backbone;
    #   at 128 px they would run on 4x4 and 2x2 maps, and from scratch they stall training;
    # - no dropout: 0.5 of 4096 units regularises 1470 outputs, 0.5 of 256 starves 272.
    # Measured on easy shape scenes, training accuracy of the class at the responsible cells after
    # 1,500 steps of 16 images (whole loss, AdamW 0.0005): 27 % with the paper's head, 99 % here.
    cfg = YOLOv1Config(
        num_classes=num_classes,
        grid_size=4,
        img_size=128,
        channels=(16, 32, 64, 128),
        depth=2,
        head_strides=(),
        hidden_channels=256,
        dropout=0.0,
        norm_layer=nn.BatchNorm2d,
    )
    return YOLOv1(cfg)


# --------------------------------------------------------------------------------------------
# Registration: YOLOv1's own loss and decoder, no anchors
# --------------------------------------------------------------------------------------------
def yolov1_head(spec: DetectorSpec, model: YOLOv1, num_classes: int, img_size: int, rule: str,
                anchors, loss_options: dict):
    """YOLOv1's loss (eq. 3) and decoder for ``model`` at ``img_size``."""
    if anchors is not None:
        raise ValueError("YOLOv1 has no anchors: leave anchors at None")
    if img_size % model.cfg.stride:  # 64 for the paper net, 32 for the nano
        raise ValueError(f"{spec.name} needs an img_size divisible by {model.cfg.stride}, "
                         f"got {img_size}")
    num_boxes = model.cfg.num_boxes
    criterion = YOLOv1Loss(img_size, num_boxes, **loss_options)
    decoder = partial(decode_yolov1, img_size=img_size, num_boxes=num_boxes)
    return criterion, decoder, None


def _sized(cfg: YOLOv1Config, img_size: int) -> YOLOv1:
    return YOLOv1(replace(cfg, img_size=img_size))


register(DetectorSpec(
    name="yolov1", make_model=lambda k, size: _sized(YOLOv1Config(num_classes=k), size),
    make_head=yolov1_head, img_size=448, rules={"single": None},
    description=yolov1.__doc__.splitlines()[0],
))
# Its sum-squared error through two FC layers wants a smaller step and no extra class weight:
# 60 s on the easy shapes (yolo_teach.data.EASY_SHAPES) gave mAP50 0.16 at lr 0.0005, 0.02 at
# 0.002, and 0.08 with 4x the class weight (benchmarks/README.md).
register(DetectorSpec(
    name="yolov1-nano", make_model=lambda k, size: _sized(yolov1_nano(k).cfg, size),
    make_head=yolov1_head, img_size=128, rules={"single": None},
    short_run={"lr": 0.0005, "class_gain_scale": 1.0},
    description=yolov1_nano.__doc__.splitlines()[0],
))
