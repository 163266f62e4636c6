"""Prediction heads shared by the anchor-based detectors, with their bias initialisation.

- :class:`AnchorHead` - per scale, a 3x3 conv and a linear 1x1 conv to ``A (5 + K)`` channels
  (YOLOv3 §2.3, YOLOv4's head).
- :class:`Detect` - YOLOv5's head without its decoding: one 1x1 conv with bias per scale (also
  what YOLOv7's ``IDetect`` becomes once its implicit knowledge is folded, and YOLOv7's
  auxiliary head), with :func:`init_detect_bias`.
- :class:`DecoupledHead` - YOLOX's anchor-free head (YOLOX §2.1): per scale a 1x1 stem, then a
  classification branch and a regression branch (box and objectness), ``4 + 1 + K`` channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yolo_teach.layers.c3 import DWConv
from yolo_teach.layers.conv import ConvBNAct, DarknetLeaky, init_objectness_bias_

YOLOV5_CLASS_OFFSET = 0.99999  # b_c = log(0.6 / (K - offset)): YOLOv5's _initialize_biases
YOLOV7_CLASS_OFFSET = 0.99  # YOLOv7's


@torch.no_grad()
def init_detect_bias(convs, strides, num_anchors: int, num_classes: int,
                     prior: float | None = None,
                     class_offset: float = YOLOV5_CLASS_OFFSET) -> None:
    r"""YOLOv5's and YOLOv7's ``_initialize_biases`` for the 1x1 prediction convs of a head:
    objectness :math:`\sigma(b_o) = 8 / (640 / s)^2` (8 objects per 640 px image, spread over
    the cells of stride s), or ``prior`` on every scale; classes
    :math:`b_c = \log(0.6 / (K - \text{class\_offset}))` (YOLOv5 0.99999, YOLOv7 0.99)."""
    for conv, s in zip(convs, strides):
        bias = conv.bias.view(num_anchors, -1)  # (A, 5+K)
        p = 8 / (640 / s) ** 2 if prior is None else prior
        # NOTE(paper): the official code adds these logs to PyTorch's random initial bias; we
        # set them, as the package's other heads do, so that the prior is exact.
        bias[:, 4] = math.log(p / (1 - p))
        bias[:, 5:] = math.log(0.6 / (num_classes - class_offset))


class Detect(nn.Module):
    """YOLOv5's Detect without its decoding (models/yolo.py): one 1x1 conv with bias per scale.

    Also YOLOv7's ``IDetect`` once its implicit vectors are folded (``m`` keeps IDetect's name,
    so the state-dict keys of the convolutions are the same) and the prediction layer of
    YOLOv7's auxiliary head.

    Shapes:
        [(B, C_i, H_i, W_i)] -> [(B, A*(5+K), H_i, W_i)], same order as the input.
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int):
        super().__init__()
        self.num_anchors, self.num_classes = num_anchors, num_classes
        self.m = nn.ModuleList(nn.Conv2d(c, num_anchors * (5 + num_classes), 1)
                               for c in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(x) for conv, x in zip(self.m, features)]  # [(B, A*(5+K), H, W)]

    def init_bias(self, strides: tuple[int, ...], prior: float | None = None,
                  class_offset: float = YOLOV5_CLASS_OFFSET) -> None:
        """:func:`init_detect_bias` on this head's convolutions."""
        init_detect_bias(self.m, strides, self.num_anchors, self.num_classes, prior,
                         class_offset)


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


class DecoupledHead(nn.Module):
    r"""YOLOX's decoupled head (YOLOX §2.1, Fig. 2; official ``yolox/models/yolo_head.py``).

    Classification and localisation conflict when they share one conv (YOLOX §2.1), so after a
    1x1 ``stem`` that brings every scale to ``hidden_channels`` the head splits in two::

        stem ─┬─ cls_convs (3x3, 3x3) ─ cls_pred (1x1, bias) ─> K class logits
              └─ reg_convs (3x3, 3x3) ─┬─ reg_pred (1x1, bias) ─> 4 box offsets
                                       └─ obj_pred (1x1, bias) ─> 1 objectness logit

    and concatenates ``[reg, obj, cls]`` as the official training output. Anchor-free: one
    prediction per cell, so there is no A.

    Args:
        in_channels: neck widths, one per scale (finest first).
        num_classes: classes K.
        hidden_channels: width of the stem and the branches (``int(256 * width)`` in YOLOX).
        depthwise: the branches' 3x3 convs are :class:`~yolo_teach.layers.c3.DWConv`
            (YOLOX-Nano); the stems stay plain 1x1 convs, as in the official code.
        act_layer: activation class (SiLU).

    Shapes:
        [(B, C_i, H_i, W_i)] -> [(B, 4 + 1 + K, H_i, W_i)], same order as the input.
    """

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, hidden_channels: int = 256,
                 depthwise: bool = False, act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.num_classes = num_classes
        c, act = hidden_channels, act_layer

        def conv3x3() -> nn.Module:
            return DWConv(c, c, 3, 1, act) if depthwise else ConvBNAct(c, c, 3, 1, act)

        self.stems = nn.ModuleList(ConvBNAct(c_in, c, 1, 1, act) for c_in in in_channels)
        self.cls_convs = nn.ModuleList(nn.Sequential(conv3x3(), conv3x3()) for _ in in_channels)
        self.reg_convs = nn.ModuleList(nn.Sequential(conv3x3(), conv3x3()) for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(c, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(c, 1, 1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for k, x in enumerate(features):
            x = self.stems[k](x)  # (B, hidden, H, W)
            cls_feat = self.cls_convs[k](x)  # (B, hidden, H, W)
            reg_feat = self.reg_convs[k](x)  # (B, hidden, H, W)
            reg = self.reg_preds[k](reg_feat)  # (B, 4, H, W)
            obj = self.obj_preds[k](reg_feat)  # (B, 1, H, W)
            cls = self.cls_preds[k](cls_feat)  # (B, K, H, W)
            outputs.append(torch.cat([reg, obj, cls], dim=1))  # (B, 4 + 1 + K, H, W)
        return outputs

    @torch.no_grad()
    def init_bias(self, prior: float = 0.01) -> None:
        r"""Start sigmoid(obj) and sigmoid(cls) at ``prior``: :math:`b = -\log((1 - \pi) / \pi)`
        (official ``YOLOXHead.initialize_biases(1e-2)``; RetinaNet §4.1)."""
        bias = -math.log((1.0 - prior) / prior)
        for pred in [*self.cls_preds, *self.obj_preds]:
            pred.bias.fill_(bias)
