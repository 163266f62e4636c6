"""What a notebook's live-training cell reaches: a nano on the one-shape scenes for a few steps.

The live cells of notebooks 04, 05, 11 and 13 train on ``ONE_SHAPE`` (400 training and 100
validation images, one large circle, square or triangle each) with the model's short-run recipe
and should show mAP50 >= 0.3 within about 20 s on two cores. This script measures the steps that
takes, one JSON line per run (``model``, ``steps``, ``seed``, the overrides, ``weights``,
``train_seconds``, ``map_50``):

    python benchmarks/live_cell.py --model yolov5-cpu-nano --steps 180 --seeds 0 1 2
    python benchmarks/live_cell.py --model yolov5-cpu-nano --steps 180 \
        --options '{"lr": 0.01, "warmup_iters": 15}'
    python benchmarks/live_cell.py --model yolov5-cpu-nano --steps 120 \
        --weights yolov5-cpu-nano-shapes.pt        # fine-tune a shipped checkpoint

``--options`` are :func:`~yolo_teach.experiment.make_experiment` arguments that replace the
recipe's (``lr``, ``warmup_iters``, ``optimizer``, ``class_gain_scale``, ``loss_options``...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from yolo_teach import paths
from yolo_teach.data import ONE_SHAPE
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.utils import setup


def live_run(model: str, steps: int, seed: int = 0, threads: int = 1,
             weights: str | None = None, **options) -> dict:
    """Train ``model`` for ``steps`` steps of the live cells' data and recipe; its JSON row."""
    setup(seed, threads)
    start = paths.weights_file(weights) if weights is not None else None
    exp = make_experiment(model, "shapes", n_train=400, n_val=100, epochs=1000, max_steps=steps,
                          val_every=0, seed=seed, data_options=ONE_SHAPE, progress=False,
                          weights=start, **{**short_run(model), **options})
    last = exp.trainer.fit()[-1]
    return {"model": model, "steps": last["iteration"], "seed": seed, "threads": threads,
            "options": options, "weights": Path(start).name if start else None,
            "train_seconds": round(last["train_seconds"], 1), "map_50": round(last["map_50"], 3)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolov5-cpu-nano")
    parser.add_argument("--steps", type=int, default=180)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default=None,
                        help="start from this checkpoint (a shipped weights file name or a path)")
    parser.add_argument("--options", type=json.loads, default={},
                        help="make_experiment arguments to override, as JSON")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        row = live_run(args.model, args.steps, seed, args.threads, args.weights, **args.options)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
