"""YOLOX's backbone and its two special blocks, shared by YOLOX and the improved YOLOX (seed 004).

- :class:`Focus` - space-to-depth, then a conv (YOLOv5's old stem, YOLOX's stem).
- :class:`SPPBottleneck` - SPP(5, 9, 13) between two 1x1 convs, in the official order.
- :class:`CSPDarknet` - Focus stem and four stride-2 stages of C3 blocks, SPP in the last one
  (official ``yolox/models/darknet.py``); with an ``attention_layer`` (CBAM) after each stage's
  CSP layer it is the backbone of the improved YOLOX (seed 004 §2.1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from yolo_teach.layers.c3 import C3, DWConv
from yolo_teach.layers.conv import ConvBNAct


class Focus(nn.Module):
    """Space-to-depth, then a conv (official ``network_blocks.Focus``; YOLOv5's stem).

    Every 2x2 pixel block becomes 4 channel groups, ordered top-left, bottom-left, top-right,
    bottom-right as in the official code (:class:`~yolo_teach.layers.Reorg` orders them
    row-major; only loading weights would care).

    Shapes:
        (B, C_in, H, W) -> (B, 4 C_in, H/2, W/2) -> (B, C_out, H/2, W/2)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.conv = ConvBNAct(4 * in_channels, out_channels, kernel_size, 1, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top_left, top_right = x[..., ::2, ::2], x[..., ::2, 1::2]  # (B, C, H/2, W/2) each
        bot_left, bot_right = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        x = torch.cat([top_left, bot_left, top_right, bot_right], dim=1)  # (B, 4C, H/2, W/2)
        return self.conv(x)  # (B, C_out, H/2, W/2)


class SPPBottleneck(nn.Module):
    """SPP between two 1x1 convs (official ``network_blocks.SPPBottleneck``, YOLOv3-SPP's).

    ``conv2(cat[x, max5(x), max9(x), max13(x)])`` with ``x = conv1(input)`` at half width.
    NOTE(paper): the official order is ``[x, 5, 9, 13]``; :class:`~yolo_teach.layers.SPP`
    keeps Darknet's ``[13, 9, 5, x]``. The counts are equal, so the block is written out here in
    the official order rather than permuting weights later.

    Shapes:
        (B, C_in, H, W) -> (B, C_in/2, H, W) -> (B, 2 C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_sizes: tuple[int, ...] = (5, 9, 13),
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, hidden, 1, 1, act_layer)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvBNAct(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, C_in/2, H, W)
        x = torch.cat([x, *(pool(x) for pool in self.m)], dim=1)  # (B, 2 C_in, H, W)
        return self.conv2(x)  # (B, C_out, H, W)


class CSPDarknet(nn.Module):
    """YOLOX's backbone (official ``darknet.CSPDarknet``): Focus stem, four stride-2 stages.

    Each stage ``dark2..dark5`` is a stride-2 3x3 conv and a CSP layer (:class:`C3`) with
    residual bottlenecks; dark5 puts an SPP bottleneck before its CSP layer, whose bottlenecks
    have no shortcut. Bottlenecks per stage: ``n, 3n, 3n, n`` with ``n = max(round(3 d), 1)``.

    Args:
        attention_layer: ``channels -> module`` put behind the CSP layer of every stage
            (``None``: YOLOX as published). Seed 004 §2.1: "Each dark module contains a csp
            module, and an attention module is inserted after each csp module ... a total of
            4 attention modules", i.e. CBAM-CSP1_X in dark2-dark5.

    Shapes:
        (B, 3, H, W) -> dark3 (B, 256, H/8, W/8), dark4 (B, 512, H/16, W/16),
        dark5 (B, 1024, H/32, W/32)
    """

    def __init__(self, depth: float = 1.0, width: float = 1.0, depthwise: bool = False,
                 stem_channels: int = 64, spp_kernel_sizes: tuple[int, ...] = (5, 9, 13),
                 act_layer: type[nn.Module] = nn.SiLU,
                 attention_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        c = int(stem_channels * width)  # base_channels
        n = max(round(depth * 3), 1)  # base_depth
        act = act_layer

        def down(c_in: int, c_out: int) -> nn.Module:  # the stride-2 3x3 conv of each stage
            return DWConv(c_in, c_out, 3, 2, act) if depthwise else ConvBNAct(c_in, c_out, 3, 2, act)

        def csp(channels: int, depth: int, shortcut: bool = True) -> C3:  # official CSPLayer
            return C3(channels, channels, depth, shortcut, depthwise=depthwise, act_layer=act,
                      attention_layer=attention_layer)

        self.stem = Focus(3, c, 3, act)
        self.dark2 = nn.Sequential(down(c, 2 * c), csp(2 * c, n))
        self.dark3 = nn.Sequential(down(2 * c, 4 * c), csp(4 * c, 3 * n))
        self.dark4 = nn.Sequential(down(4 * c, 8 * c), csp(8 * c, 3 * n))
        self.dark5 = nn.Sequential(
            down(8 * c, 16 * c),
            SPPBottleneck(16 * c, 16 * c, spp_kernel_sizes, act),
            csp(16 * c, n, shortcut=False),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, 64, H/2, W/2)
        x = self.dark2(x)  # (B, 128, H/4, W/4)
        dark3 = self.dark3(x)  # (B, 256, H/8, W/8)
        dark4 = self.dark4(dark3)  # (B, 512, H/16, W/16)
        dark5 = self.dark5(dark4)  # (B, 1024, H/32, W/32)
        return dark3, dark4, dark5
