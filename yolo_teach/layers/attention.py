r"""Attention modules that reweight a feature map.

YOLOv4 §2.3 sorts the attention modules of detectors into channel-wise attention, represented
by Squeeze-and-Excitation (SE), and point-wise attention, represented by the Spatial Attention
Module (SAM) of CBAM. Each module here computes an attention map from the input, squashes it
with a sigmoid, and multiplies it onto the input.

- :class:`SAM` - YOLOv4's *modified* SAM (§3.3, Fig. 5; §3.4 "SAM-block"): point-wise attention,
  one weight per element.

SE and CBAM (channel then spatial attention) will follow in this file.
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct


class SAM(nn.Module):
    r"""YOLOv4's modified Spatial Attention Module: point-wise attention (§3.3, Fig. 5).

    CBAM's SAM pools the channels (max and mean) into a 2-channel map and convolves it into one
    attention weight per position, shared by all channels. YOLOv4 "modif[ies] SAM from
    spatial-wise attention to point-wise attention": no pooling, a convolution maps the input to
    one weight per element,

    .. math:: y = x \odot \sigma(\mathrm{BN}(W * x))

    In yolov4-sam-mish.cfg this is a 1x1 ``[convolutional]`` with batch norm, C filters and
    ``activation=logistic``, followed by ``[sam]``, the element-wise product with the input.

    Args:
        in_channels: channels C of the input and the output.
        kernel_size: kernel of the attention conv (1 in Darknet's cfgs).

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    darknet_name = "sam"

    def __init__(self, in_channels: int, kernel_size: int = 1):
        super().__init__()
        self.attention = ConvBNAct(in_channels, in_channels, kernel_size, act_layer=nn.Sigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)  # (B, C, H, W) * (B, C, H, W) in (0, 1)
