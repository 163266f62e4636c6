r"""Spatial pyramid pooling for fully convolutional detectors: SPP and its faster twin SPPF.

YOLOv4 §2.3 describes YOLOv3-SPP's version of He et al.'s SPP: instead of pooling to fixed
bins (which gives a vector, useless to a fully convolutional net), max-pool the map with
k x k windows, k in {1, 5, 9, 13}, stride 1, and concatenate the results (k = 1 is the map
itself). Large windows widen the receptive field of the deepest map at almost no cost; §3.1
adds the block "over the CSPDarknet53" and §3.4 lists "SPP-block" among the Bag of Specials.

Both modules here are **pure pooling**: ``(B, C, H, W) -> (B, 4C, H, W)``, no weights, as in
yolov4.cfg, where SPP is three ``[maxpool]`` layers and a ``[route]`` between the neck's 1x1
convs. The convs around it belong to the model. So SPP and SPPF are interchangeable inside any
model with the same weights, and the test that SPPF equals SPP(5, 9, 13) needs no weight copy.

Concatenation order: **Darknet's** ``[max13, max9, max5, x]`` (yolov4.cfg,
``[route] layers=-1,-3,-5,-6``). Ultralytics' SPP and SPPF use ``[x, max5, max9, max13]``; the
parameter and FLOP counts are the same, but weights would have to be permuted along the input
channels of the next conv to move between the two.
"""

from __future__ import annotations

import torch
from torch import nn


class SPP(nn.Module):
    r"""Parallel stride-1 max-pools of sizes k, concatenated with the input (YOLOv4 §2.3, §3.4).

    .. math:: y = [\,\max_{13}(x);\ \max_{9}(x);\ \max_{5}(x);\ x\,]

    Padding k // 2 keeps H and W; PyTorch pads max-pools with :math:`-\infty`, as Darknet does,
    so a border window takes the maximum of its cells inside the map.

    Args:
        kernel_sizes: the pool sizes, odd (5, 9, 13 in YOLOv3-SPP and YOLOv4).

    Shapes:
        (B, C, H, W) -> (B, (1 + len(kernel_sizes)) * C, H, W)
    """

    darknet_name = "spp"

    def __init__(self, kernel_sizes: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"SPP kernel sizes must be odd to keep H and W, got {kernel_sizes}")
        self.kernel_sizes = tuple(kernel_sizes)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [pool(x) for pool in self.pools]  # [(B, C, H, W)], sizes 5, 9, 13
        return torch.cat([*reversed(pooled), x], dim=1)  # (B, 4C, H, W): [13, 9, 5, x]


class SPPF(nn.Module):
    r"""SPP computed in series: one k x k max-pool applied three times (YOLOv5 v6.0).

    A max over a 5x5 window of 5x5 maxima is a max over 9x9, and once more over 13x13, so

    .. math:: m_1 = \max_5(x),\ m_2 = \max_5(m_1) = \max_9(x),\ m_3 = \max_5(m_2) = \max_{13}(x)

    exactly (the :math:`-\infty` padding adds no values), with 3 x 25 comparisons per output
    instead of 25 + 81 + 169. Output equal to ``SPP((5, 9, 13))``, in the same order.

    Args:
        kernel_size: size k of the one pool (5 reproduces SPP(5, 9, 13)).
        repeats: number of pools in series (3).

    Shapes:
        (B, C, H, W) -> (B, (1 + repeats) * C, H, W)
    """

    darknet_name = "sppf"

    def __init__(self, kernel_size: int = 5, repeats: int = 3):
        super().__init__()
        self.repeats = repeats
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [x]
        for _ in range(self.repeats):
            pooled.append(self.pool(pooled[-1]))  # (B, C, H, W), windows 5, 9, 13
        return torch.cat(pooled[::-1], dim=1)  # (B, 4C, H, W): [13, 9, 5, x] as SPP
