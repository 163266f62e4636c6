"""Latency bars: the median milliseconds of one image per model and backend (notebook 15).

Reads the records of :func:`yolo_teach.models.timing.deploy_latency` and of
``benchmarks/latency.py``'s JSON lines (the same fields): ``model``, ``backend``, ``img_size``,
``threads``, ``median_ms``, ``q1_ms``, ``q3_ms``. One group of bars per (model, input size,
threads), in the order first seen; one bar per backend, its height the median and its whisker
the interquartile range (a single call's time is skewed upwards by the rest of the machine, so
the median and quartiles describe it better than a mean and a standard deviation).
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes

from yolo_teach.models.timing import DEPLOY_BACKENDS

BACKEND_COLORS = {"torch": "#0072B2", "torch-fused": "#E69F00", "onnxruntime": "#009E73"}


def latency_groups(records: Sequence[dict], backends: Sequence[str] = DEPLOY_BACKENDS
                   ) -> dict[tuple[str, int, int], dict[str, dict]]:
    """``{(model, img_size, threads): {backend: record}}`` for the records of ``backends``, the
    groups in the order first seen (a later record of the same group and backend wins)."""
    groups: dict[tuple[str, int, int], dict[str, dict]] = {}
    for record in records:
        if record["backend"] in backends:
            key = (record["model"], int(record["img_size"]), int(record["threads"]))
            groups.setdefault(key, {})[record["backend"]] = record
    return groups


def draw_latency(ax: Axes, records: Sequence[dict], backends: Sequence[str] = DEPLOY_BACKENDS,
                 values: bool = True) -> Axes:
    """Grouped bars of ``median_ms``, whiskers from ``q1_ms`` to ``q3_ms``, on ``ax``.

    Args:
        ax: the axes to draw on.
        records: latency records (see the module docstring); other backends are left out.
        backends: the backends to draw, in this order within a group.
        values: write each median above its bar.

    Returns:
        ``ax``; one ``Rectangle`` patch per bar drawn (a group without a backend has no bar).
    """
    groups = latency_groups(records, backends)
    if not groups:
        raise ValueError(f"no latency record of the backends {list(backends)}")
    width = 0.8 / len(backends)
    for j, backend in enumerate(backends):
        xs, medians, low, high = [], [], [], []
        for i, by_backend in enumerate(groups.values()):
            if backend in by_backend:
                r = by_backend[backend]
                xs.append(i + (j - (len(backends) - 1) / 2) * width)
                medians.append(r["median_ms"])
                low.append(r["median_ms"] - r["q1_ms"])
                high.append(r["q3_ms"] - r["median_ms"])
        if not xs:
            continue
        bars = ax.bar(xs, medians, width, yerr=[low, high], capsize=2, label=backend,
                      color=BACKEND_COLORS.get(backend), error_kw={"linewidth": 0.8})
        if values:
            ax.bar_label(bars, labels=[f"{m:.0f}" if m >= 10 else f"{m:.1f}" for m in medians],
                         fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{model}\n{size} px, {threads} thr" for model, size, threads in groups],
                       fontsize=8)
    ax.set_ylabel("median ms per image (batch 1)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)  # room for the values
    ax.legend(fontsize=8)
    return ax
