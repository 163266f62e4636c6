r"""Regularisers from YOLOv4's Bag of Freebies (§3.4): DropBlock and class label smoothing.

- :class:`DropBlock2d` - drop contiguous square blocks of a feature map (Ghiasi et al., NeurIPS
  2018), YOLOv4's regulariser "for backbone" and "for detector" (§3.2 chooses it because its
  authors "compared their method with other methods in detail").
- :func:`block_mask` - the seeds-to-squares step of DropBlock, on its own for pictures and tests.
- :func:`smooth_labels` - class label smoothing (Szegedy et al. 2016, §7) for the independent
  sigmoid classifiers of YOLOv3/v4 (YOLOv4 §3.4; §4.3 "LS: class label smoothing - using class
  label smoothing for sigmoid activation").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def block_mask(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """Grow every seed into a ``block_size`` x ``block_size`` square of ones.

    A seed at (r, c) of the seed map marks the square whose top-left corner is (r, c); the seed
    map has one position per square that fits entirely inside the feature map. Padding the
    seeds by ``block_size - 1`` on every side and taking a stride-1 max-pool of that size spreads
    each seed over its square (output (i, j) sees the seeds at rows i - bs + 1 ... i).

    Args:
        seeds: 0/1 map, (B, C, H - bs + 1, W - bs + 1).
        block_size: square side bs.

    Returns:
        0/1 map of the dropped positions, (B, C, H, W).
    """
    pad = block_size - 1
    seeds = F.pad(seeds, (pad, pad, pad, pad))  # (B, C, H + bs - 1, W + bs - 1)
    return F.max_pool2d(seeds, kernel_size=block_size, stride=1)  # (B, C, H, W)


class DropBlock2d(nn.Module):
    r"""DropBlock: zero random ``block_size`` x ``block_size`` squares of each feature map
    (Ghiasi et al. 2018, Algorithm 1; YOLOv4 §3.2, §3.4).

    Dropout on a conv map drops single pixels, whose neighbours carry nearly the same
    information; dropping whole squares removes a region, so the network must look elsewhere.
    Seeds are drawn with probability :math:`\gamma` where a whole square fits (eq. 1, for an
    H x W map),

    .. math::
        \gamma = \frac{p}{b^2} \cdot \frac{H W}{(H - b + 1)(W - b + 1)}

    (p = ``drop_prob`` = 1 - keep_prob, b = ``block_size``), each seed grows into a b x b square
    (:func:`block_mask`), and the kept units are rescaled by count(M) / count_ones(M) so that the
    expected activation is unchanged. Eq. 1 assumes squares that do not overlap; overlaps make
    the dropped fraction a little lower than p (1 - (1 - γ)^{b²} ≈ 0.095 for p = 0.1, b = 5, in
    the interior of a large map).

    Identity in eval mode and for ``drop_prob = 0``. Masks are drawn per sample and per channel.

    Args:
        drop_prob: target fraction p of dropped units (the paper's 1 - keep_prob).
        block_size: side b of the squares (7 in the paper's ResNet-50 experiments); clipped to
            the map size.

    Shapes:
        (B, C, H, W) -> (B, C, H, W)
    """

    darknet_name = "dropblock"

    def __init__(self, drop_prob: float = 0.1, block_size: int = 7):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        # NOTE(paper): the paper also ramps keep_prob linearly from 1 to its target during
        # training; schedule ``drop_prob`` from the training loop if wanted.
        b, c, h, w = x.shape
        bs = min(self.block_size, h, w)
        gamma = self.drop_prob / bs**2 * (h * w) / ((h - bs + 1) * (w - bs + 1))
        noise = torch.rand(b, c, h - bs + 1, w - bs + 1, device=x.device)  # (B, C, H-bs+1, ...)
        fires = noise < gamma  # pragma: no mutate -- <= differs only where noise == gamma exactly
        seeds = fires.to(x.dtype)
        keep = 1.0 - block_mask(seeds, bs)  # (B, C, H, W), 1 = kept
        scale = keep.numel() / keep.sum().clamp(min=1.0)
        return x * keep * scale  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, block_size={self.block_size}"


def smooth_labels(targets: torch.Tensor, num_classes: int, epsilon: float) -> torch.Tensor:
    r"""Class label smoothing for sigmoid (binary cross-entropy) class scores (YOLOv4 §3.4).

    Label smoothing (Szegedy et al. 2016, §7) mixes the one-hot target with a uniform
    distribution over the K classes, :math:`y' = (1 - \varepsilon) y + \varepsilon / K`, so that
    the network is not pushed towards infinite logits. YOLOv3/v4 score each class with its own
    sigmoid, and each sigmoid is a two-class problem (class / not class), so K = 2:

    .. math:: y' = (1 - \varepsilon)\, y + \varepsilon / 2

    target 1 becomes :math:`1 - \varepsilon/2` and target 0 becomes :math:`\varepsilon/2`. This is
    Darknet's rule (``delta_yolo_class`` in AlexeyAB's yolo_layer.c: ``y_true * (1 -
    label_smooth_eps) + 0.5 * label_smooth_eps``, set by ``label_smooth_eps`` in a ``[yolo]``
    layer) and YOLOv5's ``smooth_BCE``.

    Args:
        targets: class indices (integer tensor of any shape, values in [0, K)) or one-hot /
            multi-hot float targets (..., K).
        num_classes: K.
        epsilon: smoothing ε in [0, 1).

    Returns:
        float targets, (..., K).
    """
    if not targets.is_floating_point():
        targets = F.one_hot(targets.long(), num_classes)  # (..., K), int64
        # pragma reason: .to(None) keeps int64, and `* (1 - eps)` promotes it to the same dtype
        targets = targets.to(torch.get_default_dtype())  # pragma: no mutate -- see above
    elif targets.shape[-1] != num_classes:
        raise ValueError(f"one-hot targets have {targets.shape[-1]} classes, not {num_classes}")
    return targets * (1.0 - epsilon) + epsilon / 2  # (..., K)
