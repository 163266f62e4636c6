r"""ELAN and RepConv in pictures (YOLOv7, Wang, Bochkovskiy & Liao 2022, seed 003 §3.1 and §4.1).

* :func:`elan_layout` reads an :class:`~yolo_teach.layers.elan.ELAN` or
  :class:`~yolo_teach.layers.elan.EELAN`: its widths and, above all, *which* outputs its
  transition conv reads, in the order it reads them; :func:`draw_elan` draws that (Fig. 2).
* :func:`draw_kernel_sum` draws 3x3 kernels side by side and their sum: the branches of a
  RepConv after :func:`~yolo_teach.layers.rep.fold_branch`,
  :func:`~yolo_teach.layers.rep.pad_1x1_to_3x3` and
  :func:`~yolo_teach.layers.rep.identity_conv`, and the one kernel they become.

The pictures of the lead and auxiliary heads are in :mod:`~yolo_teach.viz.yolov7_view`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import FancyBboxPatch
from torch import Tensor

from yolo_teach.layers.elan import EELAN, ELAN
from yolo_teach.utils import as_numpy

# roles of the boxes of an ELAN diagram (Okabe-Ito, as viz.csp_view)
ELAN_COLORS = {
    "io": "#BBBBBB",  # block input and output
    "conv1x1": "#56B4E9",  # the two 1x1 stems and the transition
    "conv3x3": "#E69F00",  # the chain of 3x3 convs, concatenated
    "unused": "#F3E0B5",  # a 3x3 conv whose output only feeds the next one
    "merge": "#CC79A7",  # concatenation, shuffle, sum
}


# --------------------------------------------------------------------------------------------
# ELAN and E-ELAN (§3.1, Fig. 2)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ELANLayout:
    """What an ELAN block computes and concatenates, read from the module.

    Attributes:
        kind: ``"ELAN"`` or ``"E-ELAN"``.
        in_channels: C_in; hidden_channels: h, block_channels: h_b, out_channels: C_out (per
            group for an E-ELAN: the widths of one of its g ELANs).
        depth: n, 3x3 convs in the chain; concat_every: e; cardinality: g (1 for an ELAN).
        concat: the names of the maps the transition reads, in its order: ``"a"`` (the
            shortcut 1x1), ``"b"`` (the stem 1x1), ``"c1"`` ... ``"cn"`` (the 3x3 chain), e.g.
            ``("c4", "c2", "b", "a")``; concat_widths: their channels (per group).
    """

    kind: str
    in_channels: int
    hidden_channels: int
    block_channels: int
    depth: int
    concat_every: int
    cardinality: int
    out_channels: int
    concat: tuple[str, ...]
    concat_widths: tuple[int, ...]

    @property
    def concat_channels(self) -> int:
        """Width of one group's concatenation, :math:`2h + \\lfloor n/e \\rfloor h_b`."""
        return sum(self.concat_widths)

    @property
    def transition_in(self) -> int:
        """Channels the transition conv reads: g times :attr:`concat_channels`."""
        return self.cardinality * self.concat_channels

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every map the block computes before its transition, in computing order."""
        return ("a", "b", *(f"c{k}" for k in range(1, self.depth + 1)))


def elan_layout(block: ELAN | EELAN) -> ELANLayout:
    """The :class:`ELANLayout` of ``block``, read from its convolutions (no forward pass)."""
    if not isinstance(block, (ELAN, EELAN)):
        raise TypeError(f"expected an ELAN or an EELAN, got {type(block).__name__}")
    g = getattr(block, "cardinality", 1)
    hidden = block.stem_conv.conv.out_channels // g
    depth = len(block.blocks)
    block_channels = block.blocks[0].conv.out_channels // g if depth else hidden
    e = block.concat_every
    chain = [k for k in range(depth, 0, -1) if k % e == 0]  # the forward's outputs[::-1]
    return ELANLayout(
        kind="E-ELAN" if g > 1 else "ELAN", in_channels=block.stem_conv.conv.in_channels,
        hidden_channels=hidden, block_channels=block_channels, depth=depth, concat_every=e,
        cardinality=g, out_channels=block.transition.conv.out_channels // g,
        concat=(*(f"c{k}" for k in chain), "b", "a"),
        concat_widths=(*(block_channels for _ in chain), hidden, hidden))


_BW, _BH = 1.5, 0.62  # box size in diagram units


def _box(ax: Axes, x: float, y: float, text: str, role: str, fontsize: float,
         copies: int = 1, width: float = _BW) -> None:
    for k in reversed(range(min(copies, 3))):  # g groups drawn as a stack of cards
        d = 0.09 * k
        ax.add_patch(FancyBboxPatch((x - width / 2 + d, y - _BH / 2 - d), width, _BH,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=ELAN_COLORS[role], edgecolor="#333333",
                                    linewidth=0.8, zorder=2 + (copies - k)))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=10)


def _arrow(ax: Axes, start, end, color: str = "#333333", label: str | None = None,
           fontsize: float = 6) -> None:
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.1,
                            "shrinkA": 0, "shrinkB": 0})
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.06, label,
                fontsize=fontsize, color=color, ha="center", va="bottom")


def draw_elan(ax: Axes, block: ELAN | EELAN | ELANLayout, title: str | None = None,
              fontsize: float = 7) -> ELANLayout:
    """Draw an ELAN (Fig. 2c) or E-ELAN (Fig. 2d) block from its :func:`elan_layout`.

    The input on the left feeds the two 1x1 convs ``a`` (top) and ``b``; the chain of 3x3 convs
    ``c1 ... cn`` runs down from ``b``. Every map the transition reads has an arrow into the
    concatenation on the right, labelled with its place in the concatenation (``#1`` first) and
    its channels; a 3x3 output that is not concatenated is drawn pale, without an arrow. An
    E-ELAN's convs are drawn as stacks of g cards (g groups), followed by the shuffle, the g
    grouped transitions and their sum (merge cardinality).

    Returns:
        the layout that was drawn.
    """
    lay = block if isinstance(block, ELANLayout) else elan_layout(block)
    g, n = lay.cardinality, lay.depth
    groups = f", {g} groups" if g > 1 else ""  # the 3x3 convs; the 1x1 stems see all of x

    def width(c: int) -> str:
        return f"{g} x {c} ch" if g > 1 else f"{c} ch"

    rows = {"a": 0.0, "b": -1.0, **{f"c{k}": -1.0 - k for k in range(1, n + 1)}}
    bw = _BW + (0.5 if g > 1 else 0.0)  # room for "k groups"
    x_in, x_chain = -2.1, 0.0
    x_cat = 2.5 + bw - _BW
    x_tr, x_out = x_cat + 1.9, x_cat + 3.7
    y_mid = (rows["a"] + rows[f"c{n}" if n else "b"]) / 2
    _box(ax, x_in, y_mid, f"input\n{lay.in_channels} ch", "io", fontsize, width=1.2)
    _box(ax, x_chain, rows["a"], f"a: 1x1\n{width(lay.hidden_channels)}", "conv1x1",
         fontsize, copies=g, width=bw)
    _box(ax, x_chain, rows["b"], f"b: 1x1\n{width(lay.hidden_channels)}", "conv1x1",
         fontsize, copies=g, width=bw)
    for name in ("a", "b"):
        _arrow(ax, (x_in + 0.6, y_mid), (x_chain - bw / 2, rows[name]))
    for k in range(1, n + 1):
        name = f"c{k}"
        role = "conv3x3" if name in lay.concat else "unused"
        _box(ax, x_chain, rows[name], f"{name}: 3x3{groups}\n{width(lay.block_channels)}", role,
             fontsize, copies=g, width=bw)
        _arrow(ax, (x_chain, rows[name] + 1 - _BH / 2), (x_chain, rows[name] + _BH / 2))
    cat_top, cat_bottom = rows["a"] + _BH / 2, rows[f"c{n}" if n else "b"] - _BH / 2
    ax.add_patch(FancyBboxPatch((x_cat - 0.4, cat_bottom), 0.8, cat_top - cat_bottom,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=ELAN_COLORS["merge"], edgecolor="#333333",
                                linewidth=0.8, zorder=2))
    cat_text = "concat,\nshuffle" if g > 1 else "concat"
    ax.text(x_cat, y_mid, f"{cat_text}\n{lay.transition_in}\nch", ha="center", va="center",
            fontsize=fontsize, rotation=0, zorder=10)
    widths = dict(zip(lay.concat, lay.concat_widths))
    for place, name in enumerate(lay.concat, start=1):
        _arrow(ax, (x_chain + bw / 2 + 0.09 * (min(g, 3) - 1), rows[name]),
               (x_cat - 0.4, rows[name]), "#7A4F6D", f"#{place}: {width(widths[name])}",
               fontsize - 1)
    transition = (f"transition\n{g} x 1x1 (groups)\n{g} x {lay.out_channels} ch" if g > 1
                  else f"transition\n1x1\n{lay.out_channels} ch")
    _box(ax, x_tr, y_mid, transition, "conv1x1", fontsize, copies=g, width=2.1 if g > 1 else 1.4)
    _arrow(ax, (x_cat + 0.4, y_mid), (x_tr - (1.05 if g > 1 else 0.7), y_mid))
    out_text = f"sum of {g}\n{lay.out_channels} ch" if g > 1 else f"output\n{lay.out_channels} ch"
    _box(ax, x_out + 0.2, y_mid, out_text, "merge" if g > 1 else "io", fontsize, width=1.1)
    _arrow(ax, (x_tr + (1.05 if g > 1 else 0.7), y_mid), (x_out - 0.35, y_mid))
    ax.set_xlim(x_in - 0.7, x_out + 0.8)
    ax.set_ylim(cat_bottom - 0.3, rows["a"] + 0.6)
    ax.axis("off")
    concat = ", ".join(lay.concat)
    ax.set_title(title or f"{lay.kind}: n = {n}, e = {lay.concat_every}"
                          f"{f', g = {g}' if g > 1 else ''}; concat [{concat}]",
                 fontsize=fontsize + 1)
    return lay


# --------------------------------------------------------------------------------------------
# RepConv (§4.1): kernels and their sum
# --------------------------------------------------------------------------------------------
def draw_kernel_sum(axes: Sequence[Axes], kernels: Mapping[str, Tensor | np.ndarray],
                    total: str = "fused kernel", fontsize: float = 7,
                    cmap: str = "RdBu_r") -> np.ndarray:
    """Draw 3x3 kernels side by side, then their sum, on one colour scale.

    Args:
        axes: ``len(kernels) + 1`` axes: the terms, then the sum.
        kernels: title -> ``(3, 3)`` kernel (e.g. one output and one input channel of each
            branch of a RepConv, after its BatchNorm was folded in).
        total: title of the sum.

    Each cell shows its value; titles after the first start with ``+``, the sum's with ``=``.
    Returns the sum, ``(3, 3)``.
    """
    if len(axes) != len(kernels) + 1:
        raise ValueError(f"{len(kernels)} kernels need {len(kernels) + 1} axes, got {len(axes)}")
    arrays = [as_numpy(k).reshape(3, 3).astype(np.float64) for k in kernels.values()]
    summed = np.sum(arrays, axis=0)
    limit = max(np.abs(np.stack([*arrays, summed])).max(), 1e-12)
    titles = [*kernels, total]
    for k, (ax, array, name) in enumerate(zip(axes, [*arrays, summed], titles)):
        ax.imshow(array, cmap=cmap, vmin=-limit, vmax=limit)
        for (i, j), v in np.ndenumerate(array):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=fontsize - 1,
                    color="white" if abs(v) > 0.6 * limit else "black")
        prefix = "" if k == 0 else ("= " if k == len(arrays) else "+ ")
        ax.set_title(prefix + name, fontsize=fontsize)
        ax.set_xticks([])
        ax.set_yticks([])
    return summed
