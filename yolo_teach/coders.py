"""Box coders: the pair of inverse functions between raw network outputs ``t`` and boxes.

A YOLO network outputs raw numbers ``t``; turning them into boxes is the job of a *box coder*,
used by both sides of the detector (the interface is :class:`~yolo_teach.protocols.BoxCoder`):

* ``decode(t, cell, anchor) -> box``: at inference time (:mod:`yolo_teach.decode`);
* ``encode(box, cell, anchor) -> t``: the loss, to build regression targets.

The YOLO coders work in **grid units** of one output map: ``cell`` is the cell's top-left corner
``(c_x, c_y)`` and ``anchor`` the prior ``(p_w, p_h)``, both in cells; multiply by the stride for
pixels. Boxes are ``cxcywh`` inside a coder and ``xyxy`` pixels everywhere else.
:class:`SSDBoxCoder` (RefineDet's) codes ``xyxy`` pixel boxes against ``xyxy`` pixel anchors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

VARIANCES = (0.1, 0.2)  # SSD's prior variances: centre offsets / 0.1, log-size ratios / 0.2


def _logit(p: Tensor, eps: float) -> Tensor:
    """Inverse of the sigmoid, with ``p`` clamped to ``[eps, 1 - eps]`` so it stays finite."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


# --------------------------------------------------------------------------------------------
# Box coders
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YOLOv2BoxCoder:
    """YOLOv2 §2 "Direct location prediction" (also YOLOv3 §2.1 and YOLOv4's default).

    .. math::
        b_x = σ(t_x) + c_x, \\quad b_y = σ(t_y) + c_y, \\quad
        b_w = p_w e^{t_w}, \\quad b_h = p_h e^{t_h}

    The sigmoid keeps the centre inside the cell that predicts it, which "makes the network more
    stable" than the unbounded offsets of Faster R-CNN's RPN; the width is unbounded.
    """

    eps: float = 1e-6
    centre_range = (0.0, 1.0)  # reachable b_x - c_x (a class constant, not an argument)

    def decode(self, t: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """``t (..., 4)``, ``cell (..., 2)``, ``anchor (..., 2)`` -> ``cxcywh (..., 4)`` cells."""
        xy = torch.sigmoid(t[..., :2]) + cell
        wh = anchor * torch.exp(t[..., 2:4])
        return torch.cat([xy, wh], dim=-1)

    def encode(self, box: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """Inverse of :meth:`decode`: ``t_x = σ^{-1}(b_x - c_x)``, ``t_w = \\log(b_w / p_w)``."""
        txy = _logit(box[..., :2] - cell, self.eps)
        twh = torch.log(box[..., 2:4].clamp(min=self.eps) / anchor)
        return torch.cat([txy, twh], dim=-1)


@dataclass(frozen=True)
class YOLOv5BoxCoder:
    """YOLOv5's coding (no paper; ``models/yolo.py`` ``Detect`` and ``utils/loss.py``).

    .. math::
        b_x = 2σ(t_x) - 0.5 + c_x, \\quad b_y = 2σ(t_y) - 0.5 + c_y, \\quad
        b_w = p_w (2σ(t_w))^2, \\quad b_h = p_h (2σ(t_h))^2

    # NOTE(paper): this replaces YOLOv2's coding for two reasons. The centre may now fall half a
    # cell outside the cell, so the neighbour cells that :class:`NeighbourCellAssigner` makes
    # responsible can reach it (YOLOv4's "eliminate grid sensitivity" is the same idea with a
    # scale of 1.05-1.2 instead of 2). And ``b_w / p_w`` lies in (0, 4): no exploding ``exp``,
    # which is why the assigner only pairs boxes with anchors whose size ratio is below 4.
    """

    eps: float = 1e-6
    centre_range = (-0.5, 1.5)  # reachable b_x - c_x (a class constant, not an argument)

    def decode(self, t: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """``t (..., 4)``, ``cell (..., 2)``, ``anchor (..., 2)`` -> ``cxcywh (..., 4)`` cells."""
        s = torch.sigmoid(t)
        xy = 2 * s[..., :2] - 0.5 + cell
        wh = anchor * (2 * s[..., 2:4]) ** 2
        return torch.cat([xy, wh], dim=-1)

    def encode(self, box: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """Inverse of :meth:`decode`: ``σ(t_x) = (b_x - c_x + 0.5) / 2``,
        ``σ(t_w) = \\sqrt{b_w / p_w} / 2``."""
        txy = _logit((box[..., :2] - cell + 0.5) / 2, self.eps)
        twh = _logit(torch.sqrt(box[..., 2:4].clamp(min=0) / anchor) / 2, self.eps)
        return torch.cat([txy, twh], dim=-1)


@dataclass(frozen=True)
class GridSensitiveBoxCoder:
    r"""YOLOv4 §3.3 "eliminate grid sensitivity" (yolov4.cfg ``scale_x_y``).

    .. math:: b_x = α σ(t_x) - \frac{α - 1}{2} + c_x, \qquad b_w = p_w e^{t_w}

    With :math:`α = 1` this is :class:`YOLOv2BoxCoder`, whose centre only reaches the cell's
    borders when :math:`t_x \to \pm\infty`; :math:`α > 1` (1.2, 1.1, 1.05 on the stride 8, 16,
    32 maps of yolov4.cfg) lets a finite :math:`t_x` reach them.
    """

    scale_xy: float = 1.2  # α
    eps: float = 1e-6

    @property
    def centre_range(self) -> tuple[float, float]:
        """Reachable ``b_x - c_x``: ``(-(α - 1) / 2, 1 + (α - 1) / 2)``."""
        half = (self.scale_xy - 1) / 2
        return (-half, 1 + half)

    def decode(self, t: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """``t (..., 4)``, ``cell (..., 2)``, ``anchor (..., 2)`` -> ``cxcywh (..., 4)`` cells."""
        a = self.scale_xy
        xy = a * torch.sigmoid(t[..., :2]) - (a - 1) / 2 + cell
        wh = anchor * torch.exp(t[..., 2:4])
        return torch.cat([xy, wh], dim=-1)

    def encode(self, box: Tensor, cell: Tensor, anchor: Tensor) -> Tensor:
        """Inverse of :meth:`decode`."""
        a = self.scale_xy
        txy = _logit((box[..., :2] - cell + (a - 1) / 2) / a, self.eps)
        twh = torch.log(box[..., 2:4].clamp(min=self.eps) / anchor)
        return torch.cat([txy, twh], dim=-1)


def as_coder_list(coder, num_scales: int) -> list:
    """One box coder per scale: ``coder`` repeated, or a sequence of ``num_scales`` coders."""
    if isinstance(coder, (list, tuple)):
        if len(coder) != num_scales:
            raise ValueError(f"{len(coder)} box coders for {num_scales} scales")
        return list(coder)
    return [coder] * num_scales


@dataclass(frozen=True)
class SSDBoxCoder:
    r"""Box offsets relative to an anchor (Faster R-CNN's parameterisation with SSD's variances).

    For an anchor with centre :math:`(a_x, a_y)` and size :math:`(a_w, a_h)` and a box
    :math:`(b_x, b_y, b_w, b_h)`:

    .. math:: t = \Bigl(\frac{b_x - a_x}{v_0 a_w}, \frac{b_y - a_y}{v_0 a_h},
              \frac{\log(b_w / a_w)}{v_1}, \frac{\log(b_h / a_h)}{v_1}\Bigr)

    Boxes and anchors are ``xyxy`` pixels, ``(..., 4)``; :meth:`decode` inverts :meth:`encode`.
    """

    variances: tuple[float, float] = VARIANCES

    @staticmethod
    def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor]:
        return (boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]

    def encode(self, boxes: Tensor, anchors: Tensor) -> Tensor:
        """``boxes``, ``anchors (..., 4) xyxy`` -> offsets ``t (..., 4)``."""
        centre, size = self._centre_size(boxes)
        a_centre, a_size = self._centre_size(anchors)
        t_xy = (centre - a_centre) / (self.variances[0] * a_size)  # (..., 2)
        t_wh = torch.log(size.clamp(min=1e-6) / a_size) / self.variances[1]  # (..., 2)
        return torch.cat([t_xy, t_wh], dim=-1)  # (..., 4)

    def decode(self, t: Tensor, anchors: Tensor) -> Tensor:
        """Offsets ``t`` and ``anchors (..., 4) xyxy`` -> boxes ``(..., 4) xyxy``."""
        a_centre, a_size = self._centre_size(anchors)
        centre = a_centre + t[..., :2] * self.variances[0] * a_size  # (..., 2)
        # clamped like the YOLO coders' exp: a wild offset early in training cannot overflow
        size = a_size * torch.exp((t[..., 2:] * self.variances[1]).clamp(max=10.0))  # (..., 2)
        return torch.cat([centre - size / 2, centre + size / 2], dim=-1)  # (..., 4)

