r"""Implicit knowledge (YOLOR) and YOLOv7's ``IDetect`` head that carries it (YOLOv7 §4.3).

YOLOR adds learned vectors that do not depend on the input ("implicit knowledge") to a network's
features: an additive one before the prediction conv and a multiplicative one after it. YOLOv7
lists them among its trainable bag-of-freebies: at inference they cost nothing, because a
vector added before a linear layer and a vector multiplied after it fold into that layer's
weight and bias. For the 1x1 prediction conv :math:`W, b`, with :math:`a` added to its input
and :math:`m` multiplied into its output,

.. math::

    y = m \odot \big(W (x + a) + b\big) = \underbrace{(\mathrm{diag}(m)\,W)}_{W'}\,x
        + \underbrace{m \odot (b + W a)}_{b'}

Official code (WongKinYiu/yolov7): ``models/common.py`` ``ImplicitA`` (init
:math:`\mathcal{N}(0, 0.02)`) and ``ImplicitM`` (init :math:`\mathcal{N}(1, 0.02)`);
``models/yolo.py`` ``IDetect`` (``ia`` before ``m``, ``im`` after) and ``IDetect.fuse``.

The head lives in ``layers/`` because every YOLOv7 size uses it (and YOLOR's models would too).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from yolo_teach.layers.heads import YOLOV7_CLASS_OFFSET, Detect, init_detect_bias


class ImplicitA(nn.Module):
    """A learned per-channel vector added to the input: ``x + a`` (YOLOR's implicit addition).

    Shapes:
        (B, C, H, W) -> (B, C, H, W); ``implicit`` (1, C, 1, 1), init N(0, 0.02).
    """

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.implicit = nn.Parameter(torch.zeros(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=0.0, std=std)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.implicit  # (B, C, H, W)


class ImplicitM(nn.Module):
    """A learned per-channel vector multiplied into the input: ``x * m`` (YOLOR's implicit
    multiplication).

    Shapes:
        (B, C, H, W) -> (B, C, H, W); ``implicit`` (1, C, 1, 1), init N(1, 0.02).
    """

    def __init__(self, channels: int, std: float = 0.02):
        super().__init__()
        self.implicit = nn.Parameter(torch.ones(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=std)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.implicit  # (B, C, H, W)


PlainDetect = Detect  # what IDetect becomes once fused: YOLOv5's one-1x1-conv head


class IDetect(nn.Module):
    r"""YOLOv7's detection head: per scale ``ImplicitM(conv1x1(ImplicitA(x)))``.

    Args:
        in_channels: widths of the input maps, finest first.
        num_anchors: anchors per cell A.
        num_classes: classes K.

    Shapes:
        [(B, C_i, H_i, W_i)] -> [(B, A*(5+K), H_i, W_i)], raw, anchor-major channels
        ``[tx, ty, tw, th, to, classes * K]``, same order as the input.
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int):
        super().__init__()
        self.num_anchors, self.num_classes = num_anchors, num_classes
        out = num_anchors * (5 + num_classes)
        self.m = nn.ModuleList(nn.Conv2d(c, out, 1) for c in in_channels)
        self.ia = nn.ModuleList(ImplicitA(c) for c in in_channels)
        self.im = nn.ModuleList(ImplicitM(out) for _ in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [im(conv(ia(x)))  # (B, A*(5+K), H, W)
                for conv, ia, im, x in zip(self.m, self.ia, self.im, features)]

    def init_bias(self, strides: tuple[int, ...], prior: float | None = None) -> None:
        """YOLOv7's bias initialisation (:func:`init_detect_bias`)."""
        init_detect_bias(self.m, strides, self.num_anchors, self.num_classes, prior,
                         YOLOV7_CLASS_OFFSET)

    @torch.no_grad()
    def fuse(self) -> Detect:
        r"""A new :class:`~yolo_teach.layers.heads.Detect` equal to this head in eval mode:
        :math:`W' = \mathrm{diag}(m) W`, :math:`b' = m \odot (b + W a)`."""
        with torch.device(self.m[0].weight.device):
            fused = Detect(tuple(conv.in_channels for conv in self.m), self.num_anchors,
                           self.num_classes)
        fused.m = copy.deepcopy(self.m)  # then fold a and m into copies of the convolutions
        for conv, ia, im in zip(fused.m, self.ia, self.im):
            w = conv.weight[:, :, 0, 0]  # (A(5+K), C)
            a, m = ia.implicit.view(-1), im.implicit.view(-1)  # (C,), (A(5+K),)
            conv.bias.copy_(m * (conv.bias + w @ a))  # b' = m (b + W a)
            conv.weight.mul_(m.view(-1, 1, 1, 1))  # W' = diag(m) W
        return fused.eval()
