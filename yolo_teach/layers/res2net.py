r"""The blocks of Res2NetLite, RefineDetLite's backbone (Chen et al., CVPRW 2020, §3.2, Fig. 2,
Table 1): the input BatchNorm (:class:`InputNorm`) and what it fuses into
(:class:`ChannelAffine`), the downsampling bottleneck of Fig. 2(a) and Res2Net's block (Gao et
al. 2019, eq. 1; Fig. 2(b)). Every group convolution has g = 2 by default (§3.2: "we employ
maximal g = 2 ... for all group convolutions"). The backbone that stacks them is
:class:`yolo_teach.models.refinedet_lite.Res2NetLite`.
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct


class ChannelAffine(nn.Module):
    r"""A per-channel affine map :math:`y_c = a_c x_c + b_c`: what :class:`InputNorm` becomes
    once fused. Not a BatchNorm: it has no running statistics and behaves the same in train and
    eval mode.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))  # a, (C,)
        self.shift = nn.Parameter(torch.zeros(channels))  # b, (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)  # (B, C, H, W)


class InputNorm(nn.BatchNorm2d):
    r"""Table 1's first layer: a BatchNorm on the input image, so the network learns its own
    per-channel normalisation of R, G and B (no fixed ImageNet mean and std).

    There is no convolution before it to fold it into (it precedes one, and folding it forward
    would be wrong at the zero-padded border), so :meth:`fuse` gives a :class:`ChannelAffine`
    with, in eval mode, :math:`a = \gamma / \sqrt{\sigma^2 + \epsilon}` and
    :math:`b = \beta - \mu a`.

    Shapes:
        (B, 3, H, W) -> (B, 3, H, W)
    """

    @torch.no_grad()
    def fuse(self) -> ChannelAffine:
        """A new :class:`ChannelAffine` equal to this BatchNorm in eval mode (self untouched)."""
        fused = ChannelAffine(self.num_features).to(self.weight.device, self.weight.dtype)
        scale = self.weight / torch.sqrt(self.running_var + self.eps)  # (C,) gamma / sigma
        fused.scale.copy_(scale)
        fused.shift.copy_(self.bias - self.running_mean * scale)  # (C,) beta - mu gamma / sigma
        return fused


class DownsampleBottleneck(nn.Module):
    """The downsampling bottleneck of Fig. 2(a): 1x1 reduce, 3x3/2 group conv, 1x1 expand.

    It opens each stage (halving H and W, changing the width) and makes the extra layers.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        groups: groups of the 3x3 conv (g = 2, §3.2).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/2, W/2)
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 2):
        super().__init__()
        # NOTE(paper): Fig. 2(a) is not in the text. A plain bottleneck, C_out/4 wide (ResNet's
        # bottleneck ratio; C_in/4 would squeeze the 32-channel stem through 8 channels), stride
        # on the 3x3, ReLU after each conv and no shortcut (§3.2: "without any bypass branches").
        hidden = out_channels // 4
        self.reduce = ConvBNAct(in_channels, hidden, 1, act_layer=nn.ReLU)
        self.conv = ConvBNAct(hidden, hidden, 3, stride=2, groups=groups, act_layer=nn.ReLU)
        self.expand = ConvBNAct(hidden, out_channels, 1, act_layer=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)  # (B, C_out/4, H, W)
        x = self.conv(x)  # (B, C_out/4, H/2, W/2)
        return self.expand(x)  # (B, C_out, H/2, W/2)


class Res2Block(nn.Module):
    r"""Res2Net's block (Gao et al. 2019, eq. 1; RefineDetLite Fig. 2b): a residual block whose
    3x3 stage is a hierarchy of small convolutions over channel splits.

    A 1x1 conv maps the input to :math:`s` splits :math:`x_1 .. x_s` of :math:`w` channels each;
    each split but the first has a 3x3 conv :math:`K_i` that also sees the previous output

    .. math:: y_i = \begin{cases} x_i & i = 1 \\ K_i(x_i) & i = 2 \\
              K_i(x_i + y_{i-1}) & 2 < i \le s \end{cases}

    so :math:`y_i` has a receptive field of :math:`2i - 1` pixels (1, 3, 5, 7 for s = 4): one
    block sees several scales. A 1x1 conv maps :math:`[y_1, .., y_s]` back to C channels, and
    the input is added (then ReLU). Input and output widths are equal, which minimises the
    memory access cost (§3.2, ShuffleNetV2's first guideline), and every :math:`K_i` is a group
    conv with g = 2.

    Args:
        channels: C, input and output.
        scales: s, the number of splits.
        groups: groups of every :math:`K_i`.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, scales: int = 4, groups: int = 2):
        super().__init__()
        # NOTE(paper): the hidden width is not given: C/4 (a ResNet bottleneck's), so each split
        # has w = C / (4 s) channels; Res2Net's official code keeps x_s, not x_1, untouched
        # (the same block up to the order of the splits), we follow eq. 1.
        self.width = channels // 4 // scales  # w
        hidden = self.width * scales
        self.reduce = ConvBNAct(channels, hidden, 1, act_layer=nn.ReLU)
        self.K = nn.ModuleList(  # K_2 .. K_s
            ConvBNAct(self.width, self.width, 3, groups=groups, act_layer=nn.ReLU)
            for _ in range(scales - 1))
        self.expand = ConvBNAct(hidden, channels, 1, act_layer=None)
        self.relu = nn.ReLU(inplace=True)

    def hierarchy(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        """Eq. 1: the splits ``[x_1 .. x_s]`` of ``hidden`` (B, s w, H, W) -> ``[y_1 .. y_s]``,
        each (B, w, H, W)."""
        xs = hidden.split(self.width, dim=1)  # s x (B, w, H, W)
        ys = [xs[0]]  # y_1 = x_1
        for i, K_i in enumerate(self.K, start=2):
            x_i = xs[i - 1]
            ys.append(K_i(x_i if i == 2 else x_i + ys[-1]))  # y_i, (B, w, H, W)
        return ys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.reduce(x)  # (B, s w, H, W)
        y = torch.cat(self.hierarchy(hidden), dim=1)  # (B, s w, H, W)
        return self.relu(self.expand(y) + x)  # (B, C, H, W)
