"""RefineDetLite's Light-head blocks (Chen et al., CVPRW 2020, §3.3, Fig. 3): the residual-like
Light-head that replaces RefineDet's plain 3x3 convs, the detection part built from it (used by
the ARM and the ODM) and the top-down Light-head feature fusion.

Used by :mod:`yolo_teach.models.refinedet_lite` (which re-exports them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.refine import flatten_levels


class LightHead(nn.Module):
    r"""The residual-like Light-head module (§3.3, Fig. 3a), RefineDetLite's replacement for a
    plain 3x3 conv: two passes with different receptive fields, summed.

    .. math:: y = \mathrm{ReLU}\bigl(\mathrm{bottleneck}(x) + \mathrm{conv}_{1\times1}(x)\bigr)

    The bottleneck is 1x1 (to C_out/4), 3x3 group conv (g = 2), 1x1 (to C_out, linear); the
    shortcut a linear 1x1 conv, so C_in and C_out may differ.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        groups: groups of the bottleneck's 3x3 conv (§3.2: "maximal g = 2" for every group
            convolution).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 2):
        super().__init__()
        # NOTE(paper): Fig. 3 is not in the text; a ResNet bottleneck (C_out/4 wide, the 3x3 at
        # g = 2 as in the backbone) plus a linear 1x1 projection shortcut, ReLU after the sum.
        hidden = out_channels // 4
        self.bottleneck = nn.Sequential(
            ConvBNAct(in_channels, hidden, 1, act_layer=nn.ReLU),
            ConvBNAct(hidden, hidden, 3, groups=groups, act_layer=nn.ReLU),
            ConvBNAct(hidden, out_channels, 1, act_layer=None),
        )
        self.shortcut = ConvBNAct(in_channels, out_channels, 1, act_layer=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bottleneck(x) + self.shortcut(x))  # (B, C_out, H, W)


class LightMultiBoxHead(nn.Module):
    """The Light-head detection part (Fig. 3a), used twice: per level a :class:`LightHead` to
    D channels, then a 1x1 conv (with bias) to ``4 A`` offsets and one to ``K A`` logits,
    flattened to one row per anchor. The ARM uses ``num_classes=2`` (background, object), the
    ODM the dataset's ``K`` (background included).

    Shapes:
        [(B, C_l, H_l, W_l) for each level] -> loc (B, N, 4), conf (B, N, K),
        N = sum_l H_l W_l A
    """

    def __init__(self, in_channels: tuple[int, ...], head_channels: int, num_anchors: int,
                 num_classes: int, groups: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.heads = nn.ModuleList(LightHead(c, head_channels, groups) for c in in_channels)
        self.loc = nn.ModuleList(nn.Conv2d(head_channels, 4 * num_anchors, 1)
                                 for _ in in_channels)
        self.conf = nn.ModuleList(nn.Conv2d(head_channels, num_classes * num_anchors, 1)
                                  for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        features = [head(x) for head, x in zip(self.heads, features)]  # (B, D, H_l, W_l) each
        loc = flatten_levels([conv(x) for conv, x in zip(self.loc, features)], 4)  # (B, N, 4)
        conf = flatten_levels([conv(x) for conv, x in zip(self.conf, features)],
                              self.num_classes)  # (B, N, K)
        return loc, conf


class LightFeatureFusion(nn.Module):
    r"""The Light-head feature fusion (Fig. 3b): RefineDet's transfer connection blocks with
    Light-heads in place of the 3x3 convs, top-down from the coarsest source:

    .. math:: P_L = \mathrm{LH}'_L(\mathrm{LH}_L(x_L)), \qquad
              P_l = \mathrm{LH}'_l\bigl(\mathrm{LH}_l(x_l) + \mathrm{up}(P_{l+1})\bigr)

    with :math:`\mathrm{LH}_l` a :class:`LightHead` from C_l to D (the lateral) and
    :math:`\mathrm{LH}'_l` one from D to D.

    Shapes:
        [(B, C_l, H_l, W_l) for each level] -> [(B, D, H_l, W_l) for each level], finest first
    """

    def __init__(self, in_channels: tuple[int, ...], head_channels: int, groups: int = 2):
        super().__init__()
        self.lateral = nn.ModuleList(LightHead(c, head_channels, groups) for c in in_channels)
        self.output = nn.ModuleList(LightHead(head_channels, head_channels, groups)
                                    for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        pyramid: list[torch.Tensor] = []
        coarser = None  # P_{l+1}
        for lateral, output, x in zip(reversed(self.lateral), reversed(self.output),
                                      reversed(features)):  # coarsest first
            x = lateral(x)  # (B, D, H_l, W_l)
            if coarser is not None:
                # NOTE(paper): nearest upsampling to the finer map's size, not RefineDet's 2x2
                # deconvolution: 3x3 -> 5x5 is not a doubling (sizes are ceil(H / 2^h)).
                up = F.interpolate(coarser, size=x.shape[-2:], mode="nearest")  # (B, D, H_l, W_l)
                x = x + up
            coarser = output(x)  # P_l, (B, D, H_l, W_l)
            pyramid.insert(0, coarser)
        return pyramid
