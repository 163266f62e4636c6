"""The DIoU paper's simulation: regress many anchors onto many targets with each IoU-family loss.

Zheng et al. 2020, "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression"
(AAAI), §"Analysis to IoU and GIoU Losses" → "Simulation Experiment" and Algorithm 1. No detector
and no image: a box ``B = (x, y, w, h)`` is itself the parameter, and gradient descent on one loss
moves it towards a fixed target ``B^gt``. How fast and how far it gets shows what each loss's
gradient does; the paper reads its results as:

* **IoU loss** ``1 - IoU``: zero gradient while ``B`` and ``B^gt`` do not overlap, so such an
  anchor never moves;
* **GIoU loss** ``1 - IoU + |C \\ (B ∪ B^gt)| / |C|``: first grows ``B`` until it overlaps
  ``B^gt``, then behaves much like the IoU loss, slowly;
* **DIoU loss** ``1 - IoU + ρ²(b, b^gt) / c²`` (eq. 7): pulls the centre straight towards the
  target centre;
* **CIoU loss** ``DIoU + α v`` (eq. 8-11): also matches the aspect ratio.

The setting (Algorithm 1):

* seven targets ``B^gt_i`` of area 1 with aspect ratios (w:h) 1:4, 1:3, 1:2, 1:1, 2:1, 3:1, 4:1,
  all centred at (10, 10);
* ``P`` points uniformly scattered in the disc of radius ``r = 3`` around (10, 10); at each point
  49 anchors: 7 areas (0.5, 0.67, 0.75, 1, 1.33, 1.5, 2) × the same 7 aspect ratios;
* every anchor regresses to every target: ``N = 7 · 49 · P = 343 P`` regression cases
  (the paper: ``P = 5000``, 1,715,000 cases), for ``T = 200`` iterations of

  .. math::
      B^{t} = B^{t-1} - η \\, (2 - IoU^{t-1}) \\, \\nabla_B L(B^{t-1}, B^{gt}),
      \\qquad η = 0.1 \\text{ for } t \\le 0.8T, \\; 0.01 \\text{ for } t \\le 0.9T,
      \\; 0.001 \\text{ after}

  (the factor ``2 - IoU`` takes bigger steps while the overlap is small);
* the regression error after iteration ``t`` is ``E(t) = Σ_n ‖B^t_n - B^gt_n‖₁`` over all
  cases, with boxes as ``(x, y, w, h)``.

All ``N`` cases run as one ``(N, 4)`` batch: one call of the library's loss per iteration and one
``torch.autograd.grad``, no Python loop over boxes. The losses are the ones the detectors train
with (:mod:`yolo_teach.boxes`), so the simulation tests them too.

What to expect (measured, 50 to 2,000 points, see ``tests/test_regression_sim.py``): most anchors
start without overlap and never move under the IoU loss; GIoU, DIoU and CIoU all converge; DIoU
and CIoU bring the centres closest; CIoU ends with the smallest total error. Unlike the paper's
Figure 3, GIoU is not slow here, and with the paper's step schedule it ends below DIoU, whose
penalty ``ρ²/c²`` rewards a bigger box (larger ``c``) while the centres are apart; with a constant
step (``decay=False``) the paper's order DIoU, CIoU < GIoU < IoU returns.

The gradients are autograd's exact gradients, not the authors' hand-written ones: see the
``NOTE(paper)`` in :func:`simulate_regression`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from yolo_teach.boxes import (
    aligned_box_iou,
    box_convert,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)

TARGET_CENTRE = (10.0, 10.0)
ASPECT_RATIOS = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)  # w / h of targets and anchors
ANCHOR_AREAS = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)  # anchor area; every target has area 1
CASES_PER_POINT = len(ASPECT_RATIOS) * len(ANCHOR_AREAS) * len(ASPECT_RATIOS)  # 7 · 7 · 7 = 343

LossFn = Callable[[Tensor, Tensor], Tensor]  # aligned xyxy (N, 4), (N, 4) -> (N,)


def iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """``1 - IoU`` of aligned ``xyxy`` boxes: ``(N, 4), (N, 4) -> (N,)`` (or a scalar).

    The plain IoU loss (Yu et al. 2016, "UnitBox"), the baseline of the DIoU paper (eq. 2).
    """
    loss = 1 - aligned_box_iou(boxes1, boxes2)  # (N,)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


# The four losses of the paper's Figure 3, in its order. Each takes aligned xyxy boxes,
# prediction first (CIoU's v treats the first box as the prediction), and returns (N,).
REGRESSION_LOSSES: dict[str, LossFn] = {
    "IoU": iou_loss,
    "GIoU": generalized_box_iou_loss,
    "DIoU": distance_box_iou_loss,
    "CIoU": complete_box_iou_loss,
}


def box_size(area: float, aspect_ratio: float) -> tuple[float, float]:
    """``(w, h)`` of a box with ``w h = area`` and ``w / h = aspect_ratio``."""
    return math.sqrt(area * aspect_ratio), math.sqrt(area / aspect_ratio)


def simulation_targets(dtype: torch.dtype = torch.float64) -> Tensor:
    """The seven targets of Algorithm 1, ``xyxy``: area 1, w:h from 1:4 to 4:1, centre (10, 10).

    Returns ``(7, 4)``, in the order of :data:`ASPECT_RATIOS`.
    """
    cx, cy = TARGET_CENTRE
    rows = [(cx, cy, *box_size(1.0, ratio)) for ratio in ASPECT_RATIOS]
    return box_convert(torch.tensor(rows, dtype=dtype), "cxcywh", "xyxy")  # (7, 4)


def simulation_points(num_points: int, radius: float = 3.0, seed: int = 0,
                      dtype: torch.dtype = torch.float64) -> Tensor:
    """``num_points`` anchor centres uniform in the disc of ``radius`` around (10, 10): ``(P, 2)``.

    Uniform in area, not in radius: ``ρ = r √u`` with ``u ~ U(0, 1)`` (as the official MATLAB code
    draws them), else the points would crowd the centre. Deterministic for a given ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    u, angle = torch.rand(2, num_points, generator=gen, dtype=torch.float64)  # (P,), (P,)
    rho = radius * u.sqrt()
    angle = 2 * math.pi * angle
    centre = torch.tensor(TARGET_CENTRE, dtype=torch.float64)
    points = centre + torch.stack([rho * angle.cos(), rho * angle.sin()], dim=-1)  # (P, 2)
    return points.to(dtype)


def simulation_boxes(num_points: int = 50, radius: float = 3.0, seed: int = 0,
                     dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Every (anchor, target) regression case of Algorithm 1 as two aligned ``xyxy`` batches.

    Cases are ordered point-major like the paper's loops: point, then target (7 aspect ratios),
    then anchor area (7), then anchor aspect ratio (7); so ``x.reshape(P, 7, 7, 7, 4)`` recovers
    the structure and case ``n`` belongs to point ``n // 343``.

    Args:
        num_points: ``P``, anchor centres in the disc (the paper: 5000; 50 runs the four losses
            in about 5 s on one CPU core).
        radius: radius of the disc around the targets' centre (10, 10).
        seed: seed of the points; the boxes are a pure function of ``(num_points, radius, seed)``.

    Returns:
        ``(anchors, targets)``, both ``(343 P, 4)`` ``xyxy``.
    """
    points = simulation_points(num_points, radius, seed, dtype)  # (P, 2)
    shapes = torch.tensor([box_size(a, r) for a in ANCHOR_AREAS for r in ASPECT_RATIOS],
                          dtype=dtype)  # (49, 2) anchor (w, h)
    num_targets, num_shapes = len(ASPECT_RATIOS), shapes.shape[0]
    anchors = torch.cat([
        points[:, None, None, :].expand(num_points, num_targets, num_shapes, 2),
        shapes[None, None, :, :].expand(num_points, num_targets, num_shapes, 2),
    ], dim=-1)  # (P, 7, 49, 4) cxcywh
    targets = simulation_targets(dtype)[None, :, None, :].expand(
        num_points, num_targets, num_shapes, 4)  # (P, 7, 49, 4) xyxy
    anchors = box_convert(anchors.reshape(-1, 4), "cxcywh", "xyxy")  # (343 P, 4)
    return anchors, targets.reshape(-1, 4).clone()  # (343 P, 4), (343 P, 4)


def step_size(t: int, iterations: int, lr: float = 0.1, decay: bool = True) -> float:
    """η at iteration ``t`` (1-based) of Algorithm 1: ``lr`` up to ``0.8 T``, ``lr / 10`` up to
    ``0.9 T``, ``lr / 100`` after (with ``decay=False``: ``lr`` throughout)."""
    if not decay or t <= 0.8 * iterations:
        return lr
    return lr / 10 if t <= 0.9 * iterations else lr / 100


@dataclass(frozen=True)
class RegressionRun:
    """What :func:`simulate_regression` returns.

    Attributes:
        error: ``(T,)`` total ℓ1 error ``E(t) = Σ_n ‖B^t_n - B^gt_n‖₁`` after each iteration,
            boxes as ``(x, y, w, h)`` (Algorithm 1; the curves of the paper's Figure 3(b)).
        centre_error: ``(T,)`` the part of ``error`` in ``(x, y)``: how far the centres still are.
        size_error: ``(T,)`` the part in ``(w, h)``; ``error = centre_error + size_error``.
        final: ``(N, 4)`` the regressed boxes after ``T`` iterations, ``xyxy``.
        final_error: ``(N,)`` ``‖B^T_n - B^gt_n‖₁`` of each case (Figure 3(a) sums these per point).
        final_iou: ``(N,)`` IoU of each regressed box with its target.
        trajectory: ``(T + 1, N, 4)`` ``xyxy`` boxes from the anchors (``t = 0``) to the end, or
            ``None`` unless ``record=True`` (it costs ``32 (T + 1) N`` bytes: keep ``N`` small).
    """

    error: np.ndarray
    centre_error: np.ndarray
    size_error: np.ndarray
    final: Tensor
    final_error: np.ndarray
    final_iou: np.ndarray
    trajectory: Tensor | None = None


def simulate_regression(loss_fn: LossFn, anchors: Tensor, targets: Tensor, *,
                        iterations: int = 200, lr: float = 0.1, decay: bool = True,
                        weighted: bool = True, record: bool = False) -> RegressionRun:
    """Regress every anchor onto its target by gradient descent on ``loss_fn`` (Algorithm 1).

    The parameter is the box ``B = (x, y, w, h)`` itself (``(N, 4)``, one row per case); each
    iteration converts it to ``xyxy``, evaluates ``loss_fn(B, B^gt)`` for all rows at once and
    steps against the gradient:

    .. math::
        B^{t} = B^{t-1} - η_t (2 - IoU^{t-1}) \\nabla_B L(B^{t-1}, B^{gt})

    Rows do not interact, so the gradient of the summed loss is each row's own gradient.
    (Algorithm 1 writes ``+ η (2 - IoU) ∇B``: the authors' code climbs the IoU-type score, which
    is the same step as descending the loss ``1 - score``.)

    Args:
        loss_fn: aligned loss ``(N, 4), (N, 4) -> (N,)`` on ``xyxy`` boxes, prediction first,
            e.g. a value of :data:`REGRESSION_LOSSES`.
        anchors: ``(N, 4)`` ``xyxy`` starting boxes.
        targets: ``(N, 4)`` ``xyxy`` targets, row ``n`` for anchor ``n``.
        iterations: ``T`` (the paper: 200).
        lr: the first step size η (the paper: 0.1); see :func:`step_size` for ``decay``.
        weighted: multiply each step by ``2 - IoU`` as the paper does; ``False`` for plain
            gradient descent.
        record: keep every iteration's boxes in ``trajectory`` (for pictures of a few anchors).

    Returns:
        a :class:`RegressionRun`.
    """
    if anchors.shape != targets.shape or anchors.shape[-1] != 4:
        raise ValueError(f"anchors and targets must both be (N, 4): {anchors.shape}, {targets.shape}")
    targets = targets.detach()
    target_xywh = box_convert(targets, "xyxy", "cxcywh")  # (N, 4)
    box = box_convert(anchors.detach(), "xyxy", "cxcywh")  # (N, 4) B = (x, y, w, h)
    parts = np.empty((iterations, 2), dtype=np.float64)  # (T, 2) centre and size error
    path = [anchors.detach().clone()] if record else None
    for t in range(1, iterations + 1):
        param = box.requires_grad_(True)
        pred = box_convert(param, "cxcywh", "xyxy")  # (N, 4)
        loss = loss_fn(pred, targets)  # (N,)
        # NOTE(paper): exact gradients of the library's losses, as in any PyTorch training. The
        # authors' MATLAB simulation (github.com/Zzh-tju/DIoU, "simulation experiment/") writes
        # its gradients by hand: edge gradients mapped to (w, h) as ∂/∂w = ∂/∂r - ∂/∂l (without
        # the chain rule's 1/2), GIoU's union differentiated through an unclamped intersection,
        # DIoU's enclosing-box terms with hand-set directions, CIoU's ∂v/∂w without 1/(w² + h²)
        # (paper eq. 12). So GIoU fares better here than in the paper's Figure 3; a PyTorch
        # reproduction in that repository's issue #22 reports the same.
        (grad,) = torch.autograd.grad(loss.sum(), param)  # (N, 4) ∂L_n/∂B_n
        with torch.no_grad():
            step = step_size(t, iterations, lr, decay) * grad
            if weighted:
                step = step * (2 - aligned_box_iou(pred, targets))[:, None]  # (N, 1) broadcast
            box = param.detach() - step
            gap = (box - target_xywh).abs().to(torch.float64)  # (N, 4)
            parts[t - 1] = (float(gap[:, :2].sum()), float(gap[:, 2:].sum()))
            if record:
                path.append(box_convert(box, "cxcywh", "xyxy"))
    with torch.no_grad():
        final = box_convert(box.detach(), "cxcywh", "xyxy")  # (N, 4)
        final_error = (box.detach() - target_xywh).abs().sum(-1)  # (N,)
        final_iou = aligned_box_iou(final, targets)  # (N,)
    return RegressionRun(
        error=parts.sum(1),
        centre_error=parts[:, 0],
        size_error=parts[:, 1],
        final=final,
        final_error=final_error.double().numpy(),
        final_iou=final_iou.double().numpy(),
        trajectory=torch.stack(path) if record else None,  # (T + 1, N, 4)
    )


def compare_losses(num_points: int = 50, iterations: int = 200, seed: int = 0, *,
                   radius: float = 3.0, losses: Mapping[str, LossFn] = REGRESSION_LOSSES,
                   dtype: torch.dtype = torch.float64, **kwargs) -> dict[str, np.ndarray]:
    """The paper's Figure 3(b) in small: the total error curve ``E(t)`` of each loss.

    Builds :func:`simulation_boxes` once and runs :func:`simulate_regression` with each of
    ``losses`` on the same cases (``kwargs`` go to it: ``lr``, ``decay``, ``weighted``).

    Returns:
        ``{name: (T,) error curve}``; ``curve[-1]`` is the total final error at ``T``.
    """
    anchors, targets = simulation_boxes(num_points, radius, seed, dtype)  # (343 P, 4) each
    return {name: simulate_regression(fn, anchors, targets, iterations=iterations, **kwargs).error
            for name, fn in losses.items()}


def error_per_point(final_error, num_points: int) -> np.ndarray:
    """Sum the ``(343 P,)`` final errors of :func:`simulate_regression` over the 343 cases of each
    point: ``(P,)``, the height of the paper's Figure 3(a) at each anchor centre."""
    return np.asarray(final_error, dtype=np.float64).reshape(num_points, CASES_PER_POINT).sum(1)


def regression_trajectories(anchor_xyxy, target_xyxy, *,
                            losses: Mapping[str, LossFn] = REGRESSION_LOSSES,
                            iterations: int = 200, **kwargs) -> dict[str, Tensor]:
    """The path of one anchor towards one target under each loss (the paper's Figures 1 and 4).

    ``anchor_xyxy`` and ``target_xyxy`` are one box each (4 numbers, ``xyxy``); ``kwargs`` go to
    :func:`simulate_regression` (``lr``, ``decay``, ``weighted``).

    Returns:
        ``{name: (T + 1, 4) xyxy boxes}``, row 0 the anchor, row ``t`` the box after iteration t.
    """
    anchor = torch.as_tensor(anchor_xyxy, dtype=torch.float64).reshape(1, 4)  # (1, 4)
    target = torch.as_tensor(target_xyxy, dtype=torch.float64).reshape(1, 4)  # (1, 4)
    return {name: simulate_regression(fn, anchor, target, iterations=iterations, record=True,
                                      **kwargs).trajectory[:, 0]  # (T + 1, 1, 4) -> (T + 1, 4)
            for name, fn in losses.items()}
