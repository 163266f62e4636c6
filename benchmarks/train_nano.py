"""Train each nano model on the default shapes data for fixed wall-clock budgets.

Prints one JSON line per run: ``model``, ``assign``, ``params``, ``train_seconds``,
``iterations``, ``images_per_second``, ``map_50``, ``map``. Only training time counts towards
the budget; validation (200 generated images the model never trained on) runs after it.

    python benchmarks/train_nano.py                                  # everything (~45 min)
    python benchmarks/train_nano.py --models yolov3-nano --assign neighbours --budgets 120

Results depend on the machine: the course quotes numbers measured on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time

from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.models.summary import count_parameters
from yolo_teach.utils import setup

RUNS = {  # model -> assignment rules worth comparing
    "yolov1-nano": ("single",),
    "yolov2-nano": ("single", "neighbours"),
    "yolov3-nano": ("single", "multi", "neighbours"),
}


def run(model: str, assign: str, budget: float, seed: int = 0, threads: int = 2,
        recipe: str = "short", **options):
    """Train one model for ``budget`` seconds and return its JSON-able summary."""
    setup(seed, threads)
    started = time.perf_counter()
    options = {**(short_run(model) if recipe == "short" else {}), **options}
    exp = make_experiment(model, "shapes", assign=assign, seed=seed, epochs=10_000,
                          time_limit=budget, val_every=0, progress=False, **options)
    last = exp.trainer.fit()[-1]
    return {
        "model": model, "assign": assign, "recipe": recipe,
        "params": count_parameters(exp.detector.model),
        "train_seconds": last["train_seconds"], "iterations": last["iteration"],
        "images_per_second": round(last["images_per_second"], 1),
        "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--assign", nargs="+", default=None,
                        help="only these rules (default: the ones listed for each model)")
    parser.add_argument("--budgets", nargs="+", type=float, default=[60, 120, 300])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", default="short", choices=("short", "default"),
                        help="short: yolo_teach.experiment.short_run(model) (light augmentation, "
                             "batch 8, lr 0.005 (YOLOv1: 0.0005), 4x class gain, EMA 0.995); "
                             "default: make_experiment's defaults")
    args = parser.parse_args(argv)
    results = []
    for model in args.models:
        for assign in RUNS[model]:
            if args.assign and assign not in args.assign:
                continue
            for budget in args.budgets:
                result = run(model, assign, budget, args.seed, args.threads, args.recipe)
                print(json.dumps(result), flush=True)
                results.append(result)
    return results


if __name__ == "__main__":
    main()
