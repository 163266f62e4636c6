r"""Re-parameterised convolution: RepConv and YOLOv7's RepConvN (YOLOv7 §4.1; RepVGG).

RepConv trains three parallel branches and runs one convolution. In training

.. math:: y = \phi\big(\mathrm{BN}_3(W_3 * x) + \mathrm{BN}_1(W_1 * x) + \mathrm{BN}_0(x)\big)

(a 3x3 conv, a 1x1 conv and, when the input and output have the same shape, an identity branch
that is a BatchNorm alone). In eval mode each branch is linear in x, so their sum is one linear
map, which a single 3x3 convolution with bias can hold. The collapse takes three steps, each a
small function here so that a notebook can show them one by one:

1. fold each branch's BatchNorm into its kernel (:func:`fold_branch`, the Conv+BN fold of
   :func:`~yolo_teach.layers.conv.fold_batch_norm`);
2. bring every kernel to 3x3: the 1x1 kernel gets a ring of zeros (:func:`pad_1x1_to_3x3`), the
   identity becomes a 3x3 kernel with a one at the centre of its own channel
   (:func:`identity_conv`);
3. add the kernels and add the biases: :math:`K = K_3 + \mathrm{pad}(K_1) + K_0`,
   :math:`b = b_3 + b_1 + b_0`.

§4.1's "planned re-parameterisation": the identity branch duplicates a path the architecture
already has when the layer sits on a residual or concatenation connection (a ResNet shortcut, an
ELAN concatenation), and YOLOv7 found that it then hurts accuracy; there it uses
:class:`RepConvN`, the same block without the identity branch (Fig. 4).

Official code: ``models/common.py`` ``RepConv`` (``rbr_dense``, ``rbr_1x1``, ``rbr_identity``) of
WongKinYiu/yolov7; ``fuse()`` here is its ``fuse_repvgg_block``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolo_teach.layers.conv import ConvBNAct, fold_batch_norm


# ---- the collapse, step by step -------------------------------------------------------------
def fold_branch(conv: nn.Conv2d, bn: nn.Module) -> tuple[Tensor, Tensor]:
    r"""Step 1: a branch ``bn(conv(x))`` as one kernel and bias (eval mode).

    :math:`K = s\,W,\ b = \beta - s\,\mu` with :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}`.

    Returns:
        kernel ``(C_out, C_in/g, k, k)`` and bias ``(C_out,)``.
    """
    fused = fold_batch_norm(conv, bn)
    return fused.weight.detach(), fused.bias.detach()


def pad_1x1_to_3x3(kernel: Tensor) -> Tensor:
    """Step 2a: a 1x1 kernel as a 3x3 kernel, zeros around the centre.

    With padding 1, a 3x3 conv whose only non-zero weight is at the centre computes what a 1x1
    conv with padding 0 computes, at every stride.

    Shapes:
        (C_out, C_in/g, 1, 1) -> (C_out, C_in/g, 3, 3)
    """
    return F.pad(kernel, [1, 1, 1, 1])


def identity_conv(channels: int, groups: int = 1, device=None) -> nn.Conv2d:
    """Step 2b: the identity as a 3x3 conv without bias: output channel ``i`` copies input
    channel ``i`` (index ``i mod C/g`` inside its group), a one at the centre of the kernel.

    Shapes:
        weight (C, C/g, 3, 3)
    """
    conv = nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False, device=device)
    i = torch.arange(channels, device=device)  # (C,) output channels
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[i, i % (channels // groups), 1, 1] = 1.0
    return conv


class RepConv(nn.Module):
    r"""RepVGG's block as YOLOv7 uses it: 3x3 conv+BN, 1x1 conv+BN and, when
    ``in_channels == out_channels`` and ``stride == 1``, an identity BN; summed, then activated.

    .. math:: y = \phi\big(\mathrm{BN}_3(W_3 * x) + \mathrm{BN}_1(W_1 * x)
              [+ \mathrm{BN}_0(x)]\big)

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        stride: stride s of both convolutions.
        act_layer: activation class (SiLU in yolov7).
        groups: convolution groups (1 in every official config).
        identity: allow the identity branch (it exists only when the shapes match);
            :class:`RepConvN` sets it off.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 act_layer: type[nn.Module] | None = nn.SiLU, groups: int = 1,
                 identity: bool = True):
        super().__init__()
        self.groups = groups
        self.conv3x3 = ConvBNAct(in_channels, out_channels, 3, stride, act_layer=None,
                                 groups=groups)
        self.conv1x1 = ConvBNAct(in_channels, out_channels, 1, stride, act_layer=None,
                                 groups=groups)
        has_identity = identity and in_channels == out_channels and stride == 1
        self.identity = nn.BatchNorm2d(in_channels) if has_identity else None
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv3x3(x) + self.conv1x1(x)  # (B, C_out, H/s, W/s)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    def fused_kernel(self) -> tuple[Tensor, Tensor]:
        """Step 3: the one 3x3 kernel ``(C_out, C_in/g, 3, 3)`` and bias ``(C_out,)`` equal to
        the three branches in eval mode."""
        k3, b3 = fold_branch(self.conv3x3.conv, self.conv3x3.bn)
        k1, b1 = fold_branch(self.conv1x1.conv, self.conv1x1.bn)
        kernel, bias = k3 + pad_1x1_to_3x3(k1), b3 + b1
        if self.identity is not None:
            eye = identity_conv(self.identity.num_features, self.groups, device=k3.device)
            k0, b0 = fold_branch(eye.to(k3.dtype), self.identity)
            kernel, bias = kernel + k0, bias + b0
        return kernel, bias

    @torch.no_grad()
    def fuse(self) -> ConvBNAct:
        """A new single 3x3 conv (with bias) + activation equal to this block in eval mode."""
        conv = self.conv3x3.conv
        with torch.device(conv.weight.device):
            fused = ConvBNAct(conv.in_channels, conv.out_channels, 3, conv.stride[0], None,
                              norm_layer=None, groups=self.groups)
        kernel, bias = self.fused_kernel()
        fused.conv.weight.copy_(kernel)
        fused.conv.bias.copy_(bias)
        fused.act = copy.deepcopy(self.act)
        return fused.to(conv.weight.dtype).eval()


class RepConvN(RepConv):
    """RepConv without the identity branch (YOLOv7 §4.1, Fig. 4: "planned re-parameterized
    convolution"), for a layer that already has a residual or concatenation connection.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H/s, W/s)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 act_layer: type[nn.Module] | None = nn.SiLU, groups: int = 1):
        super().__init__(in_channels, out_channels, stride, act_layer, groups, identity=False)
