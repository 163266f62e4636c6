"""Pictures of a Darknet residual stage and a CSP stage, drawn from real module instances.

:func:`stage_diagram` reads a :class:`~yolo_teach.layers.darknet.DarknetStage` or a
:class:`~yolo_teach.layers.csp.CSPStage` and returns boxes (each a conv or the residual blocks,
with its kernel, channels and parameter count) and arrows (each a tensor, with its channels);
:func:`draw_stage` draws them. Nothing in the picture is typed by hand: change the module's
widths and the drawing follows. :func:`stage_costs` and :func:`plot_stage_costs` tabulate and
plot the parameters and FLOPs of each stage of a backbone (from
:func:`~yolo_teach.models.summary.summary`).

CSPNet (Wang et al. 2020, "CSPNet: A New Backbone that can Enhance Learning Capability of CNN",
CVPR Workshops; reference [81] of the YOLOv4 paper) is the source of the split drawn here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import FancyBboxPatch
from torch import nn

from yolo_teach.layers.csp import CSPStage
from yolo_teach.layers.darknet import DarknetStage
from yolo_teach.models.summary import count_parameters, summary

# colour of a box or arrow by its role (Okabe-Ito palette, as the rest of the package)
ROLE_COLORS = {
    "io": "#BBBBBB",  # stage input and output
    "conv": "#56B4E9",  # a single ConvBNAct
    "blocks": "#E69F00",  # the residual blocks, where most of the compute is
    "merge": "#CC79A7",  # concatenation
    "main": "#333333",  # a tensor on the main path
    "skip": "#0072B2",  # CSP's part that skips the blocks
}


@dataclass(frozen=True)
class DiagramBox:
    """One box of a stage diagram: a layer or a group of layers, at (x, y) in diagram units."""

    key: str  # e.g. "downsample", "csp.blocks"
    title: str  # first line, e.g. "downsample"
    detail: str  # second line, e.g. "3x3/2, 32 -> 64"
    params: int | None  # parameters of the box's modules; None for inputs, outputs, concat
    role: str  # "io", "conv", "blocks" or "merge" (see ROLE_COLORS)
    x: float
    y: float


@dataclass(frozen=True)
class DiagramArrow:
    """One tensor between two boxes, labelled with its channels (and size, if known)."""

    start: str  # key of the box it leaves
    end: str  # key of the box it enters
    label: str  # e.g. "64 ch" or "64 x 32 x 32"
    role: str  # "main" or "skip"


@dataclass(frozen=True)
class StageDiagram:
    """Boxes and arrows of one stage, and the numbers the picture's title reports."""

    title: str
    boxes: tuple[DiagramBox, ...]
    arrows: tuple[DiagramArrow, ...]
    in_channels: int
    out_channels: int
    depth: int  # residual blocks
    params: int  # whole stage

    def box(self, key: str) -> DiagramBox:
        """The box with this key."""
        return next(b for b in self.boxes if b.key == key)


def _conv_detail(layer: nn.Module) -> str:
    """'k x k/s, C_in -> C_out' of a ConvBNAct (stride shown only when it is not 1)."""
    conv = layer.conv
    k, s = conv.kernel_size[0], conv.stride[0]
    stride = f"/{s}" if s != 1 else ""
    return f"{k}x{k}{stride}, {conv.in_channels} -> {conv.out_channels}"


def _blocks_detail(blocks: nn.Sequential) -> str:
    """'1x1 C -> C/2, 3x3 C/2 -> C, + x' of Darknet's residual blocks."""
    first = blocks[0]
    return (f"{_conv_detail(first.squeeze).replace(', ', ' ')}, "
            f"{_conv_detail(first.expand).replace(', ', ' ')}, + x")


def _tensor_label(channels: int, hw: tuple[int, int] | None) -> str:
    return f"{channels} ch" if hw is None else f"{channels} x {hw[0]} x {hw[1]}"


def stage_diagram(stage: DarknetStage | CSPStage,
                  in_hw: tuple[int, int] | None = None) -> StageDiagram:
    """The boxes and arrows of a Darknet residual stage or a CSP stage, read from the module.

    Args:
        stage: a :class:`~yolo_teach.layers.darknet.DarknetStage` (stride-2 conv, residual
            blocks) or a :class:`~yolo_teach.layers.csp.CSPStage` (stride-2 conv, two 1x1
            splits, residual blocks on one part, a 1x1 on that part, concatenation, transition).
        in_hw: (H, W) of the stage's input; when given, arrows show C x H x W.

    Returns:
        a :class:`StageDiagram`; the layout runs top (input) to bottom (output), CSP's main part
        on the left (x = -1) and its skipping part on the right (x = +1).
    """
    if not isinstance(stage, (DarknetStage, CSPStage)):
        raise TypeError(f"expected a DarknetStage or a CSPStage, got {type(stage).__name__}")
    down = stage.downsample.conv
    c_in, c_out, s = down.in_channels, down.out_channels, down.stride[0]
    hw = None if in_hw is None else ((in_hw[0] - 1) // s + 1, (in_hw[1] - 1) // s + 1)
    boxes = [
        DiagramBox("input", "input", _tensor_label(c_in, in_hw), None, "io", 0.0, 0.0),
        DiagramBox("downsample", "downsample", _conv_detail(stage.downsample),
                   count_parameters(stage.downsample), "conv", 0.0, -1.0),
    ]
    arrows = [DiagramArrow("input", "downsample", _tensor_label(c_in, in_hw), "main")]
    if isinstance(stage, DarknetStage):
        depth = len(stage.blocks)
        boxes += [
            DiagramBox("blocks", f"{depth} x residual block", _blocks_detail(stage.blocks),
                       count_parameters(stage.blocks), "blocks", 0.0, -2.5),
            DiagramBox("output", "output", _tensor_label(c_out, hw), None, "io", 0.0, -4.0),
        ]
        arrows += [
            DiagramArrow("downsample", "blocks", _tensor_label(c_out, hw), "main"),
            DiagramArrow("blocks", "output", _tensor_label(c_out, hw), "main"),
        ]
        title = "Darknet residual stage"
    else:  # CSPStage
        csp = stage.csp
        depth = len(csp.blocks)
        h = csp.split_main.conv.out_channels
        h_skip = csp.split_skip.conv.out_channels
        boxes += [
            DiagramBox("csp.split_main", "split: main part", _conv_detail(csp.split_main),
                       count_parameters(csp.split_main), "conv", -1.0, -2.0),
            DiagramBox("csp.split_skip", "split: skip part", _conv_detail(csp.split_skip),
                       count_parameters(csp.split_skip), "conv", 1.0, -2.0),
            DiagramBox("csp.blocks", f"{depth} x residual block", _blocks_detail(csp.blocks),
                       count_parameters(csp.blocks), "blocks", -1.0, -3.0),
            DiagramBox("csp.transition_main", "partial transition",
                       _conv_detail(csp.transition_main), count_parameters(csp.transition_main),
                       "conv", -1.0, -4.0),
            DiagramBox("concat", "concat [main; skip]", f"{h} + {h_skip} = {h + h_skip} ch",
                       None, "merge", 0.0, -5.0),
            DiagramBox("csp.transition", "transition", _conv_detail(csp.transition),
                       count_parameters(csp.transition), "conv", 0.0, -6.0),
            DiagramBox("output", "output", _tensor_label(c_out, hw), None, "io", 0.0, -7.0),
        ]
        arrows += [
            DiagramArrow("downsample", "csp.split_main", _tensor_label(c_out, hw), "main"),
            DiagramArrow("downsample", "csp.split_skip", _tensor_label(c_out, hw), "skip"),
            DiagramArrow("csp.split_main", "csp.blocks", _tensor_label(h, hw), "main"),
            DiagramArrow("csp.blocks", "csp.transition_main", _tensor_label(h, hw), "main"),
            DiagramArrow("csp.transition_main", "concat", _tensor_label(h, hw), "main"),
            DiagramArrow("csp.split_skip", "concat", _tensor_label(h_skip, hw), "skip"),
            DiagramArrow("concat", "csp.transition", _tensor_label(h + h_skip, hw), "main"),
            DiagramArrow("csp.transition", "output", _tensor_label(c_out, hw), "main"),
        ]
        title = "CSP stage"
    return StageDiagram(title, tuple(boxes), tuple(arrows), c_in, c_out, depth,
                        count_parameters(stage))


_BOX_W, _BOX_H = 1.75, 0.62  # box size in diagram units


def draw_stage(ax: Axes, stage: DarknetStage | CSPStage | StageDiagram, *,
               in_hw: tuple[int, int] | None = None, title: str | None = None,
               fontsize: float = 7, ylim: tuple[float, float] = (-7.6, 0.5)) -> StageDiagram:
    """Draw a stage (or its :func:`stage_diagram`) as boxes and arrows on ``ax``.

    Boxes show the layer, its kernel and channels and its parameters; arrows show the tensor's
    channels (C x H x W with ``in_hw``). In a CSP stage the part that skips the residual blocks
    is drawn in blue: its gradient reaches the stage's input without passing the blocks. Give
    two axes the same ``ylim`` to compare a short Darknet stage with a taller CSP stage.

    Returns:
        the diagram that was drawn.
    """
    diagram = stage if isinstance(stage, StageDiagram) else stage_diagram(stage, in_hw)
    boxes = {b.key: b for b in diagram.boxes}
    for arrow in diagram.arrows:
        a, b = boxes[arrow.start], boxes[arrow.end]
        color = ROLE_COLORS[arrow.role]
        start = (a.x, a.y - _BOX_H / 2)
        end = (b.x, b.y + _BOX_H / 2)
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.4,
                                "linestyle": "--" if arrow.role == "skip" else "-",
                                "shrinkA": 0, "shrinkB": 0})
        mid_x, mid_y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mid_x + 0.06, mid_y, arrow.label, fontsize=fontsize - 1, color=color,
                ha="left", va="center")
    for box in diagram.boxes:
        ax.add_patch(FancyBboxPatch((box.x - _BOX_W / 2, box.y - _BOX_H / 2), _BOX_W, _BOX_H,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=ROLE_COLORS[box.role], edgecolor="#333333",
                                    alpha=0.9, linewidth=0.8, zorder=2))
        params = "" if box.params is None else f"\n{box.params:,} params"
        ax.text(box.x, box.y, f"{box.title}\n{box.detail}{params}", ha="center", va="center",
                fontsize=fontsize, zorder=3)
    ax.set_xlim(-2.1, 2.1)
    ax.set_ylim(*ylim)
    ax.set_aspect("auto")
    ax.axis("off")
    ax.set_title(title or f"{diagram.title}: {diagram.in_channels} -> {diagram.out_channels} ch, "
                          f"{diagram.depth} blocks, {diagram.params:,} params",
                 fontsize=fontsize + 1)
    return diagram


@dataclass(frozen=True)
class StageCost:
    """Parameters and FLOPs (2 x MACs, one image) of one top-level part of a backbone."""

    name: str  # "stem", "stage1", ...
    params: int
    flops: int


def stage_costs(backbone: nn.Module, img_size: int | tuple[int, int]) -> list[StageCost]:
    """Parameters and FLOPs of each top-level child of ``backbone`` (stem, stage1, ...).

    Groups the rows of :func:`~yolo_teach.models.summary.summary` by the first part of their
    name, so it runs on the meta device like the summary does and the totals equal the
    summary's. Children without weights (none in Darknet-53 or CSPDarknet53) get no entry.
    """
    costs: dict[str, list[int]] = {}
    for row in summary(backbone, img_size).rows:
        entry = costs.setdefault(row.name.split(".")[0], [0, 0])
        entry[0] += row.params
        entry[1] += row.flops
    return [StageCost(name, params, flops) for name, (params, flops) in costs.items()]


def plot_stage_costs(costs: Mapping[str, Sequence[StageCost]], axes: Sequence[Axes] | None = None,
                     *, fontsize: float = 8) -> Sequence[Axes]:
    """Grouped bars per stage: parameters (millions) on the first axes, GFLOPs on the second.

    ``costs``: ``{backbone name: stage_costs(...)}``, all with the same stage names.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3))
    names = [c.name for c in next(iter(costs.values()))]
    x = np.arange(len(names))
    width = 0.8 / len(costs)
    colors = ("#999999", "#E69F00", "#56B4E9", "#009E73")
    for i, (label, rows) in enumerate(costs.items()):
        by_name = {c.name: c for c in rows}
        offset = (i - (len(costs) - 1) / 2) * width
        for ax, value in zip(axes, ("params", "flops")):
            scale = 1e6 if value == "params" else 1e9
            heights = [getattr(by_name[n], value) / scale for n in names]
            ax.bar(x + offset, heights, width, label=label, color=colors[i % len(colors)])
    for ax, ylabel in zip(axes, ("parameters (M)", "GFLOPs per image")):
        ax.set_xticks(x, names, fontsize=fontsize)
        ax.set_ylabel(ylabel, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=fontsize)
    return axes
