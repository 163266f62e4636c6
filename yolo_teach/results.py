"""Benchmark results on disk: read the JSON lines the benchmark scripts print, summarise seeds.

The benchmarks (``benchmarks/*.py``) print one JSON object per run; ``yolo_teach/assets/results/``
keeps the lines measured for the course, and the notebooks read them from there instead of
retraining for minutes::

    rows = read_jsonl(yolo_teach.paths.results("v4_vs_v3.jsonl"))
    summarize(rows, by=("model", "assign"))  # mean, std, min, max and n of map_50 and map
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append ``row`` as one JSON line and flush it to disk (a crash loses at most the run in
    progress); the folder is made if missing. The resumable benchmarks write with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def read_jsonl(path: str | Path) -> list[dict]:
    """Every JSON object of a file with one per line (blank lines skipped).

    Raises ``ValueError`` naming the file and the 1-based line of a line that is not JSON.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON line ({error.msg})") from None
    return rows


def summarize(rows: Sequence[dict], by: Sequence[str],
              metrics: Sequence[str] = ("map_50", "map")) -> list[dict]:
    """Group ``rows`` by the values of ``by`` (first-seen order) and summarise each metric.

    Returns one dict per group: the ``by`` values, ``n``, and for each metric ``m``:
    ``m`` (mean), ``m_std`` (sample standard deviation, 0 for one run), ``m_min``, ``m_max``.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        summary = {**dict(zip(by, key)), "n": len(members)}
        for m in metrics:
            values = [float(r[m]) for r in members]
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0
            summary.update({m: mean, f"{m}_std": math.sqrt(var), f"{m}_min": min(values),
                            f"{m}_max": max(values)})
        out.append(summary)
    return out


def by_setting(rows: Sequence[dict], model: str) -> dict[tuple[str, int, str], list[dict]]:
    """The rows of ``benchmarks/live_cell.py`` for ``model``, grouped by setting (first-seen order).

    Keys are ``(start, steps, changes)``: ``start`` is the checkpoint's file name or ``"from
    scratch"``, ``changes`` the recipe overrides as text (``"lr 0.01, warmup_iters 15"``, ``""``
    for none); each value holds that setting's rows, one per seed.
    """
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for row in rows:
        if row["model"] == model:
            changes = ", ".join(f"{k} {v}" for k, v in row.get("options", {}).items())
            key = (row.get("weights") or "from scratch", row["steps"], changes)
            groups.setdefault(key, []).append(row)
    return groups
