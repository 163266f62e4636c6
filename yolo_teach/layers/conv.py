r"""Convolution building blocks shared by the Darknet-era detectors (YOLOv1, YOLOv2, YOLOv3).

Every block speaks one vocabulary: ``in_channels``, ``out_channels``, ``hidden_channels``,
``kernel_size``, ``stride`` and ``act_layer`` / ``norm_layer`` passed as classes (not strings).

- :class:`DarknetLeaky` - Darknet's ``leaky`` activation, :math:`\max(0.1x, x)`.
- :class:`ConvBNAct` - convolution -> batch norm -> activation, Darknet's ``[convolutional]``.
- :class:`DarknetResidual` - the 1x1 -> 3x3 residual block of Darknet-53 (YOLOv3 §2.4).
- :class:`Reorg` - space-to-depth for YOLOv2's passthrough layer (YOLOv2 §2 "Fine-Grained
  Features").
- :class:`MaxPoolStride1` - the 2x2 stride-1 max-pool of the tiny nets, which keeps H and W.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class DarknetLeaky(nn.LeakyReLU):
    r"""Darknet's ``leaky`` activation :math:`f(x) = \max(0.1x, x)`.

    YOLOv1 §2.1 uses "a leaky rectified linear activation" with slope 0.1, PyTorch's default is
    0.01; this class fixes the slope so that it can be passed as ``act_layer=DarknetLeaky``.
    """

    darknet_name = "leaky"  # its name in a Darknet layer table

    def __init__(self, inplace: bool = True):
        super().__init__(negative_slope=0.1, inplace=inplace)


class ConvBNAct(nn.Module):
    r"""Convolution, batch normalisation and activation: one Darknet ``[convolutional]`` layer.

    ``padding = kernel_size // 2`` (Darknet's ``pad=1``), so a stride-1 layer keeps H and W and a
    stride-2 layer halves them. With a ``norm_layer`` the convolution has no bias (the norm's
    shift :math:`\beta` plays that role); with ``norm_layer=None`` it has one, as in YOLOv1.
    ``act_layer=None`` gives a linear layer (Darknet's ``activation=linear``).

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out (Darknet's ``filters``).
        kernel_size: square kernel size k.
        stride: convolution stride s.
        act_layer: activation class, e.g. :class:`DarknetLeaky` or ``nn.SiLU``; ``None`` = linear.
        norm_layer: normalisation class, e.g. ``nn.BatchNorm2d``; ``None`` = no norm, with bias.
        groups: convolution groups (``in_channels`` for a depth-wise conv; YOLOv7's E-ELAN
            uses group convolutions).
        padding: zero padding on each side; ``None`` = ``kernel_size // 2``. YOLOv5's 6x6
            stride-2 stem uses 2, so that 640 px give 320.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    """

    darknet_name = "conv"  # its name in a Darknet layer table

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        act_layer: type[nn.Module] | None = DarknetLeaky,
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        groups: int = 1,
        padding: int | None = None,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if padding is None else padding,
            groups=groups,
            bias=norm_layer is None,
        )
        self.bn = norm_layer(out_channels) if norm_layer is not None else nn.Identity()
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))  # (B, C_out, H/s, W/s)

    def fuse(self) -> ConvBNAct:
        """A new block with the BatchNorm folded into the convolution (:func:`fold_batch_norm`),
        equal to this one in eval mode; ``bn`` becomes ``nn.Identity``."""
        fused = copy.deepcopy(self)
        fused.conv, fused.bn = fold_batch_norm(self.conv, self.bn), nn.Identity()
        return fused


class DarknetResidual(nn.Module):
    r"""Darknet-53's residual block (YOLOv3 §2.4): a 1x1 squeeze, a 3x3 expand and a shortcut.

    .. math:: y = x + \mathrm{conv}_{3\times3}(\mathrm{conv}_{1\times1}(x))

    Args:
        in_channels: channels C of the input and the output.
        hidden_channels: channels after the 1x1 squeeze (C/2 in Darknet-53).
        act_layer: activation class of both convolutions.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        act_layer: type[nn.Module] = DarknetLeaky,
    ):
        super().__init__()
        self.squeeze = ConvBNAct(in_channels, hidden_channels, 1, act_layer=act_layer)
        self.expand = ConvBNAct(hidden_channels, in_channels, 3, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Darknet's [shortcut] has activation=linear: plain addition, no activation after it.
        return x + self.expand(self.squeeze(x))  # (B, C, H, W)


class Reorg(nn.Module):
    """Space-to-depth: every s x s neighbourhood becomes s^2 channel groups (YOLOv2 §2).

    YOLOv2's passthrough layer "stacks adjacent features into different channels": a 26x26x64
    map becomes 13x13x256 so that it can be concatenated with the 13x13x1024 map. Channel group
    ``dy * s + dx`` holds the sub-image ``x[:, :, dy::s, dx::s]``.

    Args:
        stride: neighbourhood size s (2 in YOLOv2).

    Shapes:
        (B, C, H, W) -> (B, s*s*C, H/s, W/s)
    """

    darknet_name = "reorg"  # its name in a Darknet layer table

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # NOTE(paper): Darknet's reorg kernel orders the output channels differently (a quirk
        # of its memory layout). Any fixed channel order is equivalent when the next layer is
        # trained from scratch; it only matters for loading official weights, which we do not.
        b, c, h, w = x.shape
        s = self.stride
        x = x.view(b, c, h // s, s, w // s, s)  # (B, C, H/s, s, W/s, s)
        x = x.permute(0, 3, 5, 1, 2, 4)  # (B, s, s, C, H/s, W/s)
        return x.reshape(b, s * s * c, h // s, w // s)  # (B, s*s*C, H/s, W/s)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class MaxPoolStride1(nn.Module):
    r"""A 2x2 max-pool with stride 1 that keeps H and W (the tiny nets' last pool).

    Darknet pads a stride-1 pool by one pixel on the right and bottom and treats the padding as
    :math:`-\infty`. Replicating the border pixel gives the same maximum (that pixel is already
    in the window), so ``F.pad(..., mode="replicate")`` reproduces Darknet exactly; zero padding
    would differ wherever the border activations are negative.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    darknet_name = "max"  # its name in a Darknet layer table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1), mode="replicate")  # (B, C, H+1, W+1)
        return F.max_pool2d(x, kernel_size=2, stride=1)  # (B, C, H, W)


@torch.no_grad()
def init_objectness_bias_(pred: nn.Conv2d, num_anchors: int, prior: float = 0.01) -> None:
    r"""Set the objectness bias of a 1x1 prediction conv so that sigmoid(t_o) starts at ``prior``.

    .. math:: b_o = -\log\frac{1 - \pi}{\pi}, \qquad \sigma(b_o) = \pi

    Common practice from RetinaNet (§4.1 "Initialization") and YOLOv5, not from the YOLO papers:
    nearly every anchor is background, so starting at pi ~ 0.01 avoids a huge first loss.
    The prediction channels are laid out anchor-major, ``[tx, ty, tw, th, to, classes...]`` per
    anchor, as in Darknet's region and yolo layers.

    Args:
        pred: the last conv of a head, with ``num_anchors * (5 + K)`` output channels.
        num_anchors: anchors per cell A.
        prior: probability pi that an anchor holds an object at initialisation.
    """
    bias = pred.bias.view(num_anchors, -1)  # (A, 5+K)
    bias[:, 4] = -math.log((1.0 - prior) / prior)


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    r"""A new convolution equal to ``bn(conv(x))`` in eval mode: the BatchNorm folded in.

    With running statistics :math:`\mu, \sigma^2`, scale :math:`\gamma` and shift
    :math:`\beta` (Ioffe & Szegedy 2015, Alg. 1), per output channel
    :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}`:

    .. math:: W' = s\,W, \qquad b' = \beta + s\,(b - \mu)

    ``bn`` may be ``nn.Identity`` (the conv is copied, with a bias). The result always has a
    bias; it is in float32 or the conv's dtype, on the conv's device.
    """
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(conv.weight[:, 0, 0, 0])
    if isinstance(bn, nn.Identity):
        fused.weight.copy_(conv.weight)
        fused.bias.copy_(bias)
        return fused
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"cannot fold {type(bn).__name__} into a convolution")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,) gamma / sigma
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))  # (C_out, C_in/g, k, k)
    fused.bias.copy_(bn.bias + scale * (bias - bn.running_mean))  # (C_out,)
    return fused


def set_batch_norm(module: nn.Module, eps: float = 1e-3, momentum: float = 0.03) -> None:
    """Give every ``BatchNorm2d`` in ``module`` the ``eps`` and ``momentum`` of YOLOv5 and YOLOX
    (Ultralytics ``initialize_weights``, YOLOX ``init_yolo``; PyTorch's defaults: 1e-5, 0.1)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = eps, momentum
