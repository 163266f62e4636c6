"""The improved YOLOX of seed 004: "Research on Small Target Detection Algorithm based on
Improved YOLOX" (Meng, Chu, Zhang & Xi).

Three changes to YOLOX, each a switch of :class:`YOLOXImprovedConfig` so that the ablation of
the paper's Table 3 is one config apiece:

1. **CBAM-CSP** (§2.1, eq. 1-4, Fig. 5-6, ``cbam``): a CBAM behind the CSP layer of every
   backbone stage dark2-dark5 ("a total of 4 attention modules") and behind each of the four
   CSP2_1 layers of the path fusion (§2.2 1), "CBAM-CSP2_1"): 8 CBAMs in all.
2. **Feature fusion with a non-local block** (§2.2 2), eq. 5-7, ``nonlocal_fusion``): after
   the PAFPN, the three maps are averaged at stride 16, refined by an embedded-Gaussian
   non-local block and added back to each level
   (:class:`~yolo_teach.layers.NonLocalFusion`).
3. **CIoU loss** (§2.3, eq. 9-11): the registered detectors train with
   ``YOLOXLoss(box_loss="ciou")`` instead of YOLOX's :math:`1 - \\text{IoU}^2`.

The head is YOLOX's decoupled anchor-free head, unchanged (§2.3).

Flow (``yolox_improved_l()``, 640 px; the paper's Tables 1-3 use YOLOX-L)::

    image (B, 3, 640, 640)
      -> CSPDarknet, CBAM after each stage's CSP layer:
         dark3 (B, 256, 80, 80), dark4 (B, 512, 40, 40), dark5 (B, 1024, 20, 20)
      -> PAFPN, CBAM after each of its 4 CSP layers -> (B, 256|512|1024, H/s, W/s)
      -> fusion: mean at (B, 512, 40, 40) (eq. 5), non-local (eq. 6-7), added back to each
      -> decoupled head -> 3 maps (B, 4 + 1 + K, H/s, W/s), s = 8, 16, 32

Both switches off, the network is YOLOX's, parameter for parameter (tests). Seed 004 gives no
parameter or FLOP counts; the tests check the factories against YOLOX's official counts plus
the hand-counted CBAMs and fusion. Shape comments give the channels of the L model.
NOTE(paper): seed 004 names the neck's CBAM both under CBAM-CSP (§2.1 "Backbone and Neck") and
under MFF (§2.2); here ``cbam`` switches all eight and ``nonlocal_fusion`` only the feature
fusion operation, so the two switches never overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from yolo_teach.decode import decode_anchor_free
from yolo_teach.layers.attention import CBAM
from yolo_teach.layers.conv import set_batch_norm
from yolo_teach.layers.cspdarknet import CSPDarknet
from yolo_teach.layers.heads import DecoupledHead
from yolo_teach.layers.nonlocal_block import NonLocalFusion
from yolo_teach.layers.pan import PANet
from yolo_teach.losses.yolox_loss import YOLOXLoss
from yolo_teach.registry import DetectorSpec, register

STRIDES = (8, 16, 32)  # output order of YOLOXImproved.forward
INPUT_SIZE = 640  # seed 004 §3.2: "adjust the size of the input image to 640"
CPU_NANO_INPUT_SIZE = 128  # the input size yolox_improved_cpu_nano() is meant for


@dataclass(frozen=True)
class YOLOXImprovedConfig:
    """Sizes and switches of the improved YOLOX; the defaults are the L model, all changes on.

    The sizes are YOLOX's (official ``yolox_base.py``: ``depth``, ``width`` multipliers,
    ``depthwise`` for Nano); the switches are seed 004's changes to the network.
    """

    num_classes: int = 80  # K
    depth: float = 1.0
    width: float = 1.0
    depthwise: bool = False
    stem_channels: int = 64
    channels: tuple[int, int, int] = (256, 512, 1024)
    head_channels: int = 256
    spp_kernel_sizes: tuple[int, ...] = (5, 9, 13)
    act_layer: type[nn.Module] = nn.SiLU
    cbam: bool = True  # §2.1: CBAM-CSP in the backbone (4) and the neck (4)
    cbam_reduction: int = 16  # r of the channel MLP (CBAM's default; seed 004 gives none)
    # NOTE(paper): eq. 3-4 have no BatchNorm after the 7x7 conv (the official CBAM code has one)
    cbam_spatial_bn: bool = False
    nonlocal_fusion: bool = True  # §2.2 2): the feature fusion operation, eq. 5-7
    nonlocal_reduction: int = 2  # C' = C / 2 in theta, phi, g (Wang et al.; seed 004 gives none)


class YOLOXImproved(nn.Module):
    """Seed 004's improved YOLOX: CBAM-CSP backbone and PAFPN, non-local fusion, decoupled head.

    Args:
        cfg: sizes and switches; ``YOLOXImprovedConfig()`` is the improved YOLOX-L.

    Shapes:
        (B, 3, H, W) -> [(B, 4 + 1 + K, H/s, W/s) for s in (8, 16, 32)], raw outputs.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOXImprovedConfig = YOLOXImprovedConfig()):
        super().__init__()
        self.cfg = cfg
        w, act = cfg.width, cfg.act_layer
        channels = tuple(int(c * w) for c in cfg.channels)
        cbam: Callable[[int], nn.Module] | None = partial(
            CBAM, reduction=cfg.cbam_reduction, spatial_bn=cfg.cbam_spatial_bn) if cfg.cbam else None
        # §2.1: CBAM-CSP1_X, a CBAM behind the CSP layer of dark2, dark3, dark4 and dark5
        self.backbone = CSPDarknet(cfg.depth, w, cfg.depthwise, cfg.stem_channels,
                                   cfg.spp_kernel_sizes, act, attention_layer=cbam)
        # §2.2 1): every CSP2_1 of the path fusion becomes CBAM-CSP2_1
        self.neck = PANet(channels, round(3 * cfg.depth), cfg.depthwise, act,
                          attention_layer=cbam)
        # §2.2 2): scale, integrate (eq. 5), refine (eq. 6-7) and disperse, at stride 16
        self.fusion = NonLocalFusion(channels, 1, cfg.nonlocal_reduction, act) \
            if cfg.nonlocal_fusion else None
        self.head = DecoupledHead(channels, cfg.num_classes, int(cfg.head_channels * w),
                                  cfg.depthwise, act)
        set_batch_norm(self)  # official yolox_base.get_model -> init_yolo
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] % 32 or \
                images.shape[-2] % 32:
            raise ValueError(f"{type(self).__name__} expects images (B, 3, H, W) with H and W "
                             f"multiples of 32, got {tuple(images.shape)}")
        dark3, dark4, dark5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(dark3, dark4, dark5)  # [(B, 256, H/8, W/8), ..., (B, 1024, ...)]
        if self.fusion is not None:
            features = self.fusion(features)  # the same shapes, fused through stride 16
        return self.head(features)  # [(B, 4 + 1 + K, H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(obj) and sigmoid(cls) at ``prior`` (official ``initialize_biases``)."""
        self.head.init_bias(prior)


# ---- factories: YOLOX's sizes (official exps/default/yolox_*.py) with seed 004's changes ----
def yolox_improved_s(num_classes: int = 80, **switches) -> YOLOXImproved:
    """Improved YOLOX-S (0.33, 0.50), the worked example of seed 004 §2.1, 640 px.

    9.53 M params and 28.84 GFLOPs at 640 (conv and matmul 2 x MACs; YOLOX-S: 8.97 M, 26.69).
    """
    return YOLOXImproved(YOLOXImprovedConfig(num_classes=num_classes, depth=0.33, width=0.50,
                                             **switches))


def yolox_improved_l(num_classes: int = 80, **switches) -> YOLOXImproved:
    """Improved YOLOX-L (1.0, 1.0), the model of seed 004's Tables 1-3, 640 px.

    56.43 M params and 161.28 GFLOPs at 640 (YOLOX-L: 54.21 M, 155.29).
    """
    return YOLOXImproved(YOLOXImprovedConfig(num_classes=num_classes, **switches))


def yolox_improved_cpu_nano(num_classes: int = 80, **switches) -> YOLOXImproved:
    """Improved YOLOX on YOLOX-Nano's widths (0.33, 0.25, depth-wise), for 128 px on a CPU.

    1.04 M params with 7 classes and 0.106 GFLOPs at 128 px (yolox-cpu-nano: 0.90 M, 0.096);
    the 8 CBAMs add 25.6 k params, the fusion 116 k.
    """
    return YOLOXImproved(YOLOXImprovedConfig(num_classes=num_classes, depth=0.33, width=0.25,
                                             depthwise=True, **switches))


# ---- registration: YOLOX's loss with CIoU (eq. 9-11), SimOTA, the anchor-free decoder -------
def yolox_improved_head(spec: DetectorSpec, model: YOLOXImproved, num_classes: int,
                        img_size: int, rule: str, anchors, loss_options: dict):
    """``YOLOXLoss(box_loss="ciou")`` (§2.3; ``loss_options`` may override it) and the
    anchor-free decoder of ``model``."""
    if anchors is not None:
        raise ValueError(f"{spec.name} is anchor-free: leave anchors at None")
    criterion = YOLOXLoss(model.strides, num_classes, **{"box_loss": "ciou", **loss_options})
    return criterion, partial(decode_anchor_free, strides=model.strides), None


for _name, _factory, _size in (
        ("yolox-improved-s", yolox_improved_s, INPUT_SIZE),
        ("yolox-improved-l", yolox_improved_l, INPUT_SIZE),
        ("yolox-improved-cpu-nano", yolox_improved_cpu_nano, CPU_NANO_INPUT_SIZE)):
    register(DetectorSpec(  # short_run: none, as yolox-cpu-nano's registration (keep in step)
        name=_name, make_model=lambda k, size, f=_factory: f(k), make_head=yolox_improved_head,
        img_size=_size, rules={"simota": None}, default_rule="simota",
        description=_factory.__doc__.splitlines()[0]))
