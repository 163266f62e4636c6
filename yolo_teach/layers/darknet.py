"""Darknet's repeated blocks: residual stages (Darknet-53, YOLOv3 §2.4) and the 1x1/3x3 sets
in front of YOLOv3's and YOLOv4's outputs.

- :class:`DarknetStage` - a stride-2 conv and ``depth`` residual blocks.
- :class:`ConvSet` - alternating 1x1 and 3x3 convs (five in yolov3.cfg and yolov4.cfg).
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, DarknetResidual


class DarknetStage(nn.Module):
    """A stride-2 3x3 conv followed by ``depth`` residual blocks (Darknet-53, Table 1).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s), s = ``stride`` (2 in Darknet-53)
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int = 2,
                 act_layer: type[nn.Module] = DarknetLeaky):
        super().__init__()
        self.downsample = ConvBNAct(in_channels, out_channels, 3, stride=stride,
                                    act_layer=act_layer)
        self.blocks = nn.Sequential(
            *[DarknetResidual(out_channels, out_channels // 2, act_layer) for _ in range(depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)  # (B, C_out, H/2, W/2)
        return self.blocks(x)  # (B, C_out, H/2, W/2)


class ConvSet(nn.Module):
    """Five alternating 1x1 and 3x3 convs, the block in front of each YOLOv3 (and YOLOv4) output.

    ``depth`` keeps the first 1, 3 or 5 of them (5 in yolov3.cfg; the nano model uses fewer,
    see :func:`yolov3_nano`); the set always starts and ends with a 1x1 conv.

    Shapes:
        (B, C_in, H, W) -> (B, hidden_channels, H, W)
    """

    def __init__(self, in_channels: int, hidden_channels: int, depth: int = 5,
                 act_layer: type[nn.Module] = DarknetLeaky):
        super().__init__()
        if depth not in (1, 3, 5):
            raise ValueError(f"a ConvSet has 1, 3 or 5 convs, got {depth}")
        h = hidden_channels
        layers = [ConvBNAct(in_channels, h, 1, act_layer=act_layer)]
        for _ in range(depth // 2):
            layers += [ConvBNAct(h, 2 * h, 3, act_layer=act_layer),
                       ConvBNAct(2 * h, h, 1, act_layer=act_layer)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, hidden_channels, H, W)
