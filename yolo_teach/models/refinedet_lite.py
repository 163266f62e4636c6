r"""RefineDetLite (Chen, Liu, Zhang, Li, Yan, "RefineDetLite: A Lightweight One-stage Object
Detection Framework for CPU-only Devices", CVPRW 2020), the basic network of §3 (Res2NetLite72,
320 px; the training strategies of §4 live with the losses).

RefineDetLite keeps RefineDet's two-step design (:mod:`yolo_teach.models.refinedet`): an
**anchor refinement module** (ARM) predicts a binary objectness and a first offset for every
default anchor, a top-down **feature fusion** builds a pyramid, and the **object detection
module** (ODM) predicts the classes and a second offset, relative to the ARM-refined anchors.
What changes is the cost on a CPU (§3.2-3.3):

- the backbone is **Res2NetLite** (Table 1): a BatchNorm on the RGB input, a 3x3/2 conv and a
  3x3/2 max-pool (Stage0), then three stages of one plain downsampling bottleneck followed by
  Res2Blocks (3, 7, 3), with wide early maps (8c = 576 channels at stride 16 for c = 72) and
  every group convolution at g = 2, since depth-wise convolutions are slow on CPUs;
- every plain 3x3 conv of RefineDet's heads and TCBs becomes a residual-like **Light-head**
  (Fig. 3a: a bottleneck plus a 1x1 shortcut), so that the predictions are 1x1 convolutions.

Flow (``refinedet_lite72()``, 320 px; shapes for one level are ``(B, C, H, W)``)::

    image (B, 3, 320, 320)
      -> Stage0: InputNorm (BatchNorm on RGB), 3x3/2 conv, 3x3/2 max-pool (B, 32, 80, 80)
      -> Stage1: bottleneck /2, 3 Res2Blocks                              (B, 288, 40, 40)
      -> Stage2: bottleneck /2, 7 Res2Blocks                              (B, 576, 20, 20) *
      -> Stage3: bottleneck /2, 3 Res2Blocks                              (B, 1152, 10, 10) *
      -> extra1, extra2: bottleneck /2 each              (B, 512, 5, 5) *, (B, 512, 3, 3) *
      -> ARM on the * maps: per level a Light-head (-> 256) and 1x1 convs to 4A offsets and
         2A objectness logits                                             strides 16 .. 128
      -> light-head feature fusion, top-down from extra2: P (B, 256, 3, 3), (B, 256, 5, 5),
         (B, 256, 10, 10), (B, 256, 20, 20) (nearest upsampling + Light-heads)
      -> ODM: per P level a Light-head and 1x1 convs to 4A offsets and K*A class logits

Output order (:func:`~yolo_teach.layers.refine.flatten_levels`, RefineDet's): level by level
(finest first), within a level row y then column x, within a location the aspect ratios
(1, 2, 1/2) in :func:`~yolo_teach.layers.refine.prior_boxes`' order. At 320 px that is
N = (20² + 10² + 5² + 3²) x 3 = 1,602 anchors (§3.1: "{20x20, 10x10, 5x5, 3x3}"). ``K``
counts the background (class 0), as RefineDet's official code: 81 for COCO.

The paper's figures (Fig. 2, Fig. 3) are not in its text; every width and wiring they would
fix is a choice of ours, marked ``NOTE(paper)`` where it is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from yolo_teach.detectors import register_refine_models
from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.light_head import (  # LightHead: re-exported with the blocks
    LightFeatureFusion,
    LightHead,  # noqa: F401
    LightMultiBoxHead,
)
from yolo_teach.layers.refine import RefineOutput, halved_sizes, prior_boxes
from yolo_teach.layers.res2net import (  # ChannelAffine: re-exported with the blocks
    ChannelAffine,  # noqa: F401
    DownsampleBottleneck,
    InputNorm,
    Res2Block,
)
from yolo_teach.losses.refinedet_loss import refinedet_rules

INPUT_SIZE = 320  # §3.1: "we fixed the input resolution as 320 x 320"
NANO_INPUT_SIZE = 128  # the input size refinedet_lite_nano() is meant for
SOURCES = ("stage2", "stage3", "extra1", "extra2")  # §3.2: {576, 1152, 512, 512} for c = 72
STRIDES = (16, 32, 64, 128)  # of SOURCES: maps 20, 10, 5, 3 at 320 px (ceil at each halving)
# NOTE(paper): the anchor sizes are not given; RefineDet320's min sizes (one per level), with
# RefineDet's ratios (1, 2, 1/2) and no max sizes.
MIN_SIZES = (32.0, 64.0, 128.0, 256.0)
ASPECT_RATIOS = (1.0, 2.0, 0.5)
# p(object) at initialisation: OHEM trains on 1 positive per 3 negatives (init_bias)
PRIOR = 0.25
GROUPS = 2  # §3.2: "we employ maximal g = 2 ... for all group convolutions"
STEM_HALVINGS = 2  # Stage0: the 3x3/2 conv and the 3x3/2 max-pool (§3.2: "1/4 x 1/4")


@dataclass(frozen=True)
class RefineDetLiteConfig:
    """Sizes of a RefineDetLite network; the defaults are RefineDetLite with Res2NetLite72.

    ``sources`` names the backbone maps that feed the ARM, finest first: ``stage1`` ..
    ``stage3`` and ``extra1``, ``extra2``, ... (one per entry of ``extra_channels``).
    """

    num_classes: int = 81  # K, background included (class 0), as RefineDet's official code
    c: int = 72  # the width hyper-parameter of Res2NetLite (§3.2): Stage k has c 2^(k+1) maps
    stem_channels: int = 32  # §3.2: Stage0 "expands the feature dimension to 32"
    blocks: tuple[int, ...] = (3, 7, 3)  # Res2Blocks of Stage1..3 (§3.2)
    extra_channels: tuple[int, ...] = (512, 512)  # the two extra bottlenecks (§3.2)
    sources: tuple[str, ...] = SOURCES
    # NOTE(paper): D, the width of the Light-heads and of the fused pyramid, is not given;
    # RefineDet's 256 (its TCB width).
    head_channels: int = 256
    scales: int = 4  # s, the Res2Net splits (Res2Net's default; NOTE(paper): not given)
    groups: int = GROUPS
    min_sizes: tuple[float, ...] = MIN_SIZES
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    max_sizes: tuple[float, ...] | None = None  # SSD's second square anchor (PriorBox max_size)

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts the background, so >= 2; got {self.num_classes}")
        if len(self.sources) != len(self.min_sizes):
            raise ValueError(f"{len(self.sources)} sources but {len(self.min_sizes)} min sizes")
        if self.max_sizes is not None and len(self.max_sizes) != len(self.min_sizes):
            raise ValueError(f"{len(self.max_sizes)} max sizes for {len(self.min_sizes)} levels")

    @property
    def num_anchors(self) -> int:
        """A, the default anchors per location (one per aspect ratio, one more with
        ``max_sizes``)."""
        return len(self.aspect_ratios) + (self.max_sizes is not None)


# ---- backbone: Res2NetLite (§3.2, Table 1); its blocks are in yolo_teach/layers/res2net.py --


class Res2NetLite(nn.Module):
    """The backbone of Table 1, without its classification Stage4.

    Stage0 (InputNorm, 3x3/2 conv to ``stem_channels``, 3x3/2 max-pool) quarters the input;
    Stage k = 1, 2, 3 is a :class:`DownsampleBottleneck` to ``c 2^(k+1)`` channels followed by
    ``blocks[k-1]`` :class:`Res2Block`; each of ``extra_channels`` adds one more bottleneck.

    ``forward`` returns every map by name (``stage1`` .. ``stage3``, ``extra1`` ..); the
    detector picks its sources. ``out_channels`` and ``halvings`` (the stride is
    ``2 ** halvings``) are dictionaries with the same keys.

    Shapes (c = 72, 320 px):
        (B, 3, H, W) -> stage1 (B, 288, H/8, W/8), stage2 (B, 576, H/16, W/16),
        stage3 (B, 1152, H/32, W/32), extra1 (B, 512, H/64, W/64), extra2 (B, 512, H/128, W/128)
    """

    def __init__(self, cfg: RefineDetLiteConfig):
        super().__init__()
        # NOTE(paper): Table 1 lists "BatchNorm, Convolution 3x3 stride 2, Maxpooling 3x3
        # stride 2"; the conv has its own BatchNorm and ReLU (as every conv here) and the pool
        # pads by 1, so each halving is ceil(H / 2).
        self.stem = nn.Sequential(
            InputNorm(3),
            ConvBNAct(3, cfg.stem_channels, 3, stride=2, act_layer=nn.ReLU),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        # NOTE(paper): "after each stage ... the dimension is doubled" and Stage2, Stage3 have
        # 576 and 1152 maps for c = 72 (§3.2), so Stage k has c 2^(k+1): 4c, 8c, 16c. Stage4
        # (global pooling and a 1x1 conv) only classifies ImageNet and is left out.
        self.stages = nn.ModuleDict()
        self.out_channels: dict[str, int] = {}
        self.halvings: dict[str, int] = {}
        in_channels = cfg.stem_channels
        for k, depth in enumerate(cfg.blocks, start=1):
            out_channels = cfg.c * 2 ** (k + 1)
            self._add(f"stage{k}", nn.Sequential(
                DownsampleBottleneck(in_channels, out_channels, cfg.groups),
                *(Res2Block(out_channels, cfg.scales, cfg.groups) for _ in range(depth))),
                out_channels)
            in_channels = out_channels
        # NOTE(paper): the two extra layers are "extra bottleneck modules as shown in Fig. 2(a)"
        # (§3.2), so ours are the stage's downsampling bottleneck, 512 channels each.
        for j, out_channels in enumerate(cfg.extra_channels, start=1):
            self._add(f"extra{j}", DownsampleBottleneck(in_channels, out_channels, cfg.groups),
                      out_channels)
            in_channels = out_channels

    def _add(self, name: str, layer: nn.Module, out_channels: int) -> None:
        self.stages[name] = layer
        self.out_channels[name] = out_channels
        self.halvings[name] = STEM_HALVINGS + len(self.halvings) + 1

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(images)  # (B, 32, H/4, W/4)
        maps = {}
        for name, stage in self.stages.items():  # stage1 .. stage3, extra1 ..
            x = stage(x)  # (B, out_channels[name], H/2^h, W/2^h), h = halvings[name]
            maps[name] = x
        return maps


# ---- head: the Light-head blocks (§3.3, Fig. 3) are in yolo_teach/layers/light_head.py --


# ---- detector -----------------------------------------------------------------------------


class RefineDetLite(nn.Module):
    """The RefineDetLite detector: Res2NetLite, ARM, Light-head feature fusion, ODM.

    Any input size works (the fusion upsamples to each finer map's size); ``priors(img_size)``
    gives the default anchors of the rows.

    Shapes:
        (B, 3, H, W) -> :class:`~yolo_teach.layers.refine.RefineOutput` with
        N = sum_l h_l w_l A over the sources' map sizes (:meth:`feature_sizes`); raw outputs in
        train and eval alike.
    """

    strides = STRIDES  # nominal (2 ** halvings); the instance's come from its config
    min_sizes = MIN_SIZES
    aspect_ratios = ASPECT_RATIOS

    def __init__(self, cfg: RefineDetLiteConfig = RefineDetLiteConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = Res2NetLite(cfg)
        unknown = [name for name in cfg.sources if name not in self.backbone.stages]
        if unknown:
            raise ValueError(f"unknown sources {unknown}; the backbone has "
                             f"{list(self.backbone.stages)}")
        halvings = [self.backbone.halvings[name] for name in cfg.sources]
        if halvings != sorted(set(halvings)):
            raise ValueError(f"sources must be distinct and finest first, got {cfg.sources}")
        self.strides = tuple(2 ** h for h in halvings)
        self.min_sizes, self.aspect_ratios = cfg.min_sizes, cfg.aspect_ratios
        channels = tuple(self.backbone.out_channels[name] for name in cfg.sources)
        levels, width = len(channels), cfg.head_channels
        self.arm = LightMultiBoxHead(channels, width, cfg.num_anchors, 2, cfg.groups)
        self.fusion = LightFeatureFusion(channels, width, cfg.groups)
        self.odm = LightMultiBoxHead((width,) * levels, width, cfg.num_anchors, cfg.num_classes,
                                     cfg.groups)
        self.init_weights()
        self.init_bias(PRIOR)

    def init_weights(self) -> None:
        """He initialisation (normal, fan_out, ReLU gain) for every conv weight, zero biases;
        BatchNorms keep PyTorch's defaults (gamma 1, beta 0). The 1x1 prediction convs of the
        ARM and the ODM get RetinaNet's N(0, 0.01^2) weights instead (§4.1 of Lin et al.).

        NOTE(paper): the paper is silent. He initialisation is torchvision's ResNet one. On the
        prediction convs it would give logits of standard deviation ~5-10 at init (fan_out is
        only 4A or KA), which swamps :meth:`init_bias`: p(object) would average ~0.3, not 0.01,
        and the offsets exp(~5) box scales; with std 0.01 the prior holds.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in (self.arm, self.odm):
            for conv in (*head.loc, *head.conf):
                nn.init.normal_(conv.weight, std=0.01)

    @torch.no_grad()
    def init_bias(self, prior: float = PRIOR) -> None:
        r"""Start every anchor as background with probability :math:`1 - \pi`.

        ARM (softmax over [background, object]): background logit
        :math:`\log((1 - \pi) / \pi)`, object 0, so p(object) = :math:`\pi`. ODM (softmax over
        K classes, background first): background logit
        :math:`b = \log(K_{fg} (1 - \pi) / \pi)` with :math:`K_{fg} = K - 1` and foreground
        logits 0, so p(background) = :math:`e^b / (e^b + K_{fg}) = 1 - \pi` and each class
        :math:`\pi / K_{fg}`.
        NOTE(paper): RetinaNet's prior initialisation (§4.1), adapted to a softmax, at
        :data:`PRIOR` = 0.25; the paper is silent (the official RefineDet starts from zero
        biases, p = 0.5). Not RetinaNet's 0.01: that puts p(background) at 0.99, the threshold
        of negative anchor filtering, and a quarter of the anchors of a fresh network would be
        filtered by noise.
        """
        foreground = self.cfg.num_classes - 1  # K_fg
        for conv in self.arm.conf:
            bias = conv.bias.view(self.cfg.num_anchors, 2)  # (A, 2)
            bias[:, 0] = math.log((1.0 - prior) / prior)
            bias[:, 1] = 0.0
        for conv in self.odm.conf:
            bias = conv.bias.view(self.cfg.num_anchors, self.cfg.num_classes)  # (A, K)
            bias[:, 0] = math.log(foreground * (1.0 - prior) / prior)
            bias[:, 1:] = 0.0

    def features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The maps the two modules read, finest first: the ARM's sources (``cfg.sources`` of
        the backbone) and the ODM's fused pyramid."""
        maps = self.backbone(images)  # {name: (B, C, H/2^h, W/2^h)}
        sources = [maps[name] for name in self.cfg.sources]  # finest first
        return sources, self.fusion(sources)  # pyramid: [(B, D, H_l, W_l)], finest first

    def forward(self, images: torch.Tensor) -> RefineOutput:
        sources, pyramid = self.features(images)
        arm_loc, arm_conf = self.arm(sources)  # (B, N, 4), (B, N, 2)
        odm_loc, odm_conf = self.odm(pyramid)  # (B, N, 4), (B, N, K)
        return RefineOutput(arm_loc, arm_conf, odm_loc, odm_conf)

    def feature_sizes(self, img_size: int | tuple[int, int]) -> list[int] | list[tuple[int, int]]:
        """The side of each source map for an ``img_size`` input, finest first: every halving
        is ``ceil(size / 2)`` (:func:`~yolo_teach.layers.refine.halved_sizes`); 2 for Stage0,
        one per stage or extra. ``[20, 10, 5, 3]`` at 320 px; ``(h, w)`` pairs for an
        ``(H, W)`` input."""
        halvings = [self.backbone.halvings[name] for name in self.cfg.sources]
        if isinstance(img_size, int):
            sizes = halved_sizes(img_size, max(halvings))
            return [sizes[h - 1] for h in halvings]
        heights, widths = (halved_sizes(side, max(halvings)) for side in img_size)
        return [(heights[h - 1], widths[h - 1]) for h in halvings]

    def priors(self, img_size: int | tuple[int, int]) -> torch.Tensor:
        """The default anchors of an ``img_size`` input, one per output row, ``xyxy`` pixels:
        :func:`~yolo_teach.layers.refine.prior_boxes` on :meth:`feature_sizes`. Shape (N, 4)."""
        return prior_boxes(img_size, self.feature_sizes(img_size), self.cfg.min_sizes,
                           self.cfg.aspect_ratios, self.cfg.max_sizes)  # (N, 4)


# ---- factories (num_classes counts the background) ---------------------------------------


def refinedet_lite72(num_classes: int = 81) -> RefineDetLite:
    """RefineDetLite with Res2NetLite72 at 320 px (§3; 8.56 M params, 3.57 GFLOPs, 81 classes).

    ``num_classes`` counts the background: 81 for COCO (8,557,248 parameters, 3.575 GFLOPs =
    2 x conv MACs at 320 px; our design, the paper gives no count), 21 for VOC.
    """
    return RefineDetLite(RefineDetLiteConfig(num_classes=num_classes))


def refinedet_lite_nano(num_classes: int = 8) -> RefineDetLite:
    """A RefineDetLite for a laptop CPU at 128 px: c = 16, maps 16, 8, 4, 2 (0.33 M params).

    ``num_classes`` counts the background (8 = 7 classes + background: 325,318 parameters,
    0.040 GFLOPs at 128 px). NOTE(paper): not in the paper, a size of ours. Stage1 becomes a
    source (as RefineDet's stride-8 level) because at 128 px Stage2 is only 8 x 8; one extra
    layer. Anchors of 2 strides (16 .. 128 px) plus SSD's second square (``max_sizes``), 4 per
    location: on the shapes data (boxes of 9-62 px, 5th-95th percentile) 79 % of the boxes then
    have an anchor at IoU >= 0.5 (4.2 positives per box), against 50 % (0.9) with RefineDet's 3
    anchors of 1.5 strides; measured mAP in ``benchmarks/README.md``.
    """
    return RefineDetLite(RefineDetLiteConfig(
        num_classes=num_classes, c=16, stem_channels=16, blocks=(1, 2, 1),
        extra_channels=(128,), sources=("stage1", "stage2", "stage3", "extra1"),
        head_channels=64, min_sizes=(16.0, 32.0, 64.0, 128.0),
        max_sizes=(32.0, 64.0, 128.0, 256.0)))


# ---- registration: RefineDet's loss (basic) or RefineDetLite++'s (advanced), two-step decoder
# the registered names take K foreground classes and build the network with K + 1
register_refine_models([("refinedet-lite72", refinedet_lite72, INPUT_SIZE),
                        ("refinedet-lite-nano", refinedet_lite_nano, NANO_INPUT_SIZE)],
                       refinedet_rules())
