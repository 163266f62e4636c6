"""Curves of activation functions and their derivatives, and bars of what they cost.

:func:`activation_curves` evaluates activation *classes* (the ``act_layer`` the models take) on
a grid and differentiates them with autograd, so the derivative drawn is the one training
uses, not a formula typed next to it. :func:`plot_activation_curves` draws the values and the
derivatives side by side; :func:`plot_activation_costs` draws the time and the saved-tensor
memory measured by :func:`~yolo_teach.layers.activations.activation_cost`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import nn

# one colour per activation name used in the notebooks (Okabe-Ito); others cycle through the rest
ACTIVATION_COLORS = {
    "ReLU": "#999999",
    "leaky 0.1": "#E69F00",
    "SiLU": "#009E73",
    "Mish": "#0072B2",
    "MemoryEfficientMish": "#56B4E9",
    "nn.Mish": "#CC79A7",
}
_OTHER_COLORS = ("#D55E00", "#F0E442", "#000000")


def activation_curves(
    act_layers: Mapping[str, type[nn.Module]], x: np.ndarray | torch.Tensor
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Values f(x) and derivatives f'(x) of activation classes on the points ``x``.

    Computed in float64; the derivative is autograd's (for ReLU and leaky ReLU at exactly 0,
    PyTorch's convention: the slope of the left piece). The activation runs on a copy of the
    input, so in-place activations such as ``DarknetLeaky`` work too.

    Args:
        act_layers: ``{name: activation class}``, each built with no arguments.
        x: (N,) points.

    Returns:
        ``{name: (f(x), f'(x))}``, each an (N,) float64 array.
    """
    grid = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(-1)  # (N,)
    curves = {}
    for name, act_layer in act_layers.items():
        point = grid.clone().requires_grad_(True)
        y = act_layer()(point.clone())  # (N,), the copy keeps in-place activations legal
        (dy,) = torch.autograd.grad(y.sum(), point)  # elementwise: d sum / d x_i = f'(x_i)
        curves[name] = (y.detach().numpy(), dy.numpy())
    return curves


def _color(name: str, index: int) -> str:
    return ACTIVATION_COLORS.get(name, _OTHER_COLORS[index % len(_OTHER_COLORS)])


def plot_activation_curves(
    x: np.ndarray | torch.Tensor,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    axes: Sequence[Axes] | None = None,
    *,
    fontsize: float = 8,
) -> Sequence[Axes]:
    """f(x) on the first axes, f'(x) on the second, one line per activation.

    ``curves`` is the result of :func:`activation_curves` on the same ``x``.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.asarray(x, dtype=float).reshape(-1)
    for i, (name, (y, dy)) in enumerate(curves.items()):
        style = {"color": _color(name, i), "linewidth": 1.6, "label": name}
        axes[0].plot(x, y, **style)
        axes[1].plot(x, dy, **style)
    for ax, ylabel in zip(axes, ("f(x)", "f'(x)")):
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.axvline(0, color="0.6", linewidth=0.6)
        ax.set_xlabel("x", fontsize=fontsize)
        ax.set_ylabel(ylabel, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=fontsize)
    axes[0].set_title("activation", fontsize=fontsize + 1)
    axes[1].set_title("derivative (autograd)", fontsize=fontsize + 1)
    return axes


def plot_activation_costs(
    costs: Mapping[str, Mapping[str, float]],
    axes: Sequence[Axes] | None = None,
    *,
    fontsize: float = 8,
) -> Sequence[Axes]:
    """Horizontal bars: milliseconds per forward+backward, and MiB saved for the backward pass.

    ``costs``: ``{name: activation_cost(...)}`` (keys ``ms_per_step`` and ``peak_bytes``).
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    names = list(costs)
    y = np.arange(len(names))
    colors = [_color(name, i) for i, name in enumerate(names)]
    axes[0].barh(y, [costs[n]["ms_per_step"] for n in names], color=colors)
    axes[1].barh(y, [costs[n]["peak_bytes"] / 2**20 for n in names], color=colors)
    for ax, xlabel in zip(axes, ("ms per forward + backward", "MiB saved for backward")):
        ax.set_yticks(y, names, fontsize=fontsize)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize)
        ax.grid(axis="x", alpha=0.3)
    return axes
