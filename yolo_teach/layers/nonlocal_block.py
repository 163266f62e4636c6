r"""The non-local block and the multi-scale feature fusion of the improved YOLOX (seed 004 §2.2).

Seed 004's multi-scale feature fusion (MFF) ends with a "feature fusion operation" taken from
Libra R-CNN's balanced feature pyramid (Pang et al. 2019, its ref. [11]), in two steps:

1. **Scale and integrate** (eq. 5): resize the neck's three maps to the size of the middle one
   (stride 16) and average them,

   .. math:: N = \frac{1}{L} \sum_{l = l_{min}}^{l_{max}} N_l

2. **Refine** (eq. 6-7) with an embedded-Gaussian non-local block (Wang et al. 2018):

   .. math:: M_i = \frac{1}{\mathcal{C}(N)} \sum_{\forall j} f(N_i, N_j)\, g(N_j), \qquad
             \mathcal{C}(N) = \sum_{\forall j} f(N_i, N_j), \qquad
             f(N_i, N_j) = e^{\theta(N_i)^\top \phi(N_j)}

   with :math:`\theta, \phi, g` 1x1 convolutions, :math:`i` one position and :math:`j` every
   position of the map: each position becomes an attention-weighted sum over the whole map
   (the normalised :math:`f` is a softmax over :math:`j`).

and then **disperse** the refined map back to the three sizes, added to each level.

- :class:`NonLocalBlock` - eq. 6-7 and Wang et al.'s residual output :math:`N + W_z M`.
- :class:`NonLocalFusion` - eq. 5, the block, and the dispersal, for maps of any widths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolo_teach.layers.conv import ConvBNAct


class NonLocalBlock(nn.Module):
    r"""Embedded-Gaussian non-local block (Wang et al. 2018, §3.2-3.3; seed 004 eq. 6-7).

    .. math:: Z = N + W_z M, \qquad M_i = \sum_j
              \operatorname{softmax}_j\big(\theta(N_i)^\top \phi(N_j)\big)\, g(N_j)

    :meth:`response` is :math:`M` (eq. 6-7); ``forward`` adds it back through :math:`W_z`, a
    1x1 conv and a BatchNorm whose scale starts at zero, so the block starts as the identity
    (Wang et al. §3.3). NOTE(paper): seed 004 writes only :math:`M`; the residual
    :math:`W_z` is the non-local paper's block, as in Libra R-CNN's code, and keeps the
    widths. :math:`\theta, \phi, g` halve the channels (Wang et al.'s "bottleneck"), have a
    bias and no norm; no :math:`1/\sqrt{C'}` scale ("T is set to 1").

    Args:
        channels: C of the input and the output.
        reduction: C' = C / reduction channels for :math:`\theta, \phi, g` (2).

    Shapes:
        (B, C, H, W) -> (B, C, H, W); attention over the H W positions, (B, HW, HW).
    """

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.channels = channels
        inner = max(channels // reduction, 1)  # C'
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.w_z = ConvBNAct(inner, channels, 1, act_layer=None)  # 1x1 conv, BN, linear
        nn.init.zeros_(self.w_z.bn.weight)  # Z = N at the start (Wang et al. §3.3)

    def response(self, n: torch.Tensor) -> torch.Tensor:
        """:math:`M` of eq. 6-7: every position an attention-weighted sum of :math:`g(N_j)`."""
        if n.ndim != 4 or n.shape[1] != self.channels:
            raise ValueError(f"NonLocalBlock({self.channels}) expects (B, {self.channels}, H, W), "
                             f"got {tuple(n.shape)}")
        b, _, h, w = n.shape
        theta = self.theta(n).flatten(2).transpose(1, 2)  # theta(N_i): (B, HW, C')
        phi = self.phi(n).flatten(2)  # phi(N_j): (B, C', HW)
        g = self.g(n).flatten(2).transpose(1, 2)  # g(N_j): (B, HW, C')
        f = torch.softmax(theta @ phi, dim=-1)  # f(N_i, N_j) / C(N): (B, HW_i, HW_j)
        m = f @ g  # M_i: (B, HW, C')
        return m.transpose(1, 2).reshape(b, -1, h, w)  # (B, C', H, W)

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        return n + self.w_z(self.response(n))  # Z = N + W_z M: (B, C, H, W)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Max-pool a larger map down to ``size``, or nearest-upsample a smaller one (Libra R-CNN's
    ``BFP``: ``adaptive_max_pool2d`` to gather from finer maps, ``interpolate`` otherwise).

    Shapes:
        (B, C, H, W) -> (B, C, *size)
    """
    size = (int(size[0]), int(size[1]))  # constants, also when traced for ONNX export
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (h, w) == size:
        return x
    if h > size[0]:
        if h % size[0] == 0 and w % size[1] == 0:  # whole windows: the same max, exportable
            kernel = (h // size[0], w // size[1])
            return F.max_pool2d(x, kernel, kernel)
        return F.adaptive_max_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


def project(conv: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A point-wise ``conv`` (1x1, norm, activation) and :func:`resize` to ``size``, with the conv
    on the smaller map: max-pool, then conv; or conv, then upsample (a point-wise map commutes
    with nearest upsampling, so that order changes nothing but the cost).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, *size)
    """
    if x.shape[-2] > size[0]:
        return conv(resize(x, size))
    return resize(conv(x), size)


class NonLocalFusion(nn.Module):
    r"""Seed 004's feature fusion operation (§2.2 "Feature fusion operation", eq. 5-7).

    ::

        OUT2 (stride 8) ──max-pool──┐                          ┌─nearest x2──+ OUT2
        OUT1 (stride 16) ───────────┼─ mean (eq. 5) ─ non-local ┼─────────────+ OUT1
        OUT0 (stride 32) ──nearest──┘     (eq. 6-7)            └─max-pool────+ OUT0

    NOTE(paper): the three YOLOX maps have different widths (c3, c4, c5) and eq. 5 averages
    them, so here 1x1 convs bring every map to the middle width before the mean and back to
    its own width after; the paper does not say how the widths are matched (Libra R-CNN's FPN
    maps share one width). The refined map is *added* to each level (Libra R-CNN's residual
    "strengthen" step); the paper says only that it is "dispersed". Seed 004 names the maps
    both ways (OUT2 is the finest in its path fusion and the coarsest in this step); here the
    order is the neck's, finest first. Each 1x1 conv runs on the smaller of the two sizes it
    sits between (:func:`project`), where it costs least.

    Args:
        channels: widths of the input maps, finest first, e.g. ``(c3, c4, c5)``.
        refine_level: which map sets the size and width of the fusion (1: the middle one).
        reduction: of the non-local block's inner width.
        act_layer: activation of the 1x1 width-matching convs.

    Shapes:
        [(B, c_l, H_l, W_l)] -> [(B, c_l, H_l, W_l)], the same shapes; the fusion runs at
        (B, c_refine, H_refine, W_refine).
    """

    def __init__(self, channels: tuple[int, ...], refine_level: int = 1, reduction: int = 2,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.channels, self.refine_level = tuple(channels), refine_level
        c = channels[refine_level]
        act = act_layer
        self.reduce = nn.ModuleList(nn.Identity() if c_l == c else ConvBNAct(c_l, c, 1, 1, act)
                                    for c_l in channels)
        self.refine = NonLocalBlock(c, reduction)
        self.expand = nn.ModuleList(nn.Identity() if c_l == c else ConvBNAct(c, c_l, 1, 1, act)
                                    for c_l in channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        shapes = [tuple(x.shape) for x in features]
        if len(features) != len(self.channels) or any(
                len(s) != 4 or s[1] != c for s, c in zip(shapes, self.channels)):
            raise ValueError(f"NonLocalFusion expects {len(self.channels)} maps (B, C, H, W) with "
                             f"C = {self.channels}, got {shapes}")
        size = features[self.refine_level].shape[-2:]  # (H/16, W/16)
        gathered = [project(reduce, x, size) for reduce, x in zip(self.reduce, features)]
        n = torch.stack(gathered).mean(0)  # eq. 5, N = (1/L) sum_l N_l: (B, c4, H/16, W/16)
        n = self.refine(n)  # eq. 6-7: (B, c4, H/16, W/16)
        return [x + project(expand, n, x.shape[-2:])  # (B, c_l, H_l, W_l)
                for expand, x in zip(self.expand, features)]
