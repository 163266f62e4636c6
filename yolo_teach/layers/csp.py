r"""Cross Stage Partial (CSP) blocks: CSPDarknet53's stages and YOLOv4-tiny's split blocks.

CSPNet (Wang et al., CVPR-W 2020, §3.1) splits the feature map of a stage's base layer into two
parts: one part goes through the stage's blocks, the other skips them, and the two are
concatenated before a "transition" 1x1 conv. The gradient of the skipping part never flows
through the blocks, so the two parts learn less duplicated information; and only half the
channels pay for the blocks. YOLOv4 §3.4 lists CSP among the "Bag of Specials for backbone" and
§3.1 chooses CSPDarknet53 (29 3x3 convs, 27.6 M parameters, Table 1) as the backbone.

- :class:`CSPBlock` - split into two parts by two 1x1 convs, residual blocks on one part, concat,
  transition; keeps H and W (usable in a neck).
- :class:`CSPStage` - a stride-2 3x3 conv followed by a :class:`CSPBlock`: one stage of
  CSPDarknet53 (csdarknet53-omega.cfg / yolov4.cfg).
- :class:`ChannelSplit` - Darknet's ``[route] groups=2 group_id=1``: keep one group of channels.
- :class:`TinyCSPBlock` - YOLOv4-tiny's block: a 3x3 conv, keep the second half of its
  channels, two 3x3 convs, a 1x1 transition and the concatenation with the block's input.
"""

from __future__ import annotations

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, DarknetResidual


class CSPBlock(nn.Module):
    r"""The cross-stage-partial part of a CSPDarknet53 stage (CSPNet §3.1, Fig. 2(b)).

    .. math::
        x' = \mathrm{conv}_{1\times1}(x), \quad x'' = \mathrm{conv}_{1\times1}(x), \qquad
        y = \mathrm{conv}_{1\times1}\bigl([\,\mathrm{conv}_{1\times1}(R_n \cdots R_1(x''))\,;\,
        x'\,]\bigr)

    :math:`x'` is the part that skips the stage, :math:`x''` the part that goes through the
    :math:`n` = ``depth`` residual blocks :math:`R_i` and a "partial transition" 1x1 conv; the
    concatenation ``[main, skip]`` (Darknet's ``[route] layers=-1,-k``) ends with the transition.

    Args:
        in_channels: channels C_in of the input.
        out_channels: channels C_out after the transition.
        depth: residual blocks n in the main part.
        hidden_channels: width of each part (default C_out / 2; CSPDarknet53's first stage keeps
            the full width C_out, see :class:`CSPStage`).
        act_layer: activation class of every conv (Mish in CSPDarknet53).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    darknet_name = "csp"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        hidden_channels: int | None = None,
        act_layer: type[nn.Module] = DarknetLeaky,
    ):
        super().__init__()
        h = out_channels // 2 if hidden_channels is None else hidden_channels
        # NOTE(paper): CSPNet splits the channels of the base layer in two; CSPDarknet53's cfg
        # makes each part with its own 1x1 conv over all channels instead (same in yolov4.cfg).
        self.split_skip = ConvBNAct(in_channels, h, 1, act_layer=act_layer)
        self.split_main = ConvBNAct(in_channels, h, 1, act_layer=act_layer)
        # The residual blocks squeeze to C_out / 2, Darknet-53's C/2 of the stage width: a real
        # squeeze in the first stage (parts of width C_out), none in the others (C_out / 2).
        self.blocks = nn.Sequential(
            *[DarknetResidual(h, out_channels // 2, act_layer=act_layer) for _ in range(depth)]
        )
        self.transition_main = ConvBNAct(h, h, 1, act_layer=act_layer)
        self.transition = ConvBNAct(2 * h, out_channels, 1, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.split_skip(x)  # (B, h, H, W), Darknet computes this part first
        main = self.transition_main(self.blocks(self.split_main(x)))  # (B, h, H, W)
        return self.transition(torch.cat([main, skip], dim=1))  # (B, 2h -> C_out, H, W)


class CSPStage(nn.Module):
    """One stage of CSPDarknet53: a stride-2 3x3 conv, then a :class:`CSPBlock`.

    csdarknet53-omega.cfg and yolov4.cfg give the first stage (64 channels, one residual block)
    parts of the full width, 64 + 64, and every later stage parts of half the width (for 128
    channels: 64 + 64). ``hidden_channels`` sets it; the default is the later stages' C_out / 2.

    Args:
        in_channels: channels C_in of the input.
        out_channels: channels C_out of the stage.
        depth: residual blocks.
        hidden_channels: width of each CSP part (C_out for CSPDarknet53's first stage).
        stride: stride of the first conv (2; 1 where a stride-2 stem already downsampled).
        act_layer: activation class (Mish in CSPDarknet53).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    """

    darknet_name = "csp"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        hidden_channels: int | None = None,
        stride: int = 2,
        act_layer: type[nn.Module] = DarknetLeaky,
    ):
        super().__init__()
        self.downsample = ConvBNAct(
            in_channels, out_channels, 3, stride=stride, act_layer=act_layer
        )
        self.csp = CSPBlock(out_channels, out_channels, depth, hidden_channels, act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)  # (B, C_out, H/s, W/s)
        return self.csp(x)  # (B, C_out, H/s, W/s)


class ChannelSplit(nn.Module):
    """Keep one of ``groups`` equal groups of channels: Darknet's ``[route] groups= group_id=``.

    YOLOv4-tiny uses ``groups=2 group_id=1``, which keeps the **second** half of the channels
    (channels C/2 ... C-1), a cheap stand-in for CSPNet's split.

    Shapes:
        (B, C, H, W) -> (B, C/groups, H, W)
    """

    darknet_name = "route"

    def __init__(self, groups: int = 2, group_id: int = 1):
        super().__init__()
        if not 0 <= group_id < groups:
            raise ValueError(f"group_id must be in [0, {groups}), got {group_id}")
        self.groups = groups
        self.group_id = group_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.groups, dim=1)[self.group_id]  # (B, C/groups, H, W)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, group_id={self.group_id}"


class TinyCSPBlock(nn.Module):
    r"""YOLOv4-tiny's CSP block (yolov4-tiny.cfg, three times in the backbone).

    .. math::
        x = \mathrm{conv}_{3\times3}(\text{input}), \quad a = \mathrm{conv}_{3\times3}(x_{[C/2:]}),
        \quad b = \mathrm{conv}_{3\times3}(a), \quad y = \mathrm{conv}_{1\times1}([b; a]), \quad
        \text{out} = [x; y]

    The second half of x goes through two 3x3 convs, the whole of x skips to the output: the
    cross-stage-partial idea with a channel split instead of 1x1 convs.

    Args:
        in_channels: channels C_in of the input.
        out_channels: channels C of the first 3x3 conv; the block outputs 2C.
        act_layer: activation class (leaky 0.1 in yolov4-tiny.cfg).

    Shapes:
        (B, C_in, H, W) -> out (B, 2C, H, W) and y (B, C, H, W), the transition's output, which
        the neck of YOLOv4-tiny takes from the last block as its stride-16 feature.
    """

    darknet_name = "csp"

    def __init__(
        self, in_channels: int, out_channels: int, act_layer: type[nn.Module] = DarknetLeaky
    ):
        super().__init__()
        c = out_channels
        self.conv = ConvBNAct(in_channels, c, 3, act_layer=act_layer)
        self.split = ChannelSplit(  # pragma: no mutate -- dropping an argument: it is the default
            groups=2, group_id=1
        )
        self.conv1 = ConvBNAct(c // 2, c // 2, 3, act_layer=act_layer)
        self.conv2 = ConvBNAct(c // 2, c // 2, 3, act_layer=act_layer)
        self.transition = ConvBNAct(c, c, 1, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x)  # (B, C, H, W)
        a = self.conv1(self.split(x))  # (B, C/2, H, W)
        b = self.conv2(a)  # (B, C/2, H, W)
        y = self.transition(torch.cat([b, a], dim=1))  # (B, C, H, W)
        return torch.cat([x, y], dim=1), y  # (B, 2C, H, W), (B, C, H, W)
