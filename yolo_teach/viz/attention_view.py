"""Pictures of attention maps recorded with :func:`yolo_teach.layers.attention.record_attention`:
the channel weights of an SE or CBAM block as bars, the spatial weights of a CBAM block as a
heatmap over the image. The attention widget (notebook 12) is a thin view over these.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes

from yolo_teach.utils import as_numpy


def top_channels(channel: torch.Tensor, image: int = 0, top: int = 10) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """The ``top`` largest channel weights of one image: ``(channel indices, weights)``, largest
    first. ``channel`` is a recorded ``(B, C)`` map."""
    weights = as_numpy(channel[image].float()).reshape(-1)  # (C,)
    order = np.argsort(-weights, kind="stable")[:top]
    return order, weights[order]


def spatial_overlay(spatial: torch.Tensor, size: tuple[int, int], image: int = 0) -> np.ndarray:
    """One image's ``(1, h, w)`` spatial map resized to ``size = (H, W)`` (bilinear), in [0, 1]."""
    m = spatial[image : image + 1].float()  # (1, 1, h, w)
    return as_numpy(F.interpolate(m, size=size, mode="bilinear", align_corners=False))[0, 0]


def draw_channel_bars(ax: Axes, channel: torch.Tensor, image: int = 0, top: int = 10,
                      title: str | None = None) -> Axes:
    """Bars of the ``top`` channel weights (SE / CBAM eq. 1-2), and the mean of all channels."""
    index, weights = top_channels(channel, image, top)
    ax.bar(range(len(index)), weights, color="#0072B2")
    ax.axhline(float(channel[image].float().mean()), color="0.4", linestyle="--", linewidth=1,
               label="mean of all channels")
    ax.set_xticks(range(len(index)), [str(i) for i in index], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("channel", fontsize=9)
    ax.set_ylabel("weight", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def draw_spatial_attention(ax: Axes, image, spatial: torch.Tensor, index: int = 0,
                           alpha: float = 0.5, title: str | None = None) -> Axes:
    """The image with its spatial attention (CBAM eq. 3-4) as a heatmap on top. ``image`` is
    ``(H, W, 3)`` or ``(3, H, W)``, in [0, 1] or 0-255 (uint8 images are scaled to [0, 1])."""
    picture = as_numpy(image)
    if picture.size and picture.max() > 1.0:  # 0-255 values: imshow would clip floats at 1
        picture = picture / 255.0
    if picture.ndim == 3 and picture.shape[0] in (1, 3) and picture.shape[2] not in (1, 3):
        picture = picture.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    heat = spatial_overlay(spatial, picture.shape[:2], index)
    ax.imshow(picture.squeeze())
    ax.imshow(heat, cmap="inferno", alpha=alpha, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
