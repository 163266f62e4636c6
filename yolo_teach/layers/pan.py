"""The PANet neck of YOLOv5 and YOLOX (Liu et al. 2018, *Path Aggregation Network*; YOLOv4
§3.4 "PAN"): a top-down path, then a bottom-up path, with a C3 block after every merge.

YOLOv5's head (models/yolov5*.yaml, layers 10-23) and YOLOX's ``YOLOPAFPN`` are the same
network: the widths, the order of every concatenation (``[new, earlier]``) and the blocks agree,
so one class serves both; YOLOX-Nano makes its stride-2 convs and bottlenecks depth-wise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from yolo_teach.layers.c3 import C3, DWConv
from yolo_teach.layers.conv import ConvBNAct


class PANet(nn.Module):
    """Top-down with 1x1 laterals and upsampling, bottom-up with stride-2 3x3 convs; every
    merge is ``cat([new, earlier])`` followed by a C3 without shortcuts.

    Args:
        channels: backbone widths ``(c3, c4, c5)`` at strides 8, 16, 32.
        n: bottlenecks per C3.
        depthwise: depth-wise separable stride-2 convs and bottlenecks (YOLOX-Nano).
        attention_layer: ``channels -> module`` behind every C3 (seed 004's CBAM-CSP2_1, §2.2);
            ``None``: YOLOv5's and YOLOX's neck.

    Shapes:
        c3 (B, c3, H/8, W/8), c4 (B, c4, H/16, W/16), c5 (B, c5, H/32, W/32)
        -> [p3 (B, c3, H/8, W/8), p4 (B, c4, H/16, W/16), p5 (B, c5, H/32, W/32)]
    """

    def __init__(self, channels: tuple[int, int, int], n: int = 3, depthwise: bool = False,
                 act_layer: type[nn.Module] = nn.SiLU,
                 attention_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        c3, c4, c5 = channels
        act = act_layer

        def csp(c_in: int, c_out: int) -> C3:
            return C3(c_in, c_out, n, shortcut=False, depthwise=depthwise, act_layer=act,
                      attention_layer=attention_layer)

        def down(ch: int) -> nn.Module:
            return DWConv(ch, ch, 3, 2, act) if depthwise else ConvBNAct(ch, ch, 3, 2, act)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # top-down (YOLOv5 layers 10-17; YOLOX lateral_conv0, C3_p4, reduce_conv1, C3_p3)
        self.lateral5 = ConvBNAct(c5, c4, 1, 1, act)
        self.top_down4 = csp(2 * c4, c4)
        self.lateral4 = ConvBNAct(c4, c3, 1, 1, act)
        self.top_down3 = csp(2 * c3, c3)
        # bottom-up (YOLOv5 layers 18-23; YOLOX bu_conv2, C3_n3, bu_conv1, C3_n4)
        self.down3 = down(c3)
        self.bottom_up4 = csp(2 * c3, c4)
        self.down4 = down(c4)
        self.bottom_up5 = csp(2 * c4, c5)

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
        l5 = self.lateral5(c5)  # (B, c4, H/32, W/32)
        x = torch.cat([self.upsample(l5), c4], dim=1)  # (B, 2 c4, H/16, W/16)
        l4 = self.lateral4(self.top_down4(x))  # (B, c4 -> c3, H/16, W/16)
        x = torch.cat([self.upsample(l4), c3], dim=1)  # (B, 2 c3, H/8, W/8)
        p3 = self.top_down3(x)  # (B, c3, H/8, W/8)
        x = torch.cat([self.down3(p3), l4], dim=1)  # (B, 2 c3, H/16, W/16)
        p4 = self.bottom_up4(x)  # (B, c4, H/16, W/16)
        x = torch.cat([self.down4(p4), l5], dim=1)  # (B, 2 c4, H/32, W/32)
        p5 = self.bottom_up5(x)  # (B, c5, H/32, W/32)
        return [p3, p4, p5]
