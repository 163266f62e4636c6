r"""Attention modules that reweight a feature map.

YOLOv4 §2.3 sorts the attention modules of detectors into channel-wise attention, represented
by Squeeze-and-Excitation (SE), and point-wise attention, represented by the Spatial Attention
Module (SAM) of CBAM. Each module here computes an attention map from the input, squashes it
with a sigmoid, and multiplies it onto the input.

- :class:`SAM` - YOLOv4's *modified* SAM (§3.3, Fig. 5; §3.4 "SAM-block"): point-wise attention,
  one weight per element.
- :class:`SE` - Squeeze-and-Excitation (Hu et al. 2018): one weight per channel, from the
  channel means (the SE blocks of the CT-lesion YOLOv5 study).
- :class:`CBAM` - Convolutional Block Attention Module (Woo et al. 2018; the improved-YOLOX
  paper's eq. 1-4): channel attention from average- and max-pooled descriptors, then spatial
  attention from the channel-wise max and mean maps.
- :func:`record_attention` and :func:`attention_off` - context managers that read the maps of
  every SE/CBAM in a model during a forward pass, or make them identities (an ablation without
  retraining). Both are forward hooks; the modules themselves stay plain.

Each gate is a submodule whose output is the attention map: ``SE.gate`` gives (B, C, 1, 1),
``CBAM.channel_gate`` (B, C, 1, 1) and ``CBAM.spatial_gate`` (B, 1, H, W), all in (0, 1).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct, fold_batch_norm


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


class SE(nn.Module):
    r"""Squeeze-and-Excitation: channel attention from the channel means (Hu et al. 2018, §3).

    Squeeze: global average pooling, :math:`z_c = \frac{1}{HW}\sum_{i,j} x_c(i, j)`.
    Excitation: a bottleneck of two fully connected layers (here 1x1 convs, the same thing on a
    1x1 map), :math:`s = \sigma(W_2\,\delta(W_1 z))` with ReLU :math:`\delta`,
    :math:`W_1 \in \mathbb{R}^{C/r \times C}` and :math:`W_2 \in \mathbb{R}^{C \times C/r}`, both
    with a bias (SENet's prototxt). Output :math:`y_c = s_c\,x_c`.

    Parameters: :math:`2 C (C/r) + C/r + C`.

    Args:
        channels: C, of the input and the output.
        reduction: r (16 in the paper).

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)  # C/r
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # squeeze: (B, C, 1, 1)
            nn.Conv2d(channels, hidden, 1),  # W_1: (B, C/r, 1, 1)
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),  # W_2: (B, C, 1, 1)
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)  # (B, C, H, W) * (B, C, 1, 1)


class ChannelGate(nn.Module):
    r"""CBAM's channel attention map (eq. 1-2), one weight per channel.

    .. math:: M_c(F) = \sigma\big(W_1(\delta(W_0 F^c_{avg})) + W_1(\delta(W_0 F^c_{max}))\big)

    One MLP (:math:`W_0`: C -> C/r, ReLU, :math:`W_1`: C/r -> C, both with a bias, as the
    official code's ``nn.Linear``) is shared by the average- and the max-pooled descriptors.

    Shapes:
        (B, C, H, W) -> (B, C, 1, 1) in (0, 1)
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)  # C/r
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden),  # W_0
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),  # W_1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_avg = x.mean(dim=(2, 3))  # F^c_avg: (B, C)
        f_max = x.amax(dim=(2, 3))  # F^c_max: (B, C)
        m_c = torch.sigmoid(self.mlp(f_avg) + self.mlp(f_max))  # (B, C)
        return m_c[:, :, None, None]  # (B, C, 1, 1)


class SpatialGate(nn.Module):
    r"""CBAM's spatial attention map (eq. 3-4), one weight per position.

    .. math:: M_s(F) = \sigma\big(f^{7\times7}([F^s_{max}; F^s_{avg}])\big)

    The channel-wise max and mean maps are stacked and convolved (7x7, no bias) into one map.

    Args:
        kernel_size: of the conv (7 in the paper).
        batch_norm: BatchNorm after the conv, as the official code (``BasicConv(..., bn=True)``).

    Shapes:
        (B, C, H, W) -> (B, 1, H, W) in (0, 1)
    """

    def __init__(self, kernel_size: int = 7, batch_norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        # NOTE(paper): eq. 3-4 have no normalisation; Jongchan/attention-module's CBAM.py puts a
        # BatchNorm(1) after the 7x7 conv (2 parameters). batch_norm=False is the paper's.
        self.bn = nn.BatchNorm2d(1) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # NOTE(paper): the paper writes [AvgPool; MaxPool]; the official ChannelPool stacks
        # [max, mean]. Only the order of the conv's two input channels differs.
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 2, H, W) -> (B, 1, H, W)

    def fuse(self) -> SpatialGate:
        """A new gate with the BatchNorm folded into the 7x7 conv (equal in eval mode); the
        paper's gate (no BatchNorm) is copied as it is."""
        fused = copy.deepcopy(self)
        if isinstance(self.bn, nn.Identity):
            return fused
        fused.conv, fused.bn = fold_batch_norm(self.conv, self.bn), nn.Identity()
        return fused


class CBAM(nn.Module):
    r"""Convolutional Block Attention Module: channel attention, then spatial attention.

    .. math:: F' = M_c(F) \otimes F, \qquad F'' = M_s(F') \otimes F'

    (Woo et al. 2018 §3; the improved-YOLOX paper's eq. 1-4, Fig. 2-4.) Parameters:
    :math:`2 C (C/r) + C/r + C` (the MLP) + :math:`2 k^2` (the conv) + 2 (its BatchNorm).

    Args:
        channels: C, of the input and the output.
        reduction: r of the channel MLP (16).
        kernel_size: of the spatial conv (7).
        spatial_bn: BatchNorm after the spatial conv (official code; not in the paper).

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7,
                 spatial_bn: bool = True):
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate(kernel_size, spatial_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_gate(x)  # F' = M_c(F) F: (B, C, H, W) * (B, C, 1, 1)
        return x * self.spatial_gate(x)  # F'' = M_s(F') F': (B, C, H, W) * (B, 1, H, W)


# --------------------------------------------------------------------------------------------
# Looking inside: record the maps, or switch the attention off
# --------------------------------------------------------------------------------------------
def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every :class:`SE` and :class:`CBAM` of ``model`` by its name in ``named_modules``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (SE, CBAM))}


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Record the attention maps of every SE/CBAM in ``model`` during the forward passes inside.

    ::

        with record_attention(model) as maps:
            model(images)
        maps["backbone.attention2"]["channel"]  # (B, C), and "spatial" (B, 1, H, W) for CBAM

    ``maps[name]`` holds ``"channel"`` (B, C) for SE and CBAM and ``"spatial"`` (B, 1, H, W)
    for CBAM, detached, from the last forward pass. Forward hooks on the gates; removed on exit.
    """
    maps: dict[str, dict[str, torch.Tensor]] = {}

    def hook(name: str, kind: str):
        def save(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            out = output.detach()
            maps.setdefault(name, {})[kind] = out.flatten(1) if kind == "channel" else out
        return save

    handles = []
    for name, module in attention_modules(model).items():
        if isinstance(module, SE):
            handles.append(module.gate.register_forward_hook(hook(name, "channel")))
        else:
            handles.append(module.channel_gate.register_forward_hook(hook(name, "channel")))
            handles.append(module.spatial_gate.register_forward_hook(hook(name, "spatial")))
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def attention_off(model: nn.Module) -> Iterator[list[str]]:
    """Make every SE/CBAM of ``model`` an identity inside the ``with`` block (yields their names).

    A forward hook returns the module's input in place of its output, so the trained weights are
    untouched: ``model(x)`` inside the block is the model without its attention.
    """
    modules = attention_modules(model)
    handles = [m.register_forward_hook(lambda module, inputs, output: inputs[0])
               for m in modules.values()]
    try:
        yield list(modules)
    finally:
        for handle in handles:
            handle.remove()
