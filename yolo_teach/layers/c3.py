"""YOLOv5's C3 block and its parts, shared with YOLOX (whose ``CSPLayer`` is the same block).

- :class:`DWConv` - depth-wise 3x3 then point-wise 1x1, each with norm and activation
  (YOLOX-Nano's "depthwise" convolutions; MobileNet's separable convolution).
- :class:`Bottleneck` - 1x1 then 3x3 (or :class:`DWConv`), with a shortcut when the widths match.
- :class:`C3` - a cross-stage-partial block with three 1x1 convolutions: one branch runs ``n``
  bottlenecks, the other is a 1x1 projection, and a third 1x1 fuses their concatenation. YOLOv5
  calls it C3 (models/common.py), YOLOX ``CSPLayer`` (yolox/models/network_blocks.py). With an
  ``attention_layer`` it is the improved YOLOX's CBAM-CSP (seed 004 §2.1, Fig. 5-6).

Both official codes use SiLU and ``Conv2d(bias=False)`` + BatchNorm; the widths and the order of
the concatenation (bottleneck branch first) follow them, so parameter counts match exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct


class DWConv(nn.Module):
    """Depth-wise separable convolution: ``k x k`` per channel, then ``1 x 1`` across channels.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.dconv = ConvBNAct(in_channels, in_channels, kernel_size, stride, act_layer,
                               groups=in_channels)
        self.pconv = ConvBNAct(in_channels, out_channels, 1, 1, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))  # (B, C_out, H/s, W/s)


class Bottleneck(nn.Module):
    """``x + conv3x3(conv1x1(x))`` (the shortcut only when asked and ``C_in == C_out``).

    Args:
        expansion: hidden width as a fraction of ``out_channels`` (1.0 inside C3).
        depthwise: the 3x3 is a :class:`DWConv` (YOLOX-Nano).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = ConvBNAct(in_channels, hidden, 1, 1, act_layer)
        self.cv2 = DWConv(hidden, out_channels, 3, 1, act_layer) if depthwise else \
            ConvBNAct(hidden, out_channels, 3, 1, act_layer)
        self.add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))  # (B, C_out, H, W)
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions (YOLOv5's C3, YOLOX's CSPLayer).

    ``cv3(cat(m(cv1(x)), cv2(x)))`` with ``n`` bottlenecks in ``m``, hidden width
    ``out_channels * expansion``.

    Args:
        n: bottlenecks in the first branch (YOLOv5: ``round(n * depth_multiple)``).
        shortcut: residual bottlenecks (backbone) or plain ones (YOLOv5's head, ``C3(c, False)``).
        expansion: hidden width fraction (0.5 in both official codes).
        depthwise: depth-wise separable 3x3 in the bottlenecks (YOLOX-Nano).
        attention_layer: ``channels -> module`` applied to the output, e.g.
            :class:`~yolo_teach.layers.CBAM`: seed 004's CBAM-CSP puts CBAM "behind the
            original CSP1_X and CSP2_X modules" (§2.1). ``None`` (default): plain C3.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False,
                 act_layer: type[nn.Module] = nn.SiLU,
                 attention_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = ConvBNAct(in_channels, hidden, 1, 1, act_layer)
        self.cv2 = ConvBNAct(in_channels, hidden, 1, 1, act_layer)
        self.cv3 = ConvBNAct(2 * hidden, out_channels, 1, 1, act_layer)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act_layer)
                                 for _ in range(n)))
        self.attention = attention_layer(out_channels) if attention_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.m(self.cv1(x)), self.cv2(x)], dim=1)  # (B, 2 * hidden, H, W)
        y = self.cv3(y)  # (B, C_out, H, W)
        return y if self.attention is None else self.attention(y)  # (B, C_out, H, W)
