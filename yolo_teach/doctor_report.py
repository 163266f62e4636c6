"""What the detector doctor found, as data: :class:`Finding`, :class:`DoctorReport`, and its
terminal text, one self-contained HTML page and a PNG summary (matplotlib, Agg)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

SEVERITIES = ("error", "warning", "info")  # most severe first


@dataclass
class Finding:
    """One problem (or fact) about a dataset or checkpoint.

    Attributes:
        code: short stable id, e.g. ``"pixel-coordinates"``.
        severity: ``"error"`` (training will not work), ``"warning"`` (probably wrong) or
            ``"info"``.
        message: what is wrong and how to fix it, in plain words.
        files: a few examples ``(path, line)`` where it applies (``line`` is ``None`` for a
            whole file).
        count: how many lines, boxes or files it applies to.
    """

    code: str
    severity: str
    message: str
    files: list[tuple[Path, int | None]] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def where(self) -> str:
        """The examples as ``path:line`` text."""
        return ", ".join(f"{p}:{n}" if n is not None else str(p) for p, n in self.files)


@dataclass
class DoctorReport:
    """Findings (most severe first), label statistics, the overfit check and, with weights, the
    confidence sweep. ``str(report)`` is the terminal text."""

    data: str
    findings: list[Finding]
    stats: dict
    overfit: dict | None = None
    sweep: list[dict] | None = None

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity))

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def __str__(self) -> str:
        s = self.stats
        lines = [f"doctor: {self.data}: {s['images']} images, {s['boxes']} boxes, "
                 f"{len(s['class_names'])} classes"]
        for f in self.findings:
            lines.append(f"{f.severity.upper():8}{f.code} ({f.count}): {f.message}")
            if f.files:
                lines.append(f"{'':8}e.g. {f.where()}")
        if not self.findings:
            lines.append("no problems found")
        return "\n".join([*lines, "", *self.details()])

    def details(self) -> list[str]:
        """The statistics, the overfit check and the sweep as text lines."""
        lines = ["statistics:", *_stats_lines(self.stats)]
        if self.overfit is not None:
            o = self.overfit
            lines.append(f"overfit one batch ({o['images']} images, {o['boxes']} boxes, "
                         f"{o['steps']} steps): loss {o['loss_start']:.3g} -> {o['loss_end']:.3g},"
                         f" mAP50 on the batch {o['map50']:.3f} ({o['seconds']:.1f} s)")
        if self.sweep:
            lines += ["", "confidence sweep on the val split:",
                      "   conf   mAP50  precision  recall"]
            lines += [f"{r['conf']:7.3f} {r['map50']:7.3f} {r['precision']:10.3f} "
                      f"{r['recall']:7.3f}" for r in self.sweep]
        return lines

    def figure(self) -> Figure:
        """The summary figure: class histogram, box sizes with the anchors, loss, sweep."""
        return summary_figure(self)

    def png(self) -> bytes:
        """The summary figure as PNG bytes."""
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def write_png(self, path: str | Path, png: bytes | None = None) -> Path:
        """Write the summary figure (or the ``png`` bytes already drawn); return the path."""
        path = Path(path)
        path.write_bytes(png or self.png())
        return path

    def write_html(self, path: str | Path, png: bytes | None = None) -> Path:
        """Write one self-contained HTML page (findings table, statistics, the summary figure
        as an embedded base64 PNG); return its path."""
        path = Path(path)
        picture = base64.b64encode(png or self.png()).decode("ascii")
        rows = "".join(
            f"<tr class='{f.severity}'><td>{f.severity}</td><td><code>{f.code}</code></td>"
            f"<td>{f.count}</td><td>{html.escape(f.message)}</td>"
            f"<td><code>{html.escape(f.where())}</code></td></tr>" for f in self.findings
        ) or "<tr><td colspan='5'>no problems found</td></tr>"
        text = html.escape("\n".join(self.details()))
        page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>yolo-teach doctor: {html.escape(self.data)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
.error td:first-child{{color:#b00;font-weight:bold}} .warning td:first-child{{color:#a60}}
</style></head><body>
<h1>Detector doctor</h1><p>{html.escape(str(self).splitlines()[0])}</p>
<h2>Findings</h2><table><tr><th>severity</th><th>code</th><th>count</th><th>what and how
to fix it</th><th>for example</th></tr>{rows}</table>
<h2>Statistics</h2><pre>{text}</pre>
<img alt="summary: boxes per class, box sizes and anchors, overfit loss, confidence sweep"
 src="data:image/png;base64,{picture}">
</body></html>
"""
        path.write_text(page, encoding="utf-8")
        return path

    def save(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``folder/doctor.html`` and ``folder/doctor.png`` (the figure drawn once)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        png = self.png()
        return self.write_html(folder / "doctor.html", png), self.write_png(folder / "doctor.png",
                                                                            png)


def _stats_lines(s: dict) -> list[str]:
    counts = ", ".join(f"{name} {n}" for name, n in zip(s["class_names"], s["class_counts"]))
    lines = [f"  boxes per class: {counts}"]
    wh = s["box_wh"]
    if len(wh):
        lo, med, hi = np.percentile(wh.min(1), [5, 50, 95])
        lines.append(f"  box short side at {s['img_size']} px input: 5% {lo:.1f}, median "
                     f"{med:.1f}, 95% {hi:.1f} px")
    recall = s.get("anchor_recall")
    if recall is not None:
        lines.append(f"  {s['model']} anchors, best possible recall (anchor_t 4): official "
                     f"{recall['official']:.3f}, k-means {recall['kmeans']:.3f}")
    return lines + [f"  note: {note}" for note in s.get("notes", [])]


def summary_figure(report: DoctorReport) -> Figure:
    """Four panels: boxes per class, box sizes at the network input with the model's anchors,
    the overfit loss curve and the confidence sweep (each left blank when not measured)."""
    s = report.stats
    fig = Figure(figsize=(11, 8), layout="constrained")
    (ax_cls, ax_wh), (ax_fit, ax_sweep) = fig.subplots(2, 2)
    ax_cls.bar(range(len(s["class_counts"])), s["class_counts"], color="tab:blue")
    ax_cls.set_xticks(range(len(s["class_names"])), s["class_names"], rotation=45, ha="right")
    ax_cls.set(title="boxes per class", ylabel="boxes")
    wh = s["box_wh"]
    if len(wh):
        ax_wh.scatter(wh[:, 0], wh[:, 1], s=6, alpha=0.5, label="boxes")
    if s.get("anchors") is not None:
        anchors = np.asarray(s["anchors"])
        ax_wh.scatter(anchors[:, 0], anchors[:, 1], marker="x", color="tab:red", s=60,
                      label=f"{s['model']} anchors")
    ax_wh.set(title=f"box sizes at the {s['img_size']} px input", xlabel="width (px)",
              ylabel="height (px)", xscale="log", yscale="log")
    if len(wh) or s.get("anchors") is not None:
        ax_wh.legend(loc="upper left", fontsize=8)
    if report.overfit is not None and report.overfit["losses"]:
        ax_fit.plot(report.overfit["losses"])
        ax_fit.set_yscale("log")
    else:
        ax_fit.text(0.5, 0.5, "not run (--overfit-steps 0)", ha="center",
                    transform=ax_fit.transAxes)
    ax_fit.set(title="overfit one batch: loss", xlabel="step")
    if report.sweep:
        conf = [r["conf"] for r in report.sweep]
        for key in ("map50", "precision", "recall"):
            ax_sweep.plot(conf, [r[key] for r in report.sweep], marker="o", label=key)
        ax_sweep.set_xscale("log")
        ax_sweep.legend(fontsize=8)
    else:
        ax_sweep.text(0.5, 0.5, "no --weights given", ha="center", transform=ax_sweep.transAxes)
    ax_sweep.set(title="confidence sweep (val)", xlabel="confidence threshold", ylim=(0, 1.05))
    return fig
