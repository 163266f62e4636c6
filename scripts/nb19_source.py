"""Cells of notebook 19 (the evolution leaderboard), written out by ``python
scripts/nb19_source.py``; ``scripts/build_notebooks.py 19`` then adds the header, runs and
cleans it. Kept as a script so that the prose and the code are reviewed as text."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_source import NotebookSource  # noqa: E402

NB = NotebookSource("19_leaderboard.ipynb")
md, code = NB.md, NB.code


md(r"""
# 19 · The evolution leaderboard: every nano, same data, same budget, same CPU

Papers compare their detector with the previous ones on COCO, each trained by its own authors,
for its own number of epochs, on its own GPUs. This course built ten families of detectors and
can do what no paper can: train **every one of its nanos on the same data, for the same number
of steps, with the same seeds, on the same two CPU cores**, and time them on the same core.
The result is the one table a student of the YOLO family rarely sees: what each version buys
*at a fixed, small budget*, and what it costs at inference.

**Learning goals.** After this notebook you can

1. read a leaderboard that reports the spread over seeds, not only a mean, and say which
   differences are larger than that spread;
2. read a Pareto plot of accuracy against latency and name the models that nothing beats on
   both;
3. say why parameters, FLOPs and latency are three different things (measured, one thread);
4. reproduce one row of the table yourself, to the digit.

Runs in about 60 s on two CPU cores.
""")

code(r"""
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from yolo_teach import paths
from yolo_teach.leaderboard import (
    NANOS,
    leaderboard,
    leaderboard_rule,
    markdown_table,
    plot_leaderboard,
    read_rows,
    train_row,
)
from yolo_teach.registry import get_spec
from yolo_teach.utils import setup

setup(0, threads=1)
""")

md(r"""
## 1. The contestants and the rules of the game

Every nano of the zoo, in the order the course built them. Each trains on the default shapes
scenes (2,000 generated training images, 128 px, 3 classes), with the short-run recipe of the
course (light augmentation, batch 8, AdamW, the EMA of the weights; `yolo_teach.experiment.
short_run`), for **1,000 optimizer steps of 8 images**, with seeds 0, 1 and 2; mAP is COCO's,
on 200 validation scenes none of them trained on.

One choice needs saying out loud: the **assignment rule**. Which anchor learns which box changed
from version to version (YOLOv1's one cell, YOLOv2's best anchor, YOLOv5's neighbouring cells,
YOLOX's SimOTA), and our benchmarks show it matters as much as the network. To compare
*networks*, every model with YOLO anchors trains with the same rule, YOLOv5's `neighbours`; the
models without such anchors keep their own paper's rule.
""")

code(r"""
for name in NANOS:
    print(f"{name:24s} rule {leaderboard_rule(name):15s} {get_spec(name).description[:60]}")
""")

md(r"""
## 2. The rows

`benchmarks/leaderboard.py` trains every nano with three seeds (about 100 minutes on two
cores, one run at a time) and appends one JSON line per finished run, so an interrupted
leaderboard resumes where it stopped. A second pass times every network on a quiet machine: a training step of 8 images on
two threads, and one image's latency on **one thread** in PyTorch (as trained), in PyTorch
with Conv+BN folded, and in ONNX Runtime. We load the lines the package ships.
""")

code(r"""
# NBVAL_CHECK_OUTPUT
rows = read_rows(paths.results("leaderboard.jsonl"))
trains = [r for r in rows if r["kind"] == "train"]
speeds = {r["model"] for r in rows if r["kind"] == "speed"}
seeds = {name: sorted(r["seed"] for r in trains if r["model"] == name) for name in NANOS}
assert all(len(s) >= 3 for s in seeds.values()) and speeds == set(NANOS)
print(f"{len(trains)} training runs ({trains[0]['budget']} each), {len(speeds)} timed networks")
""")

code(r"""
table = leaderboard(rows)
display(Markdown(markdown_table(table)))
""")

md(r"""
How to read a line: **mAP50 ± s** is the mean over the three seeds and their sample standard
deviation. Two models whose means differ by less than about two of those spreads are not
ranked by this table; run more seeds before you claim one beats the other. "train img/s" is a
training step of 8 images on two threads; the latency is one 128 px image on one thread.
""")

md(r"""
## 3. Accuracy against latency: the Pareto front

A model is on the **Pareto front** when no other model is both more accurate (mean mAP50) and
faster (PyTorch latency, one thread). Everything off the front is beaten on both counts by
something on it.
""")

code(r"""
fig, ax = plt.subplots(figsize=(8, 5))
plot_leaderboard(table, ax=ax)
ax.set_xscale("log")
plt.tight_layout()
plt.show()
front = [t["model"] for t in table if t["pareto"]]
print("on the front:", ", ".join(front))
""")

md(r"""
**Reading the plot.** At this budget the front is short: the oldest, simplest networks are the
fastest, and the first one that is also accurate is a plain YOLOv3 with YOLOv5's assignment.
Several later designs (CSP, Mish, SE, PANet, the improved YOLOX's attention) are slower *and*
less accurate here. That is not a verdict on the papers: they were designed for hundreds of
COCO epochs on a GPU, where the extra capacity pays; 1,000 steps on 2,000 simple scenes rewards
networks that fit fast. The cell below asserts what the table shows, so that a rebuild with
other numbers cannot silently keep this paragraph.
""")

code(r"""
by = {t["model"]: t for t in table}
best = max(table, key=lambda t: t["map_50"])
assert best["model"] == "yolov3-nano" and best["pareto"]
assert by["yolov1-nano"]["pareto"]  # the fastest network is always on the front
assert not by["yolox-improved-cpu-nano"]["pareto"] and not by["yolov5n"]["pareto"]
print(f"most accurate: {best['model']} ({best['map_50']:.3f} ± {best['map_50_std']:.3f})")
""")

md(r"""
## 4. Three costs that are not the same number

Parameters decide the size of the weights file; FLOPs count the arithmetic; latency is what a
user waits. The three plots below put the same networks on each pair.
""")

code(r"""
done = [t for t in table if t.get("latency_ms_torch") is not None]
params = np.array([t["params"] for t in done]) / 1e6
gflops = np.array([t["gflops"] for t in done])
torch_ms = np.array([t["latency_ms_torch"] for t in done])
ort_ms = np.array([t["latency_ms_onnxruntime"] for t in done])
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, (x, y, xl, yl) in zip(axes, [
        (params, gflops, "parameters (M)", "GFLOPs at 128 px"),
        (gflops, torch_ms, "GFLOPs at 128 px", "latency, PyTorch (ms)"),
        (torch_ms, ort_ms, "latency, PyTorch (ms)", "latency, ONNX Runtime (ms)")]):
    ax.scatter(x, y)
    for t, xi, yi in zip(done, x, y):
        ax.annotate(t["model"].replace("-nano", ""), (xi, yi), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    ax.set(xlabel=xl, ylabel=yl)
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()
r = np.corrcoef(gflops, torch_ms)[0, 1]
print(f"correlation of GFLOPs and PyTorch latency over the {len(done)} networks: {r:.2f}")
print(f"ONNX Runtime is {np.median(torch_ms / ort_ms):.1f}x faster than eager PyTorch "
      f"(median over the networks)")
""")

md(r"""
**Reading the three plots.** Parameters and FLOPs go together loosely (a wide 1 × 1 layer has
many parameters and few FLOPs at a small map). Latency follows neither closely on one thread:
Mish and SE cost little arithmetic but many small, memory-bound operations (compare
`yolov4-nano` with `yolov4-nano-mish`: the same FLOPs, a much slower image), and
RefineDetLite, the network with the fewest FLOPs here, is not the fastest in eager PyTorch. On
ONNX Runtime, which fuses operations and picks better kernels, most of that overhead goes away,
as RefineDetLite's paper argues for CPUs (notebook 16).
""")

md(r"""
## 5. The spread over seeds

The same network, the same data, the same steps: only the seed changes (the initial weights,
the order of the images, the augmentation). Each dot is one run.
""")

code(r"""
fig, ax = plt.subplots(figsize=(10, 3.8))
for i, name in enumerate(NANOS):
    values = [r["map_50"] for r in trains if r["model"] == name]
    ax.scatter([i] * len(values), values, color="tab:blue")
ax.set_xticks(range(len(NANOS)), [n.replace("-nano", "") for n in NANOS], rotation=45,
              ha="right")
ax.set(ylabel="mAP50 after the budget", title="One dot per seed")
ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()
""")

md(r"""
## 6. Reproduce a row yourself

Every number above came out of `yolo_teach.leaderboard.train_row`; nothing in the table was
typed in. The cell below trains one row again, the quickest to train, with the seed and the
thread count of the stored run: on the same kind of CPU and the same PyTorch, the result is the
same to the digit (training is deterministic at a fixed seed and thread count; another CPU may
round a few sums differently).
""")

code(r"""
# NBVAL_IGNORE_OUTPUT
LIVE = "LIVE_MODEL"
stored = next(r for r in trains if r["model"] == LIVE and r["seed"] == 0)
live = train_row(LIVE, seed=0, steps=int(stored["budget"].split()[0]), threads=stored["threads"])
print(f"{LIVE}, seed 0: stored mAP50 {stored['map_50']:.4f}, mAP50-95 {stored['map']:.4f}")
print(f"{LIVE}, seed 0: live   mAP50 {live['map_50']:.4f}, mAP50-95 {live['map']:.4f} "
      f"({live['train_seconds']:.0f} s of training, {live['images_per_second']:.0f} img/s)")
""")

code(r"""
assert abs(live["map_50"] - stored["map_50"]) < 0.02, (live, stored)
""")

md(r"""
## Exercises

1. **More seeds.** Pick the two models whose mean mAP50 are closest and run
   `python benchmarks/leaderboard.py --models A B --seeds 3 4 5 --only train`. Does their order
   hold over six seeds?
2. **A longer budget.** Re-run the leaderboard with `--steps 2000 --out my_rows.jsonl`. Which
   models gain the most from the extra steps? What does that say about a leaderboard at a
   single budget?
3. **The assignment rule.** Train `yolov3-nano` with its paper's rule (`single`) instead of
   `neighbours` (`train_row("yolov3-nano", "single", steps=1000)`). How much of the gap between
   YOLOv3 and YOLOv5 in the table is the rule, how much the network?
4. **Your own machine.** The speed pass (`--only speed`) on your laptop: does the Pareto front
   change?

## Where the code lives

* `yolo_teach/leaderboard.py`: `train_row`, `speed_row`, the table, the Pareto front, the plot.
* `benchmarks/leaderboard.py`: the resumable driver; its results are
  `yolo_teach/assets/results/leaderboard.jsonl` and `benchmarks/leaderboard.png`.
* `yolo_teach/models/timing.py`: `deploy_latency` (PyTorch, fused, ONNX Runtime) and
  `step_time`.
""")


if __name__ == "__main__":
    NB.main()
