r"""RefineDet (Zhang, Wen, Bian, Lei, Li, "Single-Shot Refinement Neural Network for Object
Detection", CVPR 2018), the VGG16 network of the official Caffe definition
``sfzhang15/RefineDet: examples/refinedet/VGG16_VOC2007_320.py`` (with ``VGGNetBody`` and
``CreateRefineDetHead`` of ``python/caffe/model_libs.py``).

RefineDet is a one-stage detector with a two-step regression. The **anchor refinement module**
(ARM) predicts, on four backbone maps, a binary objectness and a first box offset for every
default anchor (like an RPN). The **transfer connection blocks** (TCB) turn those maps into a
top-down feature pyramid (a deconvolved coarser level is added to each finer one, as in FPN).
The **object detection module** (ODM) predicts, on the TCB maps, K class scores and a second
offset, applied to the anchors *as refined by the ARM* (decoding and the loss live elsewhere).

Flow (``refinedet320_vgg16()``, 320 px; shapes for one level are ``(B, C, H, W)``)::

    image (B, 3, 320, 320)
      -> VGG16 conv1_1 .. conv5_3 with 2x2 max-pools, pool5 2x2/2, fc6 (3x3, dilation 3),
         fc7 (1x1), conv6_1 (1x1), conv6_2 (3x3/2):
         conv4_3 (B, 512, 40, 40), conv5_3 (B, 512, 20, 20), fc7 (B, 1024, 10, 10),
         conv6_2 (B, 512, 5, 5)                                     strides 8, 16, 32, 64
      -> L2Norm on conv4_3 (scale 10) and conv5_3 (scale 8)
      -> ARM: per level a 3x3 conv to 4A offsets and a 3x3 conv to 2A objectness scores
      -> TCB, top-down from conv6_2: P6 (B, 256, 5, 5) ... P3 (B, 256, 40, 40)
      -> ODM: per P level a 3x3 conv to 4A offsets and a 3x3 conv to K*A class scores

Output order (as the official ``Permute(0, 2, 3, 1)`` + ``Flatten`` + ``Concat``): level by
level (strides 8, 16, 32, 64), within a level location-major (row y, then column x), within a
location anchor-minor in :func:`refinedet_anchors`' order (ratios 1, 2, 1/2). At 320 px that is
N = (40² + 20² + 10² + 5²) x 3 = 6,375 anchors. ``K`` counts the background (class 0), as in
the official code: 21 for VOC, 81 for COCO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_refine_models
from yolo_teach.layers.refine import RefineOutput, flatten_levels, prior_boxes
from yolo_teach.losses.refinedet_loss import refinedet_rules

INPUT_SIZE = 320
STRIDES = (8, 16, 32, 64)  # conv4_3, conv5_3, fc7, conv6_2 (the official "steps")
MIN_SIZES = (32, 64, 128, 256)  # anchor side (pixels) of ratio 1 per level; no max_sizes
ASPECT_RATIOS = (1.0, 2.0, 0.5)  # w/h; official aspect_ratios [[2]] x 4 with flip=True
L2NORM_SCALES = (10.0, 8.0)  # official normalizations [10, 8, -1, -1]: conv4_3, conv5_3
TCB_CHANNELS = 256

# VGG16 conv widths per stage (Simonyan & Zisserman, configuration D); a 2x2/2 max-pool
# follows every stage, pool5 included (pitfall 14: not SSD's 3x3/1).
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


@dataclass(frozen=True)
class RefineDetConfig:
    """Sizes of a RefineDet VGG16 network; the defaults are VGG16_VOC2007_320.py."""

    num_classes: int = 21  # K, background included
    num_anchors: int = len(ASPECT_RATIOS)  # A per location
    tcb_channels: int = TCB_CHANNELS
    fc_channels: int = 1024  # fc6/fc7 of the "reduced" VGG16 (SSD's atrous VGG)
    fc6_dilation: int = 3  # VGGNetBody(dilated=False, reduced=True): dilation 3, pad 3


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with bias and 'same' padding (``dilation``), Caffe's ConvBNLayer
    with ``use_batchnorm=False``."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation,
                     dilation=dilation, bias=True)


class L2Norm(nn.Module):
    r"""Caffe's ``Normalize`` layer (``across_spatial=False, channel_shared=False``), ParseNet's
    L2 normalisation with a learnable scale per channel:

    .. math:: y_{c,i,j} = \gamma_c \, x_{c,i,j} / \sqrt{\textstyle\sum_{c'} x_{c',i,j}^2 + \epsilon}

    conv4_3 and conv5_3 have larger activations than the deeper maps; normalising them (with
    :math:`\gamma` initialised to 10 and 8) keeps the heads' inputs on one scale.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, scale: float, eps: float = 1e-10):
        super().__init__()
        self.eps = eps  # Caffe's Normalize default
        self.scale = nn.Parameter(torch.full((channels,), float(scale)))  # gamma, (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).add(self.eps).sqrt()  # (B, 1, H, W)
        return self.scale.view(1, -1, 1, 1) * x / norm  # (B, C, H, W)


class VGG16Backbone(nn.Module):
    """VGG16 as a fully convolutional network, plus RefineDet's extra stride-64 layers.

    conv1_1 .. conv5_3 (3x3, ReLU) with a 2x2/2 max-pool after each stage; fc6 becomes a 3x3
    conv with dilation 3 (padding 3) and fc7 a 1x1 conv (1024 channels each, the "reduced"
    VGG16); conv6_1 (1x1, 256) and conv6_2 (3x3/2, 512). Every conv has a bias and a ReLU,
    no batch norm (``use_batchnorm=False``).

    Shapes:
        (B, 3, H, W) -> conv4_3 (B, 512, H/8, W/8), conv5_3 (B, 512, H/16, W/16),
        fc7 (B, 1024, H/32, W/32), conv6_2 (B, 512, H/64, W/64)
    """

    out_channels = (512, 512, 1024, 512)

    def __init__(self, cfg: RefineDetConfig = RefineDetConfig()):
        super().__init__()
        relu = nn.ReLU(inplace=True)

        def stage(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for width in widths:
                layers += [conv3x3(in_channels, width), relu]
                in_channels = width
            return nn.Sequential(*layers)

        def pool() -> nn.MaxPool2d:
            # Caffe rounds pooled sizes up; ceil_mode=True does the same (at the multiples of
            # 64 that RefineDet.forward accepts, floor and ceil agree).
            return nn.MaxPool2d(2, stride=2, ceil_mode=True)

        # stage k ends with conv{k}_3 (or conv{k}_2); the pools sit between the stages
        self.stage1 = stage(3, VGG16_STAGES[0])  # conv1_1, conv1_2
        self.stage2 = nn.Sequential(pool(), stage(64, VGG16_STAGES[1]))  # pool1, conv2_x
        self.stage3 = nn.Sequential(pool(), stage(128, VGG16_STAGES[2]))  # pool2, conv3_x
        self.stage4 = nn.Sequential(pool(), stage(256, VGG16_STAGES[3]))  # pool3, conv4_x
        self.stage5 = nn.Sequential(pool(), stage(512, VGG16_STAGES[4]))  # pool4, conv5_x
        self.pool5 = pool()  # pitfall 14: 2x2/2, so fc7 is at stride 32
        self.fc6 = conv3x3(512, cfg.fc_channels, dilation=cfg.fc6_dilation)
        self.fc7 = nn.Conv2d(cfg.fc_channels, cfg.fc_channels, 1)
        self.conv6_1 = nn.Conv2d(cfg.fc_channels, 256, 1)
        self.conv6_2 = conv3x3(256, 512, stride=2)
        self.relu = relu

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stage3(self.stage2(self.stage1(images)))  # (B, 256, H/4, W/4)
        conv4_3 = self.stage4(x)  # (B, 512, H/8, W/8)
        conv5_3 = self.stage5(conv4_3)  # (B, 512, H/16, W/16)
        x = self.relu(self.fc6(self.pool5(conv5_3)))  # (B, 1024, H/32, W/32)
        fc7 = self.relu(self.fc7(x))  # (B, 1024, H/32, W/32)
        x = self.relu(self.conv6_1(fc7))  # (B, 256, H/32, W/32)
        conv6_2 = self.relu(self.conv6_2(x))  # (B, 512, H/64, W/64)
        return conv4_3, conv5_3, fc7, conv6_2


class TransferConnectionBlock(nn.Module):
    r"""One TCB (§3, Fig. 2): it turns an ARM feature map into an ODM feature map and, below
    the top level, adds the coarser level's TCB output:

    .. math:: P_l = \mathrm{ReLU}\bigl(\mathrm{conv}_3\bigl(\mathrm{ReLU}(\mathrm{conv}_2(
              \mathrm{ReLU}(\mathrm{conv}_1 x_l)) + \mathrm{deconv}(P_{l+1}))\bigr)\bigr)

    (official names TL{l}_1, TL{l}_2, P{l+1}-up, Elt{l}, P{l}). The deconvolution is 2x2
    stride 2 with a bias. At the top level (``top=True``, conv6_2) there is no coarser map:
    conv_2 is followed by its own ReLU.

    Shapes:
        x (B, C_in, H, W), coarser (B, C_out, H/2, W/2) or None -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int = TCB_CHANNELS, *, top: bool = False):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels)  # TL{l}_1
        self.conv2 = conv3x3(out_channels, out_channels)  # TL{l}_2
        self.upsample = None if top else nn.ConvTranspose2d(out_channels, out_channels, 2,
                                                            stride=2)  # P{l+1}-up
        self.conv3 = conv3x3(out_channels, out_channels)  # P{l}
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, coarser: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv2(self.relu(self.conv1(x)))  # (B, C_out, H, W)
        if self.upsample is not None:
            x = x + self.upsample(coarser)  # (B, C_out, H/2, W/2) -> (B, C_out, H, W)
        return self.relu(self.conv3(self.relu(x)))  # (B, C_out, H, W)


class MultiBoxHead(nn.Module):
    """SSD-style prediction layers, used twice: per level a 3x3 conv to ``4 A`` box offsets and
    a 3x3 conv to ``K A`` scores, flattened to one row per anchor in the official order (level,
    then location y, x, then anchor). The ARM uses ``num_classes=2`` (object or not), the ODM
    the dataset's ``K``.

    Shapes:
        [(B, C_l, H_l, W_l) for each level] -> loc (B, N, 4), conf (B, N, K),
        N = sum_l H_l W_l A
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.loc = nn.ModuleList(conv3x3(c, 4 * num_anchors) for c in in_channels)
        self.conf = nn.ModuleList(conv3x3(c, num_classes * num_anchors) for c in in_channels)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loc = flatten_levels([conv(x) for conv, x in zip(self.loc, features)], 4)  # (B, N, 4)
        conf = flatten_levels([conv(x) for conv, x in zip(self.conf, features)],
                              self.num_classes)  # (B, N, K)
        return loc, conf


class RefineDet(nn.Module):
    """The RefineDet detector: VGG16 backbone, L2Norm, ARM, TCBs, ODM.

    Shapes:
        (B, 3, H, W) -> :class:`RefineOutput` with N = sum over strides s of
        (H/s) (W/s) A; raw outputs in train and eval alike. H and W must be multiples of 64.
    """

    strides = STRIDES
    min_sizes = MIN_SIZES
    aspect_ratios = ASPECT_RATIOS

    def __init__(self, cfg: RefineDetConfig = RefineDetConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = VGG16Backbone(cfg)
        c4, c5, c7, c6 = self.backbone.out_channels  # conv4_3, conv5_3, fc7, conv6_2
        self.norm4_3 = L2Norm(c4, L2NORM_SCALES[0])
        self.norm5_3 = L2Norm(c5, L2NORM_SCALES[1])
        self.arm = MultiBoxHead(self.backbone.out_channels, cfg.num_anchors, 2)
        # TCBs, finest first; forward runs them top-down (P6 first)
        self.tcb = nn.ModuleList([
            TransferConnectionBlock(c4, cfg.tcb_channels),  # -> P3
            TransferConnectionBlock(c5, cfg.tcb_channels),  # -> P4
            TransferConnectionBlock(c7, cfg.tcb_channels),  # -> P5
            TransferConnectionBlock(c6, cfg.tcb_channels, top=True),  # -> P6
        ])
        self.odm = MultiBoxHead((cfg.tcb_channels,) * len(STRIDES), cfg.num_anchors,
                                cfg.num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """Caffe's ``xavier`` filler (uniform, bound sqrt(3 / fan_in)) for every (de)conv
        weight and zero biases, as ConvBNLayer / DeconvBNLayer set them; L2Norm scales keep
        10 and 8. (The official training starts VGG16 from ImageNet weights.)"""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel()  # Caffe: count / shape[0], conv and deconv alike
                bound = math.sqrt(3.0 / fan_in)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The maps the two modules read, finest first: the ARM's sources (conv4_3 and conv5_3
        L2-normalised, fc7, conv6_2) and the ODM's TCB pyramid (P3 .. P6)."""
        height, width = images.shape[-2:]
        if height % STRIDES[-1] or width % STRIDES[-1]:
            # each TCB adds a 2x deconvolved coarser map, so every level must be exactly twice
            # the next one (the official net only runs at 320 and 512)
            raise ValueError(f"RefineDet needs H and W multiples of {STRIDES[-1]}, "
                             f"got {height} x {width}")
        conv4_3, conv5_3, fc7, conv6_2 = self.backbone(images)  # strides 8, 16, 32, 64
        sources = [self.norm4_3(conv4_3), self.norm5_3(conv5_3), fc7, conv6_2]
        pyramid: list[torch.Tensor] = []
        coarser = None
        for tcb, x in zip(reversed(self.tcb), reversed(sources)):  # P6, P5, P4, P3
            coarser = tcb(x, coarser)  # (B, 256, H/s, W/s)
            pyramid.insert(0, coarser)
        return sources, pyramid

    def forward(self, images: torch.Tensor) -> RefineOutput:
        sources, pyramid = self.features(images)
        arm_loc, arm_conf = self.arm(sources)  # (B, N, 4), (B, N, 2)
        odm_loc, odm_conf = self.odm(pyramid)  # (B, N, 4), (B, N, K)
        return RefineOutput(arm_loc, arm_conf, odm_loc, odm_conf)

    def feature_sizes(self, img_size: int | tuple[int, int]) -> list:
        """The side of each level's map for an ``img_size`` input (``ceil(S / stride)``), finest
        first; ``(h, w)`` pairs for an ``(H, W)`` input."""
        if isinstance(img_size, int):
            return [math.ceil(img_size / s) for s in STRIDES]
        return [(math.ceil(img_size[0] / s), math.ceil(img_size[1] / s)) for s in STRIDES]

    def priors(self, img_size: int | tuple[int, int]) -> torch.Tensor:
        """The default anchors of an ``img_size`` input, one per output row:
        :func:`refinedet_anchors`."""
        return refinedet_anchors(img_size)


def refinedet_anchors(img_size: int | tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """RefineDet's default anchors (Caffe's ``PriorBox``), xyxy in pixels, not clipped.

    Per level (stride s, min size m; maps of ceil(H/s) x ceil(W/s) cells) and per cell
    (row i, column j) the centre is ((j + 0.5) s, (i + 0.5) s) and the A = 3 anchors are, for
    ratio r = w/h in (1, 2, 1/2), w = m sqrt(r) and h = m / sqrt(r). The order matches
    :class:`RefineDet`'s rows: level, then row, column, then ratio.

    Args:
        img_size: input size, an int or (H, W).

    Returns:
        (N, 4) float tensor, N = sum_l ceil(H/s_l) ceil(W/s_l) A (6,375 at 320 px).
    """
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    maps = [(math.ceil(height / s), math.ceil(width / s)) for s in STRIDES]
    return prior_boxes((height, width), maps, MIN_SIZES, ASPECT_RATIOS)  # (N, 4)


# ---- factories ---------------------------------------------------------------------------


def refinedet320_vgg16(num_classes: int = 21) -> RefineDet:
    """RefineDet320 with VGG16 (VGG16_VOC2007_320.py): 34,440,884 parameters with 21 classes
    (VOC, background included), 36,100,484 with 81 (COCO)."""
    return RefineDet(RefineDetConfig(num_classes=num_classes))


# ---- registration: RefineDet's own loss (ARM + ODM, OHEM) and the two-step decoder -----------
# the registered name takes K foreground classes and builds the network with K + 1
register_refine_models([("refinedet320", refinedet320_vgg16, INPUT_SIZE)], refinedet_rules())
