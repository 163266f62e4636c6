r"""YOLOv7's blocks: ELAN, E-ELAN (§3.1), the MP downsampling block, SPPCSPC, and the compound
scaling of concatenation-based models (§3.2).

The network is built from *computational blocks* followed by *transition layers* (§3.1-3.2).
An ELAN computational block is two 1x1 convs on the same input and a chain of 3x3 convs on the
second; chosen outputs of the chain and both 1x1 outputs are concatenated, and a 1x1 transition
conv mixes the concatenation. Its design rule (ELAN, Fig. 2c): keep the *shortest longest
gradient path* short, so a deep block still trains: every concatenated map reaches the output
through one transition conv.

Official configs and code read (WongKinYiu/yolov7): ``cfg/training/yolov7-tiny.yaml``,
``yolov7.yaml``, ``yolov7x.yaml``, ``yolov7-e6e.yaml``; ``models/common.py`` (``MP``, ``SP``,
``SPPCSPC``). In those yaml files an ELAN is written out layer by layer (``Conv`` + ``Concat``);
the classes here are those layer groups.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.layers.spp import SPP


class ELAN(nn.Module):
    r"""ELAN: the computational block of yolov7-tiny, yolov7 and yolov7x, with its transition.

    ::

        x ─┬─ 1x1 (shortcut_conv) ──────────────────────────────── a ─┐
           └─ 1x1 (stem_conv) ─ b ─ 3x3 ─ c_1 ─ 3x3 ─ c_2 ... c_n      ├─ concat ─ 1x1 ─> y
                                b, and every ``concat_every``-th c_k ──┘  (transition)

    concatenated as ``[c_n, ..., c_e, b, a]`` (the yaml's ``Concat`` order, last first).
    Concatenated width :math:`2 h + \lfloor n / e \rfloor h_b`.

    Examples (yaml ``Concat`` in brackets):

    * yolov7-tiny, 64 -> 128: h = 64, n = 2, e = 1 (``[-1, -2, -3, -4]``);
    * yolov7 backbone, 256 -> 512: h = 128, n = 4, e = 2 (``[-1, -3, -5, -6]``);
    * yolov7 neck, 512 -> 256: h = 256, n = 4, e = 1, h_b = 128 (``[-1, -2, -3, -4, -5, -6]``);
    * yolov7x backbone, 320 -> 640: h = 128, n = 6, e = 2 (``[-1, -3, -5, -7, -8]``).

    Args:
        in_channels: C_in.
        out_channels: C_out of the transition conv.
        hidden_channels: h, width of the two 1x1 convs.
        depth: n, number of 3x3 convs in the chain.
        block_channels: h_b, width of the 3x3 convs (``None``: h).
        concat_every: e, concatenate every e-th output of the chain.
        act_layer: activation class (LeakyReLU 0.1 in tiny, SiLU otherwise).

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, depth: int = 2,
                 block_channels: int | None = None, concat_every: int = 1,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        block_channels = block_channels or hidden_channels
        self.concat_every = concat_every
        self.shortcut_conv = ConvBNAct(in_channels, hidden_channels, 1, act_layer=act_layer)
        self.stem_conv = ConvBNAct(in_channels, hidden_channels, 1, act_layer=act_layer)
        widths = [hidden_channels] + [block_channels] * depth
        self.blocks = nn.ModuleList(ConvBNAct(c_in, c_out, 3, act_layer=act_layer)
                                    for c_in, c_out in zip(widths, widths[1:]))
        concat = 2 * hidden_channels + depth // concat_every * block_channels
        self.transition = ConvBNAct(concat, out_channels, 1, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        outputs = [self.shortcut_conv(x), self.stem_conv(x)]  # a, b: (B, h, H, W)
        y = outputs[-1]
        for k, block in enumerate(self.blocks, start=1):
            y = block(y)  # c_k: (B, h_b, H, W)
            if k % self.concat_every == 0:
                outputs.append(y)
        y = torch.cat(outputs[::-1], dim=1)  # (B, 2h + n/e h_b, H, W): [c_n, ..., b, a]
        return self.transition(y)  # (B, C_out, H, W)


class EELAN(nn.Module):
    r"""Extended ELAN (YOLOv7 §3.1, Fig. 2d): g ELAN computational blocks of cardinality g run
    as group convolutions, then *expand, shuffle, merge cardinality*.

    * **expand cardinality**: every conv of the block gets g times its channels and g groups
      (the two 1x1 stems see the whole input, as g separate stems would);
    * **shuffle cardinality**: the concatenated maps are regrouped so that group k holds the
      k-th block's concatenation ``[c_n^k, ..., b^k, a^k]``, each group as wide as one ELAN's;
    * **merge cardinality**: each group gets its own transition (a grouped 1x1 conv) and the g
      results are added.

    The gradient path of each group is that of the original ELAN; the transition layers are
    unchanged. Only ``yolov7-e6e`` uses E-ELAN among the official configs (``yolov7-e6e.yaml``
    writes it as two ELAN blocks on the same input whose transitions are added by a
    ``Shortcut`` layer, which is this block with g = 2); yolov7-tiny, yolov7 and yolov7x (and
    e6, d6, w6) use plain :class:`ELAN`.

    Args:
        as :class:`ELAN`, plus ``cardinality`` g.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, depth: int = 2,
                 block_channels: int | None = None, concat_every: int = 1,
                 cardinality: int = 2, act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        g = self.cardinality = cardinality
        block_channels = block_channels or hidden_channels
        self.concat_every, self.out_channels = concat_every, out_channels
        # expand cardinality: g stems at once (no groups: every stem sees all of x)
        self.shortcut_conv = ConvBNAct(in_channels, g * hidden_channels, 1, act_layer=act_layer)
        self.stem_conv = ConvBNAct(in_channels, g * hidden_channels, 1, act_layer=act_layer)
        widths = [hidden_channels] + [block_channels] * depth
        self.blocks = nn.ModuleList(ConvBNAct(g * c_in, g * c_out, 3, act_layer=act_layer, groups=g)
                                    for c_in, c_out in zip(widths, widths[1:]))
        concat = 2 * hidden_channels + depth // concat_every * block_channels
        self.transition = ConvBNAct(g * concat, g * out_channels, 1, act_layer=act_layer,
                                    groups=g)

    def forward(self, x: Tensor) -> Tensor:
        g = self.cardinality
        outputs = [self.shortcut_conv(x), self.stem_conv(x)]  # a, b: (B, g h, H, W)
        y = outputs[-1]
        for k, block in enumerate(self.blocks, start=1):
            y = block(y)  # c_k: (B, g h_b, H, W), g independent groups
            if k % self.concat_every == 0:
                outputs.append(y)
        # shuffle cardinality: group k gets [c_n^k, ..., b^k, a^k], as one ELAN's concat
        groups = [t.chunk(g, dim=1) for t in outputs[::-1]]
        y = torch.cat([parts[k] for k in range(g) for parts in groups], dim=1)  # (B, g concat, H, W)
        y = self.transition(y)  # (B, g C_out, H, W), one transition per group
        b, _, h, w = y.shape
        return y.view(b, g, self.out_channels, h, w).sum(dim=1)  # merge: (B, C_out, H, W)


class MP(nn.Module):
    """YOLOv7's MP downsampling block: a max-pool branch and a conv branch, concatenated.

    ::

        x ─┬─ maxpool 2x2/2 ─ 1x1 ──────────┐
           └─ 1x1 ─ 3x3 stride 2 ───────────┴─ concat [conv, pool] ─> (B, 2 C_h, H/2, W/2)

    The backbone halves the width in each branch (``hidden_channels = C_in / 2``); the neck keeps
    it (``hidden_channels = C_in``) and concatenates the result with a lateral map. (The
    official ``MP`` class is only the max-pool; yolov7-tiny uses it alone.)

    Shapes:
        (B, C_in, H, W) -> (B, 2 hidden_channels, H/2, W/2)
    """

    def __init__(self, in_channels: int, hidden_channels: int,
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2)
        self.pool_conv = ConvBNAct(in_channels, hidden_channels, 1, act_layer=act_layer)
        self.conv1 = ConvBNAct(in_channels, hidden_channels, 1, act_layer=act_layer)
        self.conv2 = ConvBNAct(hidden_channels, hidden_channels, 3, 2, act_layer=act_layer)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool_conv(self.pool(x))  # (B, C_h, H/2, W/2)
        strided = self.conv2(self.conv1(x))  # (B, C_h, H/2, W/2)
        return torch.cat([strided, pooled], dim=1)  # (B, 2 C_h, H/2, W/2)


class SPPCSPC(nn.Module):
    """SPP in a cross-stage-partial block, with convs around the pools (yolov7, yolov7x).

    ::

        x ─┬─ 1x1 ─ 3x3 ─ 1x1 ─ SPP(5, 9, 13) ─ 1x1 ─ 3x3 ─┐
           └─ 1x1 ──────────────────────────────────────────┴─ concat ─ 1x1 ─> y

    all hidden widths ``out_channels``.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_sizes: tuple[int, ...] = (5, 9, 13),
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        c, act = out_channels, act_layer
        self.cv1 = ConvBNAct(in_channels, c, 1, act_layer=act)
        self.cv2 = ConvBNAct(in_channels, c, 1, act_layer=act)  # the cross-stage part
        self.cv3 = ConvBNAct(c, c, 3, act_layer=act)
        self.cv4 = ConvBNAct(c, c, 1, act_layer=act)
        # NOTE(paper): official SPPCSPC concatenates [x, m5, m9, m13]; our SPP gives Darknet's
        # [m13, m9, m5, x]. Same counts; only weight porting would need a permutation.
        self.spp = SPP(kernel_sizes)
        self.cv5 = ConvBNAct((1 + len(kernel_sizes)) * c, c, 1, act_layer=act)
        self.cv6 = ConvBNAct(c, c, 3, act_layer=act)
        self.cv7 = ConvBNAct(2 * c, out_channels, 1, act_layer=act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv4(self.cv3(self.cv1(x)))  # (B, C_out, H, W)
        y = self.cv6(self.cv5(self.spp(y)))  # (B, 4 C_out -> C_out, H, W)
        return self.cv7(torch.cat([y, self.cv2(x)], dim=1))  # (B, 2 C_out -> C_out, H, W)


class SPPCSPCTiny(nn.Module):
    """yolov7-tiny's SPP block: SPPCSPC without the 3x3 convs (yolov7-tiny.yaml head, layers
    29-37, ``SP`` pools).

    ::

        x ─┬─ 1x1 ─ SPP(5, 9, 13) ─ 1x1 ─┐
           └─ 1x1 ───────────────────────┴─ concat ─ 1x1 ─> y

    The yaml concatenates ``[m13, m9, m5, x]``, as :class:`~yolo_teach.layers.spp.SPP` does.

    Shapes:
        (B, C_in, H, W) -> (B, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_sizes: tuple[int, ...] = (5, 9, 13),
                 act_layer: type[nn.Module] = nn.SiLU):
        super().__init__()
        c, act = out_channels, act_layer
        self.cv1 = ConvBNAct(in_channels, c, 1, act_layer=act)
        self.cv2 = ConvBNAct(in_channels, c, 1, act_layer=act)  # the cross-stage part
        self.spp = SPP(kernel_sizes)
        self.cv5 = ConvBNAct((1 + len(kernel_sizes)) * c, c, 1, act_layer=act)
        self.cv7 = ConvBNAct(2 * c, out_channels, 1, act_layer=act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv5(self.spp(self.cv1(x)))  # (B, C_out, H, W)
        return self.cv7(torch.cat([y, self.cv2(x)], dim=1))  # (B, 2 C_out -> C_out, H, W)


# ---- sizes and compound scaling (§3.2) ------------------------------------------------------
@dataclass(frozen=True)
class ELANSize:
    """The sizes of one :class:`ELAN` (see its table): h, n, C_out, h_b (``None``: h), e."""

    hidden_channels: int
    depth: int
    out_channels: int
    block_channels: int | None = None
    concat_every: int = 1

    @property
    def concat_channels(self) -> int:
        """Width of the concatenation the transition conv reads: 2 h + floor(n / e) h_b."""
        block = self.block_channels or self.hidden_channels
        return 2 * self.hidden_channels + self.depth // self.concat_every * block

    def build(self, in_channels: int, act_layer: type[nn.Module]) -> ELAN:
        """The ELAN of these sizes on ``in_channels`` inputs."""
        return ELAN(in_channels, self.out_channels, self.hidden_channels, self.depth,
                    self.block_channels, self.concat_every, act_layer)


def compound_scale(size: ELANSize, depth_factor: float) -> tuple[ELANSize, float]:
    r"""Compound scaling of a concatenation-based block (YOLOv7 §3.2, Fig. 3c).

    Scaling the depth of an ELAN block also widens its output (more maps are concatenated),
    which changes the in/out ratio of the transition conv. So scale the depth, measure the width
    change of the concatenation, and scale the transition (and the transition layers after it)
    by that same factor:

    .. math:: n' = \mathrm{round}(d\,n), \qquad
              w = \frac{2h + \lfloor n'/e \rfloor h_b}{2h + \lfloor n/e \rfloor h_b}, \qquad
              C'_{out} = \mathrm{round}(w\,C_{out})

    yolov7 -> yolov7x is d = 1.5 (4 -> 6 convs), w = 1.25 (§5.4.1, Table 3: the computational
    blocks 1.5 times deeper, the transition blocks 1.25 times wider).

    Returns:
        the scaled sizes and the width factor w for the transition layers.
    """
    deeper = replace(size, depth=round(size.depth * depth_factor))
    width_factor = deeper.concat_channels / size.concat_channels
    return replace(deeper, out_channels=round(size.out_channels * width_factor)), width_factor
