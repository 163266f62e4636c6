r"""What the two-step detectors (RefineDet, RefineDetLite) share: their raw output, their default
anchors (Caffe's ``PriorBox``) and the flattening of per-level prediction maps into rows.

RefineDet (Zhang et al., CVPR 2018, §3) predicts twice per anchor: the **anchor refinement
module** (ARM) gives a first offset and a binary objectness for every default anchor, the
**object detection module** (ODM) a second offset, applied to the anchor *as the ARM refined
it*, and the class scores. Both are flattened to one row per anchor, in one order shared by the
anchors of :func:`prior_boxes`: level by level (finest first), within a level row y then
column x, within a location the aspect ratios in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


class RefineOutput(NamedTuple):
    """The raw predictions of a two-step detector, one row per default anchor.

    A ``NamedTuple``, so that it travels wherever a tuple of tensors does (ONNX export, the
    float32 cast of the trainer) and its fields keep their names.

    Attributes:
        arm_loc: (B, N, 4) first offsets, relative to the default anchors.
        arm_conf: (B, N, 2) ARM logits ``[background, object]``.
        odm_loc: (B, N, 4) second offsets, relative to the ARM-refined anchors.
        odm_conf: (B, N, K + 1) class logits, background = class 0 (as the official code).
    """

    arm_loc: Tensor
    arm_conf: Tensor
    odm_loc: Tensor
    odm_conf: Tensor


def flatten_levels(maps: Sequence[Tensor], width: int) -> Tensor:
    """Per-level prediction maps ``(B, A * width, H_l, W_l)`` -> rows ``(B, N, width)``,
    ``N = sum_l H_l W_l A``: the official ``Permute(0, 2, 3, 1)`` + ``Flatten`` + ``Concat``."""
    rows = [m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, width) for m in maps]  # (B, HWA, w)
    return torch.cat(rows, dim=1)  # (B, N, width)


def halved_sizes(size: int, halvings: int) -> list[int]:
    """The side of a map after each of ``halvings`` stride-2 layers with 'same' padding
    (``ceil(size / 2)`` each time, as a 3x3/2 conv with padding 1 or Caffe's ceil-mode pool):
    ``halved_sizes(320, 7) = [160, 80, 40, 20, 10, 5, 3]``."""
    sizes = []
    for _ in range(halvings):
        size = math.ceil(size / 2)
        sizes.append(size)
    return sizes


def prior_boxes(img_size: int | tuple[int, int], map_sizes: Sequence[int | tuple[int, int]],
                min_sizes: Sequence[float], aspect_ratios: Sequence[float],
                max_sizes: Sequence[float] | None = None) -> Tensor:
    r"""Default anchors (Caffe's ``PriorBox``, not clipped), ``xyxy`` pixels.

    On level ``l`` (a map of ``h x w`` cells over an ``H x W`` image, so a step of ``H / h``
    and ``W / w`` pixels, the ``PriorBox`` default when no step is given) the cell in row
    ``i``, column ``j`` has its centre at :math:`((j + 0.5) W / w, (i + 0.5) H / h)`, and one
    anchor per aspect ratio :math:`r = w / h`: width :math:`m_l \sqrt r`, height
    :math:`m_l / \sqrt r` for the level's minimum size :math:`m_l`. With ``max_sizes`` (SSD's
    second scale, which RefineDet's official nets leave out) a square of side
    :math:`\sqrt{m_l M_l}` follows the ratio-1 anchor, as in ``PriorBox``.

    Args:
        img_size: input side, an int or ``(H, W)``.
        map_sizes: per level, the side of its map, an int or ``(h, w)``; finest first.
        min_sizes: per level, :math:`m_l` in pixels.
        aspect_ratios: the ratios ``w / h`` of every location, in the rows' order (the
            first one 1 when ``max_sizes`` is given).
        max_sizes: per level, :math:`M_l` in pixels, or ``None``.

    Returns:
        ``(N, 4)`` float32, ``N = sum_l h_l w_l A``, in the order of :func:`flatten_levels`.
    """
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    if len(map_sizes) != len(min_sizes):
        raise ValueError(f"{len(map_sizes)} maps but {len(min_sizes)} minimum sizes")
    if max_sizes is not None and (len(max_sizes) != len(min_sizes) or aspect_ratios[0] != 1):
        raise ValueError("max_sizes needs one size per level and aspect ratio 1 first")
    ratios = torch.tensor(aspect_ratios, dtype=torch.float64)  # (A,)
    boxes = []
    for level, (size, min_size) in enumerate(zip(map_sizes, min_sizes)):
        rows, cols = (size, size) if isinstance(size, int) else size
        cy, cx = torch.meshgrid((torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows,
                                (torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols,
                                indexing="ij")  # (rows, cols) each
        centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (hw, 1, 4)
        half_w, half_h = min_size * ratios.sqrt() / 2, min_size / ratios.sqrt() / 2  # (A,)
        if max_sizes is not None:  # the square of side sqrt(m M) after the ratio-1 anchor
            side = torch.tensor([math.sqrt(min_size * max_sizes[level]) / 2], dtype=torch.float64)
            half_w = torch.cat([half_w[:1], side, half_w[1:]])  # (A + 1,)
            half_h = torch.cat([half_h[:1], side, half_h[1:]])  # (A + 1,)
        half = torch.stack([-half_w, -half_h, half_w, half_h], dim=-1)  # (A, 4)
        boxes.append((centres + half).reshape(-1, 4))  # (hw A, 4)
    return torch.cat(boxes).float()  # (N, 4)


__all__ = ["RefineOutput", "flatten_levels", "halved_sizes", "prior_boxes"]
