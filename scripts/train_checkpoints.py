"""Train the nano models that the notebooks load, and write their small weight files.

The notebooks train every model live for a short while; to show what a longer run reaches they
also load the weights written here (``yolo_teach/assets/weights/<model>-<assign>.pt``, float16 EMA weights with the
run's settings and history, a few MB each). Runs use the short-run recipe
(``yolo_teach.experiment.short_run``) and are fixed in epochs, not seconds, so the files are
reproducible for a given seed and thread count::

    python scripts/train_checkpoints.py                         # every run below (~30 min)
    python scripts/train_checkpoints.py --runs yolov3-nano:neighbours --epochs 20

YOLOv1 trains on the easy shapes (``yolo_teach.data.EASY_SHAPES``): on the default scenes its
fully connected head has learnt almost no classes after minutes (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from yolo_teach import paths
from yolo_teach.data import EASY_SHAPES
from yolo_teach.experiment import export_weights, make_experiment, short_run
from yolo_teach.utils import setup

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # "model:assign" -> epochs of 2,000 shapes images
    "yolov1-nano:single": 40,
    "yolov2-nano:neighbours": 12,
    "yolov3-nano:single": 12,
    "yolov3-nano:neighbours": 12,
    "yolov4-nano:multi": 12,
    "yolox-improved-cpu-nano:simota": 8,  # 2,000 steps; its CBAMs are read in notebook 12
    "yolox-cpu-nano:simota": 4,  # 1,000 steps; notebook 13 fine-tunes it live
    "refinedet-lite-nano:basic": 16,  # 4,000 steps; the two-step widget of notebook 16
    "yolov5-cpu-nano:neighbours": 8,  # 2,000 steps at 256 px; the pretrained start of nb 17
}
DATA_OPTIONS = {"yolov1-nano:single": EASY_SHAPES}  # the others: the default scenes
# Network input other than the shapes' 128 px: the CT phantoms of notebook 17 are read at 256 px
IMG_SIZES = {"yolov5-cpu-nano:neighbours": 256}
# File names other than "<model>-<assign>": notebook 17's start is named by what it learnt from
FILE_NAMES = {"yolov5-cpu-nano:neighbours": "yolov5-cpu-nano-shapes"}


def train_one(run: str, epochs: int, out: Path, seed: int = 0, threads: int = 2) -> Path:
    """Train ``run`` (``"model:assign"``) for ``epochs`` and export its weights into ``out``."""
    model, assign = run.split(":")
    setup(seed, threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data_options = DATA_OPTIONS.get(run)
        img_size = IMG_SIZES.get(run, 128)
        exp = make_experiment(model, "shapes", assign=assign, seed=seed, epochs=epochs,
                              data_options=data_options, img_size=img_size, out_dir=tmp,
                              val_every=max(epochs // 10, 1), **short_run(model))
        history = exp.trainer.fit()
        name = FILE_NAMES.get(run, f"{model}-{assign}")
        path = export_weights(Path(tmp) / "best.pt", out / f"{name}.pt",
                              made_by="scripts/train_checkpoints.py", epochs=epochs,
                              seed=seed, threads=threads, recipe=short_run(model),
                              data_options=data_options, img_size=img_size)
    best = max((row.get("map_50", 0.0) for row in history), default=0.0)
    print(f"{run}: {epochs} epochs in {time.perf_counter() - started:.0f} s, best mAP50 "
          f"{best:.3f} -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), help="model:assign pairs")
    parser.add_argument("--epochs", type=int, default=None, help="override every run's epochs")
    parser.add_argument("--out", type=Path, default=paths.weights())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for run in args.runs:
        train_one(run, args.epochs or RUNS.get(run, 20), args.out, args.seed, args.threads)


if __name__ == "__main__":
    main()
