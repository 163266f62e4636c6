"""YOLOv5's compound scaling as a table and a plot, computed from the real factories.

One network definition and two numbers per size (``models/yolov5{n,s,m,l,x}.yaml``): every C3
block count ``n`` becomes ``max(round(n d), 1)`` (``depth_multiple`` d) and every width ``c``
becomes ``ceil(c w / 8) 8`` (``width_multiple`` w). A 3 x 3 conv from C to C channels has
:math:`9 C^2` weights, so parameters and FLOPs grow about as :math:`w^2`, and with the depth
less than proportionally (the stride-2 convs, SPPF, the neck's 1 x 1 convs and the head do not
repeat). :func:`scaling_table` measures each size on the meta device (no weights allocated,
even for the 87 M parameters of YOLOv5x); :func:`plot_scaling` puts the measurements against
the :math:`w^2` rule.

The idea of scaling depth and width together comes from EfficientNet (Tan & Le 2019, "compound
scaling"), which also scales the input resolution; YOLOv5 keeps the resolution at 640.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.models.yolov5 import yolov5l, yolov5m, yolov5n, yolov5s, yolov5x

# the official sizes, smallest first
YOLOV5_FACTORIES: dict[str, Callable] = {"yolov5n": yolov5n, "yolov5s": yolov5s,
                                         "yolov5m": yolov5m, "yolov5l": yolov5l,
                                         "yolov5x": yolov5x}


@dataclass(frozen=True)
class ScaledModel:
    """One size of a scaled family: its multipliers and its measured cost."""

    name: str
    depth_multiple: float
    width_multiple: float
    params: int
    flops: int  # one image of img_size x img_size (2 x MACs of convs and linear layers)
    img_size: int

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def scaling_table(factories: Mapping[str, Callable] | None = None, img_size: int = 640,
                  num_classes: int = 80) -> list[ScaledModel]:
    """Parameters and FLOPs of each ``factories`` model (default: YOLOv5 n, s, m, l, x).

    Each factory is called as ``factory(num_classes)`` under ``torch.device("meta")`` and must
    return a model with a ``cfg`` holding ``depth_multiple`` and ``width_multiple``
    (:class:`~yolo_teach.models.yolov5.YOLOv5Config`).
    """
    rows = []
    for name, factory in (factories or YOLOV5_FACTORIES).items():
        with torch.device("meta"):
            model = factory(num_classes)
        rows.append(ScaledModel(name, model.cfg.depth_multiple, model.cfg.width_multiple,
                                count_parameters(model), count_flops(model, img_size), img_size))
    return rows


def format_scaling_table(rows: Sequence[ScaledModel], reference: str | None = None) -> str:
    """The rows as text: multipliers, parameters, GFLOPs, and both relative to ``reference``
    (a row's name; default the last row) next to :math:`(w / w_\\text{ref})^2`."""
    ref = next(r for r in rows if r.name == reference) if reference else rows[-1]
    lines = [f"{'model':10s} {'depth':>6s} {'width':>6s} {'params':>12s} "
             f"{'GFLOPs@' + str(ref.img_size):>11s} {'params/' + ref.name:>15s} "
             f"{'(w/w_ref)^2':>12s}"]
    for r in rows:
        lines.append(f"{r.name:10s} {r.depth_multiple:6.2f} {r.width_multiple:6.2f} "
                     f"{r.params:>12,d} {r.gflops:11.2f} {r.params / ref.params:15.3f} "
                     f"{(r.width_multiple / ref.width_multiple) ** 2:12.3f}")
    return "\n".join(lines)


def plot_scaling(rows: Sequence[ScaledModel], ax: Axes | None = None, *,
                 reference: str | None = None, fontsize: float = 8) -> Axes:
    """Parameters (M) and GFLOPs against the width multiple, log-log, each point named, with
    the :math:`w^2` rule drawn through ``reference`` (default the last row) as dashed lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    ref = next(r for r in rows if r.name == reference) if reference else rows[-1]
    w = np.array([r.width_multiple for r in rows])
    prefix = os.path.commonprefix([r.name for r in rows]) if len(rows) > 1 else ""
    grid = np.geomspace(w.min() * 0.9, w.max() * 1.1, 50)
    series = (("parameters (M)", [r.params / 1e6 for r in rows], ref.params / 1e6, "#0072B2"),
              (f"GFLOPs at {ref.img_size} px", [r.gflops for r in rows], ref.gflops, "#E69F00"))
    for label, values, at_ref, color in series:
        ax.plot(w, values, "o-", color=color, label=label)
        ax.plot(grid, at_ref * (grid / ref.width_multiple) ** 2, "--", color=color, alpha=0.5,
                linewidth=1)
        for x, y, r in zip(w, values, rows):  # the names less their common prefix ("yolov5")
            ax.annotate(r.name[len(prefix):] or r.name, (x, y), textcoords="offset points",
                        xytext=(4, -10), fontsize=fontsize, color=color)
    ax.plot([], [], "--", color="0.5", label=f"$\\propto w^2$ through {ref.name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(w, [f"{x:g}" for x in w])
    ax.minorticks_off()
    ax.margins(y=0.12)  # room for the names under the lowest points
    ax.set_xlabel("width multiple w", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=fontsize)
    return ax
