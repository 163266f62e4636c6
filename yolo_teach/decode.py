"""From raw network outputs to detections: decoding, NMS post-processing, predict.

A YOLO network outputs raw numbers ``t``; a *box coder* (:mod:`yolo_teach.coders`, whose
coders are re-exported here) turns them into boxes in the grid units of one output map.
:func:`decode_anchor_maps` (YOLOv2/v3) or :func:`decode_yolov1` turn a batch of outputs into
``(B, N, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, objectness, class probabilities...]``, and
:func:`postprocess` keeps the confident ones and removes duplicates with per-class NMS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from yolo_teach.boxes import box_convert
from yolo_teach.coders import (  # noqa: F401  (re-exported: imported from here across the package)
    VARIANCES,
    GridSensitiveBoxCoder,
    SSDBoxCoder,
    YOLOv2BoxCoder,
    YOLOv5BoxCoder,
    as_coder_list,
)
from yolo_teach.nms import batched_nms

# Our NMS is a readable loop over an N x N IoU matrix: cap the candidates per image before it
# (YOLOv5 caps at 30000 for torchvision's C++ NMS).
MAX_CANDIDATES = 1000


# --------------------------------------------------------------------------------------------
# Grids and map layout
# --------------------------------------------------------------------------------------------
_GRIDS: dict[tuple, Tensor] = {}


def make_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Top-left corners ``(c_x, c_y)`` of every cell of an ``H x W`` map: ``(H, W, 2)``.

    Cached per ``(H, W, device, dtype)``: a detector asks for the same few grids every step.
    """
    key = (height, width, torch.device(device) if device is not None else None, dtype)
    if key not in _GRIDS:
        # a normal tensor even when first asked for under torch.inference_mode(), so that the
        # cached grid can later take part in training
        with torch.inference_mode(False):
            _GRIDS[key] = _grid(height, width, device, dtype)
    return _GRIDS[key]


def _grid(height: int, width: int, device, dtype) -> Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1)  # (H, W, 2)


def split_anchor_map(p: Tensor, num_anchors: int) -> Tensor:
    """Anchor-major channels to one row per prediction: ``(B, A(5+K), H, W) -> (B, A, H, W, 5+K)``.

    The channels of Darknet's region and yolo layers are ``[t_x, t_y, t_w, t_h, t_o, K class
    logits]`` for anchor 0, then for anchor 1, and so on.
    """
    b, c, h, w = p.shape
    p = p.view(b, num_anchors, c // num_anchors, h, w)  # (B, A, 5+K, H, W)
    return p.permute(0, 1, 3, 4, 2)  # (B, A, H, W, 5+K)


def as_map_list(outputs: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """YOLOv2's single map or YOLOv3's list of maps, as a list (finest first)."""
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def decode_anchor_maps(
    maps: Tensor | Sequence[Tensor],
    anchors: Sequence,
    strides: Sequence[int],
    coder,
    class_activation: str = "sigmoid",
) -> Tensor:
    """Raw YOLOv2/v3 maps -> every predicted box with its objectness and class probabilities.

    Per prediction, with :math:`(c_x, c_y)` its cell, :math:`(p_w, p_h)` its anchor and ``s`` the
    stride: the box is ``coder.decode(t, c, p) * s``, the objectness is :math:`σ(t_o)` (YOLOv2
    §2: "the objectness prediction still predicts the IOU of the ground truth and the proposed
    box") and the class probabilities are :math:`σ(t_k)` (YOLOv3 §2.2, independent logistic
    classifiers) or a softmax over the K logits (YOLOv2's region layer).

    Args:
        maps: ``(B, A(5+K), H, W)`` or a list of them, one per stride.
        anchors: per map, ``(A, 2)`` anchor widths and heights in **pixels** of the input.
        strides: per map, its stride in pixels.
        coder: a box coder (:class:`~yolo_teach.protocols.BoxCoder`), or one per map.
        class_activation: ``"sigmoid"`` or ``"softmax"``.

    Returns:
        ``(B, N, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, objectness, p_1..p_K]``, boxes ``xyxy`` in
        pixels, ``N = sum A H W`` in map order, then anchor, row, column.
    """
    if class_activation not in ("sigmoid", "softmax"):
        raise ValueError(f"class_activation must be 'sigmoid' or 'softmax', got {class_activation!r}")
    rows = []
    maps = as_map_list(maps)
    coders = as_coder_list(coder, len(maps))
    for p, anchors_px, stride, map_coder in zip(maps, anchors, strides, coders):
        anchors_px = torch.as_tensor(anchors_px, dtype=p.dtype, device=p.device)  # (A, 2)
        p = split_anchor_map(p, len(anchors_px))  # (B, A, H, W, 5+K)
        grid = make_grid(p.shape[2], p.shape[3], p.device, p.dtype)  # (H, W, 2)
        anchor = (anchors_px / stride)[:, None, None, :]  # (A, 1, 1, 2) in cells
        box = map_coder.decode(p[..., :4], grid, anchor) * stride  # (B, A, H, W, 4) cxcywh px
        obj = torch.sigmoid(p[..., 4:5])  # (B, A, H, W, 1)
        logits = p[..., 5:]
        cls = torch.sigmoid(logits) if class_activation == "sigmoid" else logits.softmax(-1)
        row = torch.cat([box_convert(box, "cxcywh", "xyxy"), obj, cls], dim=-1)
        rows.append(row.reshape(p.shape[0], -1, row.shape[-1]))  # (B, A H W, 5+K)
    return torch.cat(rows, dim=1)  # (B, N, 5+K)


def anchor_points(grid_sizes, strides, device=None) -> tuple[Tensor, Tensor]:
    """Centres ``(P, 2)`` in pixels and strides ``(P,)`` of every point, scale after scale,
    row-major within a scale (the order of the head's flattened outputs)."""
    centres, point_strides = [], []
    for (h, w), s in zip(grid_sizes, strides):
        y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                              indexing="ij")
        centres.append((torch.stack([x, y], -1).reshape(-1, 2) + 0.5) * s)  # (H W, 2)
        point_strides.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(centres).float(), torch.cat(point_strides)


def flatten_point_maps(outputs: Sequence[Tensor]) -> Tensor:
    """Anchor-free maps ``[(B, C, H, W), ...]`` -> ``(B, P, C)``, scale after scale, row-major
    (the order of :func:`anchor_points`)."""
    return torch.cat([o.flatten(2).transpose(1, 2) for o in outputs], dim=1)


def decode_points(raw: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """Boxes of an anchor-free head (YOLOX §2.1): ``raw (..., P, 4)`` -> xyxy pixels.

    The centre is the cell's top-left corner plus the raw offset, in strides, and the size an
    exponential of the raw value, in strides (official ``decode_outputs``):
    :math:`c_x = (x + t_x) s`, :math:`w = e^{t_w} s`. ``points`` are the cell centres
    ``(x + 0.5) s`` and ``strides (P,)``.
    """
    s = strides[:, None]  # (P, 1)
    centre = raw[..., :2] * s + points - 0.5 * s
    size = raw[..., 2:4].exp() * s
    return box_convert(torch.cat([centre, size], -1), "cxcywh", "xyxy")


def decode_anchor_free(outputs: Sequence[Tensor], strides: Sequence[int]) -> Tensor:
    """YOLOX's raw maps ``[(B, 4 + 1 + K, H/s, W/s)]`` -> ``(B, P, 4 + 1 + K)`` rows
    ``[x1, y1, x2, y2, objectness, class probabilities...]`` for :func:`postprocess`."""
    flat = flatten_point_maps(outputs)  # (B, P, 5 + K)
    points, point_strides = anchor_points([o.shape[-2:] for o in outputs], strides, flat.device)
    boxes = decode_points(flat[..., :4], points.to(flat.dtype), point_strides.to(flat.dtype))
    return torch.cat([boxes, flat[..., 4:].sigmoid()], -1)


def decode_yolov1(out: Tensor, img_size: int, num_boxes: int = 2) -> Tensor:
    """Raw YOLOv1 output -> every predicted box with its confidence and class probabilities.

    YOLOv1 §2: per cell ``(col, row)`` of the ``S x S`` grid, each of the ``num_boxes``
    predictors gives ``x, y`` (the centre, as an offset within the cell), ``\\sqrt{w}``,
    ``\\sqrt{h}`` (relative to the image; §2.2 "we predict the square root of the bounding box
    width and height") and a confidence; the cell gives ``Pr(Class_i | Object)``:

    .. math::
        c_x = \\frac{col + x}{S} \\cdot \\text{img}, \\quad
        w = (\\sqrt{w})^2 \\cdot \\text{img}

    # NOTE(paper): the outputs are linear, so confidence and class scores are clamped to [0, 1]
    # to read as probabilities; Darknet's detection layer uses them as they are.

    Args:
        out: ``(B, S, S, 5 num_boxes + K)`` raw output of :class:`~yolo_teach.models.YOLOv1`.
        img_size: side of the square network input in pixels.
        num_boxes: predictors per cell (B in the paper).

    Returns:
        ``(B, S S num_boxes, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, confidence, p_1..p_K]``, every
        predictor of a cell sharing the cell's class probabilities.
    """
    batch, s = out.shape[0], out.shape[1]
    boxes = out[..., : 5 * num_boxes].reshape(batch, s, s, num_boxes, 5)  # (B, S, S, nb, 5)
    cls = out[..., 5 * num_boxes :].clamp(0, 1)  # (B, S, S, K)
    cell = make_grid(s, s, out.device, out.dtype)[:, :, None, :]  # (S, S, 1, 2)
    xy = (boxes[..., :2] + cell) / s * img_size  # (B, S, S, nb, 2)
    wh = boxes[..., 2:4] ** 2 * img_size  # (B, S, S, nb, 2)
    xyxy = box_convert(torch.cat([xy, wh], dim=-1), "cxcywh", "xyxy")  # (B, S, S, nb, 4)
    conf = boxes[..., 4:5].clamp(0, 1)  # (B, S, S, nb, 1)
    cls = cls[:, :, :, None, :].expand(-1, -1, -1, num_boxes, -1)  # (B, S, S, nb, K)
    return torch.cat([xyxy, conf, cls], dim=-1).reshape(batch, s * s * num_boxes, -1)


# --------------------------------------------------------------------------------------------
# Two-step (RefineDet) decoding
# --------------------------------------------------------------------------------------------
def decode_refined(outputs, priors: Tensor, coder: SSDBoxCoder | None = None,
                   filter_threshold: float = 0.99) -> Tensor:
    """A two-step detector's :class:`~yolo_teach.layers.refine.RefineOutput` -> ``(B, N, 5 + K)``
    rows, as :func:`postprocess` reads them (RefineDet §3).

    The ARM's offsets move the default anchors (``priors (N, 4)`` xyxy pixels), the ODM's move
    those refined anchors to the final boxes; the class probabilities are the ODM's softmax
    without its background column. The objectness column is 0 for the anchors the ARM calls
    background with probability above ``filter_threshold`` (negative anchor filtering, §3.2)
    and 1 elsewhere, so that they never become detections. ``coder``: :class:`SSDBoxCoder`
    with SSD's variances unless given.
    """
    coder = coder if coder is not None else SSDBoxCoder()
    arm_loc, arm_conf, odm_loc, odm_conf = outputs
    priors = priors.to(arm_loc.device, arm_loc.dtype)
    refined = coder.decode(arm_loc, priors)  # (B, N, 4) the ARM's anchors
    boxes = coder.decode(odm_loc, refined)  # (B, N, 4)
    keep = torch.softmax(arm_conf, dim=-1)[..., :1] <= filter_threshold  # (B, N, 1)
    probs = torch.softmax(odm_conf, dim=-1)[..., 1:]  # (B, N, K)
    return torch.cat([boxes, keep.to(boxes.dtype), probs], dim=-1)  # (B, N, 5 + K)


# --------------------------------------------------------------------------------------------
# Post-processing and prediction
# --------------------------------------------------------------------------------------------
def postprocess(
    decoded: Tensor,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 300,
    class_agnostic: bool = False,
    nms: Callable = batched_nms,
) -> list[dict[str, Tensor]]:
    """Decoded rows -> one prediction dict per image (confidence filter, then NMS).

    The class-specific score of a box is objectness times class probability (YOLOv1 §2,
    :math:`\\Pr(\\text{Class}_i | \\text{Object}) \\cdot \\Pr(\\text{Object}) \\cdot
    \\text{IOU}^{truth}_{pred}`). Every (box, class) pair scoring above ``conf_threshold`` is a
    candidate, as in Darknet, which scores each class of each box; NMS then runs per class
    (:func:`~yolo_teach.nms.batched_nms`), or over all classes with ``class_agnostic``.

    Args:
        decoded: ``(B, N, 4 + 1 + K)`` from :func:`decode_anchor_maps` or :func:`decode_yolov1`.

    Returns:
        ``B`` dicts ``{"boxes": (n, 4) xyxy pixels, "scores": (n,), "labels": (n,) int64}``, by
        decreasing score, ``n <= max_det``.
    """
    results = []
    for rows in decoded:  # (N, 5+K) for one image
        scores = rows[:, 4:5] * rows[:, 5:]  # (N, K)
        box_index, labels = torch.nonzero(scores > conf_threshold, as_tuple=True)  # (n,), (n,)
        scores = scores[box_index, labels]  # (n,)
        if len(scores) > MAX_CANDIDATES:
            top = torch.topk(scores, MAX_CANDIDATES).indices
            box_index, labels, scores = box_index[top], labels[top], scores[top]
        boxes = rows[box_index, :4]  # (n, 4)
        groups = torch.zeros_like(labels) if class_agnostic else labels
        kept = nms(boxes.float(), scores.float(), groups, iou_threshold)
        # soft-NMS returns (keep, new scores): it lowers the scores of the boxes it keeps
        keep, rescored = kept if isinstance(kept, tuple) else (kept, None)
        keep = keep[:max_det].to(boxes.device)
        scores = scores[keep] if rescored is None else rescored[:max_det].to(scores)
        results.append({"boxes": boxes[keep], "scores": scores, "labels": labels[keep]})
    return results


def predict(
    model: nn.Module,
    images: Tensor,
    decoder: Callable[[Tensor | list[Tensor]], Tensor],
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 300,
    class_agnostic: bool = False,
    nms: Callable = batched_nms,
) -> list[dict[str, Tensor]]:
    """Run ``model`` in eval mode on ``images (B, 3, S, S)`` and return its detections.

    ``decoder`` maps the raw outputs to ``(B, N, 5+K)`` (e.g. a ``functools.partial`` of
    :func:`decode_anchor_maps`). Boxes are clipped to the ``S x S`` input; the model's
    train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            detections = postprocess(
                decoder(model(images)), conf_threshold, iou_threshold, max_det, class_agnostic,
                nms,
            )
            height, width = images.shape[-2:]
            for det in detections:
                det["boxes"][:, 0::2].clamp_(0, width)
                det["boxes"][:, 1::2].clamp_(0, height)
    finally:
        model.train(was_training)
    return detections
