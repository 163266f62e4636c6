"""Box formats, areas and the IoU family (IoU, GIoU, DIoU, CIoU).

Names follow ``torchvision.ops`` so that what you learn here transfers:

* pairwise functions take ``(N, 4)`` and ``(M, 4)`` and return ``(N, M)``:
  ``box_iou``, ``generalized_box_iou``, ``distance_box_iou``, ``complete_box_iou``
  (``aligned_box_iou`` is IoU row against row, for losses);
* aligned losses take ``(N, 4)`` and ``(N, 4)`` (row i against row i) and return ``(N,)`` or a
  scalar: ``generalized_box_iou_loss``, ``distance_box_iou_loss``, ``complete_box_iou_loss``.

Every box here is ``xyxy``: ``(x1, y1, x2, y2)`` in pixels with ``x1 <= x2`` and ``y1 <= y2``.
Other formats appear only at the edges (``box_convert``; the YOLO label helpers).

Shape legend: B batch, C channels, H W map size, N M boxes, K classes, A anchors per cell,
S grid size (YOLOv1).

Each overlap is written once (``_iou``, ``_giou``, ``_diou``, ``_ciou``), on tensors that broadcast;
the pairwise and aligned functions only differ in how they line the boxes up (``[:, None]`` vs row
by row).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _stack(parts: list, like):
    """Stack the last-axis parts back into boxes, in NumPy or torch like the input."""
    if isinstance(like, np.ndarray):
        return np.stack(parts, axis=-1)
    return torch.stack(parts, dim=-1)


def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert boxes between ``xyxy``, ``xywh`` (top-left corner, size) and ``cxcywh`` (centre, size).

    Works on torch tensors and NumPy arrays of shape ``(..., 4)``; returns the same kind.
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {BOX_FORMATS}")
    if in_fmt == out_fmt:
        return boxes.copy() if isinstance(boxes, np.ndarray) else boxes.clone()
    a, b, c, d = (boxes[..., i] for i in range(4))
    if in_fmt == "xywh":  # (x, y, w, h) -> xyxy
        c, d = a + c, b + d
    elif in_fmt == "cxcywh":  # (cx, cy, w, h) -> xyxy
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    # now (a, b, c, d) = (x1, y1, x2, y2)
    if out_fmt == "xywh":
        c, d = c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return _stack([a, b, c, d], boxes)


def xyxy_to_yolo(boxes, width: float, height: float):
    """Pixel ``xyxy`` boxes -> YOLO label format: ``(cx, cy, w, h)`` normalised to [0, 1].

    YOLO label files (Darknet, Ultralytics) store each box relative to the image size, e.g. a
    box (64, 128, 192, 256) in a 512x512 CT slice becomes (0.25, 0.375, 0.25, 0.25).
    """
    cxcywh = box_convert(boxes, "xyxy", "cxcywh")
    scale = [width, height, width, height]
    if isinstance(boxes, np.ndarray):
        return cxcywh / np.asarray(scale, dtype=cxcywh.dtype)
    return cxcywh / torch.tensor(scale, dtype=cxcywh.dtype, device=cxcywh.device)


def yolo_to_xyxy(boxes, width: float, height: float):
    """YOLO label format (normalised ``cx, cy, w, h``) -> pixel ``xyxy`` boxes."""
    scale = [width, height, width, height]
    if isinstance(boxes, np.ndarray):
        pixels = boxes * np.asarray(scale, dtype=boxes.dtype)
    else:
        pixels = boxes * torch.tensor(scale, dtype=boxes.dtype, device=boxes.device)
    return box_convert(pixels, "cxcywh", "xyxy")


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes: ``(N, 4) -> (N,)``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _iou_terms(b1: Tensor, b2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """IoU = |A∩B| / |A∪B| of boxes that broadcast against each other, and the union."""
    x1 = torch.maximum(b1[..., 0], b2[..., 0])
    y1 = torch.maximum(b1[..., 1], b2[..., 1])
    x2 = torch.minimum(b1[..., 2], b2[..., 2])
    y2 = torch.minimum(b1[..., 3], b2[..., 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(b1) + box_area(b2) - inter
    return inter / (union + eps), union


def _enclosing_size(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of C, the smallest box enclosing both."""
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])
    return cw, ch


def _iou(b1: Tensor, b2: Tensor, eps: float) -> Tensor:
    return _iou_terms(b1, b2, eps)[0]


def _giou(b1: Tensor, b2: Tensor, eps: float) -> Tensor:
    """GIoU = IoU - |C \\ (A∪B)| / |C| (Rezatofighi et al. 2019, Alg. 1)."""
    iou, union = _iou_terms(b1, b2, eps)
    cw, ch = _enclosing_size(b1, b2)
    area_c = cw * ch
    return iou - (area_c - union) / (area_c + eps)


def _diou_terms(b1: Tensor, b2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``(DIoU, IoU)``: DIoU = IoU - ρ²/c², ρ the distance of the centres, c the diagonal of C."""
    iou, _ = _iou_terms(b1, b2, eps)
    cw, ch = _enclosing_size(b1, b2)
    rho2 = ((b1[..., 0] + b1[..., 2] - b2[..., 0] - b2[..., 2]) ** 2
            + (b1[..., 1] + b1[..., 3] - b2[..., 1] - b2[..., 3]) ** 2) / 4
    return iou - rho2 / (cw**2 + ch**2 + eps), iou


def _diou(b1: Tensor, b2: Tensor, eps: float) -> Tensor:
    return _diou_terms(b1, b2, eps)[0]


def _ciou(b1: Tensor, b2: Tensor, eps: float) -> Tensor:
    """CIoU = DIoU - α v; ``b1`` plays the prediction, ``b2`` the ground truth.

    .. math::
        v = \\frac{4}{π^2}\\left(\\arctan\\frac{w^{gt}}{h^{gt}} - \\arctan\\frac{w}{h}\\right)^2,
        \\qquad α = \\frac{v}{(1 - IoU) + v}
    """
    diou, iou = _diou_terms(b1, b2, eps)
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    # NOTE(paper): alpha is a trade-off weight, not a function to differentiate (DIoU paper §3.3;
    # the official code computes it without gradient), so it is detached here.
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


# Zheng et al. 2020, "Distance-IoU Loss" (seed 004 eq. 9-11): each variant adds one idea to the
# one before. ``eps`` keeps every division finite for zero-width, zero-height or coincident boxes.
_VARIANTS = {"iou": _iou, "giou": _giou, "diou": _diou, "ciou": _ciou}


def _pairwise(boxes1: Tensor, boxes2: Tensor, kind: str, eps: float) -> Tensor:
    # (N, 1, 4) against (1, M, 4) -> (N, M)
    return _VARIANTS[kind](boxes1[:, None, :], boxes2[None, :, :], eps)


def box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise intersection over union: ``(N, 4), (M, 4) -> (N, M)``, ``xyxy`` boxes."""
    return _pairwise(boxes1, boxes2, "iou", eps)


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """IoU of boxes row against row (or any shapes that broadcast): ``(..., 4), (..., 4) -> (...)``."""
    return _iou(boxes1, boxes2, eps)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019), in [-1, 1]: ``(N, 4), (M, 4) -> (N, M)``."""
    return _pairwise(boxes1, boxes2, "giou", eps)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise DIoU = IoU - rho^2/c^2 (Zheng et al. 2020, eq. 6): ``(N, M)``."""
    return _pairwise(boxes1, boxes2, "diou", eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise CIoU = DIoU - alpha v (Zheng et al. 2020, eq. 8-11; seed 004 eq. 9-11).

    ``boxes1`` are treated as predictions and ``boxes2`` as ground truth (v is symmetric, so
    this only matters for the order of the output axes).
    """
    return _pairwise(boxes1, boxes2, "ciou", eps)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()  # empty input -> 0, not NaN
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _aligned_loss(boxes1: Tensor, boxes2: Tensor, kind: str, reduction: str, eps: float) -> Tensor:
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"aligned boxes must have the same shape: {boxes1.shape} vs {boxes2.shape}")
    return _reduce(1 - _VARIANTS[kind](boxes1, boxes2, eps), reduction)


def generalized_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """1 - GIoU of aligned boxes, in [0, 2]: ``(N, 4), (N, 4) -> (N,)`` (or a scalar)."""
    return _aligned_loss(boxes1, boxes2, "giou", reduction, eps)


def distance_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """1 - DIoU of aligned boxes (Zheng et al. 2020, eq. 7): ``(N,)`` (or a scalar)."""
    return _aligned_loss(boxes1, boxes2, "diou", reduction, eps)


def complete_box_iou_loss(
    boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """1 - CIoU of aligned boxes, predictions first (seed 004 eq. 9-11): ``(N,)``.

    .. math:: L_{CIoU} = 1 - IoU + ρ^2(b, b^{gt}) / c^2 + α v
    """
    return _aligned_loss(boxes1, boxes2, "ciou", reduction, eps)
