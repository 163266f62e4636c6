"""The evolution leaderboard: every nano of the zoo, same data, same steps, same seeds, same CPU.

``benchmarks/leaderboard.py`` writes the rows (JSON lines, one per run, resumable); notebook 19
reads them back with :func:`read_rows`, condenses them with :func:`leaderboard` and draws
:func:`plot_leaderboard`. Two kinds of row:

- ``"train"``: one model trained with one seed (:func:`train_row`): optimizer steps, seconds,
  images per second *of that run* (a busy machine lowers them) and COCO mAP50 / mAP50-95 on the
  200 validation scenes;
- ``"speed"``: one model timed on a quiet machine (:func:`speed_row`): parameters, FLOPs at
  128 px, a training step of 8 images (2 threads) and one image's latency (1 thread) on the
  three backends of :func:`~yolo_teach.models.timing.deploy_latency`.

Every model trains with the short-run recipe of :func:`~yolo_teach.experiment.short_run` and,
where it has anchors, one assignment rule, YOLOv5's ``neighbours`` (:func:`leaderboard_rule`):
the rows then compare networks, not target assignments (the assignment rules have their own
benchmarks, ``benchmarks/train_nano.py``). Models without YOLO anchors keep their paper's rule
(YOLOv1 ``single``, YOLOX ``simota``, RefineDet ``basic``, YOLOv7's auxiliary head
``coarse-to-fine``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import mean, median, stdev

from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.models.summary import count_flops, count_parameters
from yolo_teach.registry import get_spec
from yolo_teach.results import append_jsonl
from yolo_teach.utils import setup

# Every nano of the zoo, in the order the course builds them.
NANOS = (
    "yolov1-nano", "yolov2-nano", "yolov3-nano", "yolov4-nano", "yolov4-nano-mish",
    "yolov4-tiny-nano", "yolov5n", "yolov5n-se-mish", "yolov5-cpu-nano", "yolov5-cpu-nano-se",
    "yolov5-cpu-nano-se-mish", "yolox-cpu-nano",
    "yolox-improved-cpu-nano", "yolov7-tiny-nano", "yolov7-tiny-nano-aux", "refinedet-lite-nano",
)
IMG_SIZE = 128  # the shapes scenes' side
SHARED_RULE = "neighbours"


def leaderboard_rule(model: str) -> str:
    """:data:`SHARED_RULE` when ``model`` offers it, else its paper's rule."""
    spec = get_spec(model)
    return SHARED_RULE if SHARED_RULE in spec.rules else spec.default_rule


def train_row(model: str, assign: str | None = None, budget: float | None = None,
              seed: int = 0, threads: int = 2, recipe: str = "short", steps: int | None = None,
              img_size: int = IMG_SIZE, **options) -> dict:
    """Train ``model`` on the default shapes data for ``budget`` seconds or ``steps`` optimizer
    steps (validation on 200 unseen scenes after it) and return the JSON-able row.

    ``assign=None`` is :func:`leaderboard_rule`; ``recipe="short"`` is
    :func:`~yolo_teach.experiment.short_run`, ``"default"`` :func:`make_experiment`'s defaults;
    ``options`` go to :func:`make_experiment` last.
    """
    if (budget is None) == (steps is None):
        raise ValueError("give a budget of seconds or of steps, not both")
    assign = assign or leaderboard_rule(model)
    setup(seed, threads)
    started = time.perf_counter()
    options = {**(short_run(model) if recipe == "short" else {}), **options}
    exp = make_experiment(model, "shapes", assign=assign, img_size=img_size, seed=seed,
                          epochs=10_000, time_limit=budget, max_steps=steps, val_every=0,
                          progress=False, **options)
    last = exp.trainer.fit()[-1]
    return {
        "kind": "train", "model": model, "assign": assign, "recipe": recipe, "seed": seed,
        "img_size": img_size, "threads": threads,
        "budget": f"{steps} steps" if steps else f"{budget:g} s",
        "params": count_parameters(exp.detector.model),
        "train_seconds": last["train_seconds"], "iterations": last["iteration"],
        "images_per_second": round(last["images_per_second"], 1),
        "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def speed_row(model: str, img_size: int = IMG_SIZE, num_classes: int = 3, repeats: int = 20,
              train_threads: int = 2) -> dict:
    """Size and speed of ``model`` (``num_classes`` = the shapes data's 3): parameters and FLOPs
    (2 x multiply-adds, :func:`~yolo_teach.models.summary.count_flops`) of the network as
    trained, images per second of a training step of 8 images on ``train_threads`` threads
    (:func:`~yolo_teach.models.timing.step_time`) and the median latency of one image on one
    thread for each backend of :func:`~yolo_teach.models.timing.deploy_latency`."""
    from yolo_teach.models.timing import cpu_name, deploy_latency, step_time

    setup(0, train_threads)
    network = get_spec(model).make_model(num_classes, img_size)
    step = step_time(network, img_size, batch_size=8)
    latency = deploy_latency(network, img_size, threads=1, repeats=repeats, name=model)
    return {
        "kind": "speed", "model": model, "img_size": img_size, "cpu": cpu_name(),
        "params": count_parameters(network), "gflops": round(count_flops(network, img_size) / 1e9, 4),
        "train_threads": train_threads,
        "train_images_per_second": round(step["images_per_second"], 1),
        **{f"latency_ms_{r['backend'].replace('-', '_')}": round(r["median_ms"], 2)
           for r in latency},
    }


def row_key(row: dict) -> tuple:
    """What makes a row unique: a resumed run skips the keys it already has."""
    if row["kind"] == "speed":
        return ("speed", row["model"], row["img_size"])
    return ("train", row["model"], row["assign"], row["budget"], row["seed"], row["img_size"])


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a leaderboard file; a missing file has none. A line cut short by an
    interrupted write is skipped (it is re-run on resume)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


append_row = append_jsonl  # one row of a leaderboard file (yolo_teach.results)


def _spread(values: list[float]) -> float:
    return stdev(values) if len(values) > 1 else 0.0


def leaderboard(rows: Iterable[dict], budget: str | None = None,
                order: Sequence[str] = NANOS) -> list[dict]:
    """One line per model: its speed row joined with its training rows of ``budget`` (default:
    the most common budget), mAP50 and mAP50-95 as mean and sample standard deviation over
    seeds, and ``pareto`` (no other model is both more accurate, by mean mAP50, and faster, by
    PyTorch latency). Models in ``order``, then any others."""
    rows = list(rows)
    trains = [r for r in rows if r["kind"] == "train"]
    if budget is None and trains:
        budgets = [r["budget"] for r in trains]
        budget = max(set(budgets), key=budgets.count)
    speeds = {r["model"]: r for r in rows if r["kind"] == "speed"}
    names = [m for m in order if m in speeds or any(r["model"] == m for r in trains)]
    names += sorted(({r["model"] for r in trains} | set(speeds)) - set(names))
    table = []
    for name in names:
        runs = [r for r in trains if r["model"] == name and r["budget"] == budget]
        line = {"model": name, "budget": budget, "seeds": sorted(r["seed"] for r in runs),
                "assign": runs[0]["assign"] if runs else None}
        line.update({k: v for k, v in speeds.get(name, {}).items() if k not in ("kind", "model")})
        for key in ("map_50", "map"):
            values = [r[key] for r in runs]
            line[key] = mean(values) if values else None
            line[f"{key}_std"] = _spread(values) if values else None
        line["run_images_per_second"] = median([r["images_per_second"] for r in runs]) if runs \
            else None
        table.append(line)
    _mark_pareto(table)
    return table


def _mark_pareto(table: list[dict], latency: str = "latency_ms_torch") -> None:
    for line in table:
        if line["map_50"] is None or line.get(latency) is None:
            line["pareto"] = False
            continue
        line["pareto"] = not any(
            o is not line and o["map_50"] is not None and o.get(latency) is not None
            and o["map_50"] >= line["map_50"] and o[latency] <= line[latency]
            and (o["map_50"] > line["map_50"] or o[latency] < line[latency])
            for o in table)


def markdown_table(table: list[dict]) -> str:
    """The leaderboard as a Markdown table (``benchmarks/README.md``)."""
    head = ("| model | rule | params | GFLOPs (128 px) | train img/s | latency ms (torch / ORT) "
            "| mAP50 | mAP50-95 | seeds | Pareto |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    lines = [head]

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    for t in table:
        lines.append(
            f"| {t['model']} | {t['assign'] or '-'} | {num(t.get('params'), ',')} "
            f"| {num(t.get('gflops'), '.3f')} | {num(t.get('train_images_per_second'), '.0f')} "
            f"| {num(t.get('latency_ms_torch'), '.1f')} / "
            f"{num(t.get('latency_ms_onnxruntime'), '.1f')} "
            f"| {num(t['map_50'], '.3f')} ± {num(t['map_50_std'], '.3f')} "
            f"| {num(t['map'], '.3f')} ± {num(t['map_std'], '.3f')} | {len(t['seeds'])} "
            f"| {'yes' if t['pareto'] else ''} |")
    return "\n".join(lines)


def plot_leaderboard(table: list[dict], ax=None, latency: str = "latency_ms_torch"):
    """mAP50 (mean, with the spread over seeds as error bars) against one image's latency on
    one thread; the Pareto front joined by a line. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    done = [t for t in table if t["map_50"] is not None and t.get(latency) is not None]
    for t in done:
        color = "tab:red" if t["pareto"] else "tab:blue"
        ax.errorbar(t[latency], t["map_50"], yerr=t["map_50_std"], fmt="o", color=color,
                    capsize=3)
        ax.annotate(t["model"], (t[latency], t["map_50"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    front = sorted((t for t in done if t["pareto"]), key=lambda t: t[latency])
    if front:
        ax.plot([t[latency] for t in front], [t["map_50"] for t in front], "--", color="tab:red",
                label="Pareto front")
        ax.legend(loc="lower right")
    budget = done[0]["budget"] if done else ""
    ax.set(xlabel="latency of one 128 px image, 1 thread, PyTorch (ms)",
           ylabel=f"mAP50 (mean over seeds, {budget})", title="The evolution leaderboard")
    ax.grid(alpha=0.3)
    return ax
