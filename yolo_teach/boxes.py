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


# ----------------------------------------------------------------- dtypes and shapes
# Box arithmetic runs in a dtype that can hold its products (torchvision's ``_upcast``): a 100x100
# box in int8 has area 10,000, far beyond int8's 127, and a 900x660 box in float16 has area
# 594,000, beyond float16's 65,504 (inf, then inf - inf = NaN in the union).
#
#   input              box_area, box_convert     IoU family, losses, NMS
#   float32, float64   unchanged                 unchanged
#   float16, bfloat16  float32                   float32
#   integers           int64 (exact)             float64 (a ratio needs a float)


def _widen(x, integers: torch.dtype):
    """``x`` in a dtype safe for box arithmetic: half floats -> float32, integers -> ``integers``
    (NumPy integers -> int64: their true division gives float64 anyway)."""
    if isinstance(x, np.ndarray):
        if x.dtype == np.float16:
            return x.astype(np.float32)
        return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x if x.is_floating_point() else x.to(integers)


def upcast(boxes: Tensor) -> Tensor:
    """Boxes in the float dtype the IoU family computes in: float16/bfloat16 -> float32,
    integers -> float64, float32/float64 unchanged."""
    return _widen(boxes, torch.float64)


def _check_boxes(boxes, name: str, pairwise: bool = False) -> None:
    """Raise ``ValueError`` unless ``boxes`` is ``(..., 4)`` (``(N, 4)`` when ``pairwise``)."""
    shape = tuple(boxes.shape)
    if (pairwise and len(shape) != 2) or len(shape) == 0 or shape[-1] != 4:
        expected = "(N, 4)" if pairwise else "(..., 4)"
        raise ValueError(f"{name} must have shape {expected}, got {shape}")


def _stack(parts: list, like):
    """Stack the last-axis parts back into boxes, in NumPy or torch like the input."""
    if isinstance(like, np.ndarray):
        return np.stack(parts, axis=-1)
    return torch.stack(parts, dim=-1)


def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert boxes between ``xyxy``, ``xywh`` (top-left corner, size) and ``cxcywh`` (centre, size).

    Works on torch tensors and NumPy arrays of shape ``(..., 4)``; returns the same kind, in the
    input's dtype widened first (float16/bfloat16 -> float32, integers -> int64, so that ``x + w``
    cannot overflow; halving for ``cxcywh`` then gives a float).
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"unknown box format {fmt!r}; expected one of {BOX_FORMATS}")
    _check_boxes(boxes, "boxes")
    boxes = _widen(boxes, torch.int64)
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
    cx, cy, w, h = (box_convert(boxes, "xyxy", "cxcywh")[..., i] for i in range(4))
    return _stack([cx / width, cy / height, w / width, h / height], boxes)


def yolo_to_xyxy(boxes, width: float, height: float):
    """YOLO label format (normalised ``cx, cy, w, h``) -> pixel ``xyxy`` boxes.

    float16/bfloat16 labels give float32 pixels.
    """
    cx, cy, w, h = (upcast(boxes)[..., i] for i in range(4))
    pixels = _stack([cx * width, cy * height, w * width, h * height], boxes)  # cxcywh pixels
    return box_convert(pixels, "cxcywh", "xyxy")


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes: ``(..., 4) -> (...)``.

    Integer boxes give int64 areas (exact), float16/bfloat16 boxes float32 ones.
    """
    _check_boxes(boxes, "boxes")
    boxes = _widen(boxes, torch.int64)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


# ----------------------------------------------------------------- the IoU family
# Every ratio below is 0 / 0 only for degenerate boxes (points and lines): a zero union has a zero
# intersection, a zero-area C encloses two boxes of zero area, a zero diagonal c joins two equal
# points (so rho = 0). ``_ratio`` gives 0 there, with a zero gradient, and divides exactly
# everywhere else. An ``eps`` added to the denominator would not be exact: two identical
# 0.001 x 0.001 boxes (normalised coordinates) have union 1e-6, and 1e-6 / (1e-6 + 1e-7) = 0.909.


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, and 0 (with no gradient) where ``den == 0``."""
    empty = den == 0
    safe = torch.where(empty, 1.0, den)  # pragma: no mutate -- any non-zero stand-in: masked below
    return torch.where(empty, 0.0, num / safe)


def _iou_terms(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """IoU = |A∩B| / |A∪B| of boxes that broadcast against each other, and the union."""
    x1 = torch.maximum(b1[..., 0], b2[..., 0])
    y1 = torch.maximum(b1[..., 1], b2[..., 1])
    x2 = torch.minimum(b1[..., 2], b2[..., 2])
    y2 = torch.minimum(b1[..., 3], b2[..., 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    union = box_area(b1) + box_area(b2) - inter
    return _ratio(inter, union), union


def _enclosing_size(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of C, the smallest box enclosing both."""
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])
    return cw, ch


def _iou(b1: Tensor, b2: Tensor) -> Tensor:
    return _iou_terms(b1, b2)[0]


def _giou(b1: Tensor, b2: Tensor) -> Tensor:
    """GIoU = IoU - |C \\ (A∪B)| / |C| (Rezatofighi et al. 2019, Alg. 1)."""
    iou, union = _iou_terms(b1, b2)
    cw, ch = _enclosing_size(b1, b2)
    area_c = cw * ch
    return iou - _ratio(area_c - union, area_c)


def _diou_terms(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """``(DIoU, IoU)``: DIoU = IoU - ρ²/c², ρ the distance of the centres, c the diagonal of C."""
    iou, _ = _iou_terms(b1, b2)
    cw, ch = _enclosing_size(b1, b2)
    rho2 = ((b1[..., 0] + b1[..., 2] - b2[..., 0] - b2[..., 2]) ** 2
            + (b1[..., 1] + b1[..., 3] - b2[..., 1] - b2[..., 3]) ** 2) / 4
    return iou - _ratio(rho2, cw**2 + ch**2), iou


def _diou(b1: Tensor, b2: Tensor) -> Tensor:
    return _diou_terms(b1, b2)[0]


def _aspect_angle(w: Tensor, h: Tensor) -> Tensor:
    """arctan(w / h), and its limit where h = 0: π/2 for a horizontal line, 0 for a point."""
    return torch.where(h == 0, (math.pi / 2) * torch.sign(w), torch.atan(_ratio(w, h)))


def _ciou(b1: Tensor, b2: Tensor) -> Tensor:
    """CIoU = DIoU - α v; ``b1`` plays the prediction, ``b2`` the ground truth.

    .. math::
        v = \\frac{4}{π^2}\\left(\\arctan\\frac{w^{gt}}{h^{gt}} - \\arctan\\frac{w}{h}\\right)^2,
        \\qquad α = \\frac{v}{(1 - IoU) + v}
    """
    diou, iou = _diou_terms(b1, b2)
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
    v = (4 / math.pi**2) * (_aspect_angle(w2, h2) - _aspect_angle(w1, h1)) ** 2
    # NOTE(paper): alpha is a trade-off weight, not a function to differentiate (DIoU paper §3.3;
    # the official code computes it without gradient), so it is detached here.
    with torch.no_grad():
        alpha = _ratio(v, 1 - iou + v)  # 0 / 0 only for v = 0: identical shapes, IoU 1
    return diou - alpha * v


# Zheng et al. 2020, "Distance-IoU Loss" (seed 004 eq. 9-11): each variant adds one idea to the
# one before.
_VARIANTS = {"iou": _iou, "giou": _giou, "diou": _diou, "ciou": _ciou}


def _pairwise(boxes1: Tensor, boxes2: Tensor, kind: str) -> Tensor:
    _check_boxes(boxes1, "boxes1", pairwise=True)
    _check_boxes(boxes2, "boxes2", pairwise=True)
    # (N, 1, 4) against (1, M, 4) -> (N, M)
    return _VARIANTS[kind](upcast(boxes1)[:, None, :], upcast(boxes2)[None, :, :])


def _aligned(boxes1: Tensor, boxes2: Tensor, kind: str) -> Tensor:
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    try:
        torch.broadcast_shapes(boxes1.shape, boxes2.shape)
    except RuntimeError:
        raise ValueError(f"aligned boxes must broadcast: {tuple(boxes1.shape)} vs "
                         f"{tuple(boxes2.shape)}") from None
    return _VARIANTS[kind](upcast(boxes1), upcast(boxes2))


# The results are float32 for float16/bfloat16 boxes and float64 for integer boxes (``upcast``).


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union: ``(N, 4), (M, 4) -> (N, M)``, ``xyxy`` boxes.

    0 where both boxes are degenerate and the union is empty.
    """
    return _pairwise(boxes1, boxes2, "iou")


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of boxes row against row (or any shapes that broadcast): ``(..., 4), (..., 4) -> (...)``."""
    return _aligned(boxes1, boxes2, "iou")


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019), in [-1, 1]: ``(N, 4), (M, 4) -> (N, M)``."""
    return _pairwise(boxes1, boxes2, "giou")


def distance_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise DIoU = IoU - rho^2/c^2 (Zheng et al. 2020, eq. 6): ``(N, M)``."""
    return _pairwise(boxes1, boxes2, "diou")


def complete_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise CIoU = DIoU - alpha v (Zheng et al. 2020, eq. 8-11; seed 004 eq. 9-11).

    ``boxes1`` are treated as predictions and ``boxes2`` as ground truth (v is symmetric, so
    this only matters for the order of the output axes).
    """
    return _pairwise(boxes1, boxes2, "ciou")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()  # empty input -> 0, not NaN
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def _aligned_loss(boxes1: Tensor, boxes2: Tensor, kind: str, reduction: str) -> Tensor:
    if boxes1.shape != boxes2.shape:
        raise ValueError(f"aligned boxes must have the same shape: {tuple(boxes1.shape)} vs "
                         f"{tuple(boxes2.shape)}")
    return _reduce(1 - _aligned(boxes1, boxes2, kind), reduction)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """1 - GIoU of aligned boxes, in [0, 2]: ``(N, 4), (N, 4) -> (N,)`` (or a scalar)."""
    return _aligned_loss(boxes1, boxes2, "giou", reduction)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """1 - DIoU of aligned boxes (Zheng et al. 2020, eq. 7): ``(N,)`` (or a scalar)."""
    return _aligned_loss(boxes1, boxes2, "diou", reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """1 - CIoU of aligned boxes, predictions first (seed 004 eq. 9-11): ``(N,)``.

    .. math:: L_{CIoU} = 1 - IoU + ρ^2(b, b^{gt}) / c^2 + α v
    """
    return _aligned_loss(boxes1, boxes2, "ciou", reduction)
