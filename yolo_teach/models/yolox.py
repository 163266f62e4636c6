"""YOLOX: "YOLOX: Exceeding YOLO Series in 2021" (Ge, Liu, Wang, Li & Sun, arXiv 2107.08430).

YOLOX keeps YOLOv5's body - a Focus stem, CSPDarknet with CSP layers (YOLOv5's C3), an SPP
bottleneck and a PAFPN neck - and changes the head (§2.1): it is **anchor-free** (one
prediction per cell, boxes as offsets from the cell and log-sizes in strides) and **decoupled**
(classification and regression in separate branches, :class:`~yolo_teach.layers.DecoupledHead`).
Its assigner, SimOTA (§2.1 "SimOTA"), and its loss live with the losses, not here.

Flow (``yolox_l()``, official ``exps/default/yolox_l.py``, 640 px)::

    image (B, 3, 640, 640)
      -> CSPDarknet: Focus stem (B, 64, 320, 320), dark2 (B, 128, 160, 160),
         dark3 (B, 256, 80, 80), dark4 (B, 512, 40, 40), dark5 with SPP (B, 1024, 20, 20)
      -> PAFPN: top-down to stride 8, bottom-up back to 32 -> (B, 256|512|1024, H/s, W/s)
      -> decoupled head -> 3 maps (B, 4 + 1 + K, H/s, W/s), s = 8, 16, 32

Output order: strides 8, 16, 32 (finest first), channels ``[x, y, w, h, obj, classes * K]``,
raw, as the official head's training output. :func:`decode_outputs` turns them into the
official eval output, (B, 8400, 85) at 640 px with 80 classes.

Sizes: one class, scaled by ``depth`` and ``width`` multipliers (official ``exps/default``):
every width is ``int(c * width)`` and every CSP layer has ``round(n * depth)`` bottlenecks
(the backbone's at least 1) - not YOLOv5's ``make_divisible(c * width, 8)``.
Counts follow official code @6ddff482 (shared/reference/architectures.md). The README's
GFLOPs (26.8 for S) are thop's: conv plus batch norm; ``count_flops`` gives conv only (26.69).
Shape comments give the channels of YOLOX-L.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from yolo_teach.boxes import box_convert
from yolo_teach.decode import decode_anchor_free
from yolo_teach.layers.conv import set_batch_norm
from yolo_teach.layers.cspdarknet import CSPDarknet
from yolo_teach.layers.cspdarknet import Focus as Focus  # re-exported: the blocks live in layers
from yolo_teach.layers.cspdarknet import SPPBottleneck as SPPBottleneck
from yolo_teach.layers.heads import DecoupledHead
from yolo_teach.layers.pan import PANet
from yolo_teach.losses.yolox_loss import YOLOXLoss
from yolo_teach.registry import DetectorSpec, register

STRIDES = (8, 16, 32)  # output order of YOLOX.forward
INPUT_SIZE = 640  # exps/default/yolox_{s,m,l,x}.py; tiny and nano use 416
CPU_NANO_INPUT_SIZE = 128  # the input size yolox_cpu_nano() is meant for
CPU_NANO_WIDE_INPUT_SIZE = 320  # yolox_cpu_nano_wide(): the 128-px scenes upsampled 2.5x


@dataclass(frozen=True)
class YOLOXConfig:
    """Sizes of a YOLOX network; the defaults are YOLOX-L (official ``yolox_base.py``).

    ``depth`` and ``width`` are the official ``dep_mul`` and ``wid_mul``; ``depthwise``
    makes the 3x3 convs after the stem :class:`~yolo_teach.layers.DWConv` (YOLOX-Nano).
    ``channels`` are the backbone widths at strides 8, 16, 32 before scaling.
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


class YOLOX(nn.Module):
    """The YOLOX detector: CSPDarknet, PAFPN, decoupled anchor-free head.

    Args:
        cfg: network sizes; ``YOLOXConfig()`` is YOLOX-L.

    Shapes:
        (B, 3, H, W) -> [(B, 4 + 1 + K, H/s, W/s) for s in (8, 16, 32)], raw outputs.
    """

    strides = STRIDES

    def __init__(self, cfg: YOLOXConfig = YOLOXConfig()):
        super().__init__()
        self.cfg = cfg
        w, act = cfg.width, cfg.act_layer
        channels = tuple(int(c * w) for c in cfg.channels)
        self.backbone = CSPDarknet(cfg.depth, w, cfg.depthwise, cfg.stem_channels,
                                   cfg.spp_kernel_sizes, act)
        # NOTE(paper): the official YOLOPAFPN owns the backbone (model.backbone.backbone);
        # here backbone, neck and head are siblings, as in the package's other models.
        # official yolo_pafpn.YOLOPAFPN: PANet with round(3 d) bottlenecks per C3
        self.neck = PANet(channels, round(3 * cfg.depth), cfg.depthwise, act)
        self.head = DecoupledHead(channels, cfg.num_classes, int(cfg.head_channels * w),
                                  cfg.depthwise, act)
        set_batch_norm(self)  # official yolox_base.get_model -> init_yolo
        self.init_bias()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        dark3, dark4, dark5 = self.backbone(images)  # strides 8, 16, 32
        features = self.neck(dark3, dark4, dark5)  # [(B, 256, H/8, W/8), ..., (B, 1024, ...)]
        return self.head(features)  # [(B, 4 + 1 + K, H/s, W/s) for s in (8, 16, 32)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(obj) and sigmoid(cls) at ``prior`` (official ``initialize_biases``)."""
        self.head.init_bias(prior)


def decode_outputs(outputs: list[torch.Tensor], strides: tuple[int, ...] = STRIDES) -> torch.Tensor:
    r"""Raw maps to the official eval output (``YOLOXHead.decode_outputs``), one row per cell.

    .. math:: (b_x, b_y) = (t_x + c_x, t_y + c_y)\,s, \quad (b_w, b_h) = e^{(t_w, t_h)}\,s,
              \quad \text{obj}, \text{cls} = \sigma(\cdot)

    with :math:`(c_x, c_y)` the cell's column and row and :math:`s` the stride: boxes ``cxcywh``
    in pixels, scores in [0, 1]. Rows run over scales (finest first), then cells row-major.

    Shapes:
        [(B, 4 + 1 + K, H_i, W_i)] -> (B, sum_i H_i W_i, 4 + 1 + K), (B, 8400, 85) at 640 px
    """
    rows = decode_anchor_free(outputs, strides)  # (B, N, 4 + 1 + K), boxes xyxy
    return torch.cat([box_convert(rows[..., :4], "xyxy", "cxcywh"), rows[..., 4:]], dim=-1)


# ---- factories: official exps/default/yolox_*.py (depth, width) ----------------------------
def yolox_s(num_classes: int = 80) -> YOLOX:
    """YOLOX-S (0.33, 0.50): 8.97 M params, 26.8 GFLOPs at 640 (official README: 9.0M / 26.8)."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=0.33, width=0.50))


def yolox_m(num_classes: int = 80) -> YOLOX:
    """YOLOX-M (0.67, 0.75): 25.3 M params, 73.8 GFLOPs at 640."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=0.67, width=0.75))


def yolox_l(num_classes: int = 80) -> YOLOX:
    """YOLOX-L (1.0, 1.0): 54.2 M params, 155.6 GFLOPs at 640."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=1.0, width=1.0))


def yolox_x(num_classes: int = 80) -> YOLOX:
    """YOLOX-X (1.33, 1.25): 99.1 M params, 281.9 GFLOPs at 640."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=1.33, width=1.25))


def yolox_tiny(num_classes: int = 80) -> YOLOX:
    """YOLOX-Tiny (0.33, 0.375), trained at 416 px (official README: 5.06 M / 6.45 GFLOPs)."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=0.33, width=0.375))


def yolox_nano(num_classes: int = 80) -> YOLOX:
    """YOLOX-Nano (0.33, 0.25, depth-wise convs), 416 px (README: 0.91 M / 1.08 GFLOPs)."""
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=0.33, width=0.25, depthwise=True))


def yolox_cpu_nano(num_classes: int = 80) -> YOLOX:
    """YOLOX-Nano's network, meant for 128 px images on a laptop CPU (0.90 M params with 7
    classes, 0.096 GFLOPs at 128 px).

    The official Nano is already the size of the package's other nanos, so it is kept as is
    (depth 0.33, width 0.25, depth-wise convs). Measured as forward+backward, batch 8, 128 px,
    2 threads, 7 classes: 83 ms per step against 58 ms for ``yolov4_nano``; the same widths with
    plain 3x3 convs (2.2 M params, 0.27 GFLOPs) took 85 ms, so on a CPU at this size depth-wise
    convs save parameters, not time.
    """
    return yolox_nano(num_classes)


def yolox_cpu_nano_wide(num_classes: int = 80) -> YOLOX:
    """YOLOX-Nano's depth-wise network at YOLOX-Tiny's widths, meant for 320 px on a CPU (1.99 M
    params with 7 classes, 1.26 GFLOPs at 320 px: about YOLOX-Nano's 1.08 at its 416 px).

    NOTE(paper): not an official size. Depth 0.33 and depth-wise convs as the Nano, width 0.375
    as the Tiny (``exps/default/yolox_tiny.py``). Measured on the shapes scenes
    (``benchmarks/yolox_nano_variants.py``, 2,000 steps of 8 images, SimOTA's dynamic k from the
    top 20 IoUs, benchmarks/README.md sessions 12-13): the wider layers gain over the nano at
    256 px on every seed, and this network gains again from 320 px where the nano does not
    (mAP50 0.836 +- 0.007 over seeds 0-2 at 320 px; the nano 0.729 +- 0.025 at 256 px); plain
    3x3 convs at these widths learn far more slowly.
    """
    return YOLOX(YOLOXConfig(num_classes=num_classes, depth=0.33, width=0.375, depthwise=True))


# ---- registration: YOLOX's own loss (SimOTA) and the anchor-free decoder --------------------
def yolox_head(spec: DetectorSpec, model: YOLOX, num_classes: int, img_size: int, rule: str,
               anchors, loss_options: dict):
    """:class:`~yolo_teach.losses.yolox_loss.YOLOXLoss` and the anchor-free decoder of ``model``."""
    if anchors is not None:
        raise ValueError(f"{spec.name} is anchor-free: leave anchors at None")
    criterion = YOLOXLoss(model.strides, num_classes, **loss_options)
    return criterion, partial(decode_anchor_free, strides=model.strides), None


for _name, _factory, _size in (("yolox-s", yolox_s, 640), ("yolox-m", yolox_m, 640),
                               ("yolox-l", yolox_l, 640), ("yolox-x", yolox_x, 640),
                               ("yolox-tiny", yolox_tiny, 416), ("yolox-nano", yolox_nano, 416),
                               ("yolox-cpu-nano", yolox_cpu_nano, CPU_NANO_INPUT_SIZE)):
    register(DetectorSpec(
        name=_name, make_model=lambda k, size, f=_factory: f(k), make_head=yolox_head,
        img_size=_size, rules={"simota": None}, default_rule="simota",
        description=_factory.__doc__.splitlines()[0]))
register(DetectorSpec(  # its recipe: short_run(...) plus the top-20 dynamic k it was measured with
    name="yolox-cpu-nano-wide", make_model=lambda k, size: yolox_cpu_nano_wide(k),
    make_head=yolox_head, img_size=CPU_NANO_WIDE_INPUT_SIZE, rules={"simota": None},
    default_rule="simota", short_run={"loss_options": {"topk": 20}},
    description=yolox_cpu_nano_wide.__doc__.splitlines()[0]))
