"""Prediction heads shared by the anchor-based detectors, with their bias initialisation.

- :class:`AnchorHead` - per scale, a 3x3 conv and a linear 1x1 conv to ``A (5 + K)`` channels
  (YOLOv3 §2.3, YOLOv4's head).
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, init_objectness_bias_


class AnchorHead(nn.Module):
    """One prediction branch per scale: a 3x3 conv doubling the width, then a linear 1x1 conv.

    Args:
        in_channels: neck widths, one per scale (finest first); the 3x3 conv doubles them.
        num_anchors: anchors per cell A.
        num_classes: classes K.

    Shapes:
        [(B, C_i, H_i, W_i)] -> [(B, A*(5+K), H_i, W_i)], same order as the input.
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int,
                 act_layer: type[nn.Module] = DarknetLeaky):
        super().__init__()
        self.num_anchors = num_anchors
        self.branches = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, 2 * c, 3, act_layer=act_layer),
                nn.Conv2d(2 * c, num_anchors * (5 + num_classes), 1),
            )
            for c in in_channels
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [branch(x) for branch, x in zip(self.branches, features)]  # [(B, A*(5+K), H, W)]

    def init_bias(self, prior: float = 0.01) -> None:
        """Start sigmoid(t_o) at ``prior`` (RetinaNet/YOLOv5 practice, not in the paper)."""
        for branch in self.branches:
            init_objectness_bias_(branch[-1], self.num_anchors, prior)
