"""The nano YOLOv3 trained with each box loss of the IoU family, at equal steps and seeds.

The DIoU paper (Zheng et al. 2020, AAAI) first compares the losses in a simulation (notebook 09,
:mod:`yolo_teach.losses.regression_sim`) and then inside detectors (YOLOv3 on PASCAL VOC, its
Table 1: IoU → GIoU → DIoU → CIoU, each a little better). This script is the second half in
small: the nano YOLOv3 with YOLOv5's neighbour-cell rule (``assign="neighbours"``) and the
short-run recipe (:func:`yolo_teach.experiment.short_run`), trained on the default shapes data
with one box loss swapped at a time; everything else (data, seed, initial weights, gains,
objectness target IoU, schedule) stays the same.

Box losses (``loss_options={"box_loss": ...}``):

========  ==========================================================================
``SSE``   :class:`~yolo_teach.losses.CodedBoxSSE`: YOLOv3's sum-squared error on the coded box
``IoU``   ``1 - IoU`` (:func:`yolo_teach.losses.regression_sim.iou_loss`)
``GIoU``  :func:`~yolo_teach.boxes.generalized_box_iou_loss`
``DIoU``  :func:`~yolo_teach.boxes.distance_box_iou_loss`
``CIoU``  :func:`~yolo_teach.boxes.complete_box_iou_loss` (the neighbours rule's own)
========  ==========================================================================

The box gain stays the rule's (YOLOv5's 0.05) for every loss, the SSE baseline included: it is
not tuned for any of them.

Prints one JSON line per run: ``model``, ``assign``, ``box_loss``, ``seed``, ``threads``,
``iterations`` (optimizer steps), ``train_seconds``, ``images_per_second``, ``map_50``, ``map``,
``wall_seconds``; ``--out`` also appends each line to a ``.jsonl`` file.

    python benchmarks/box_losses.py --out yolo_teach/assets/results/box_losses.jsonl   # ~15 min, quiet
    python benchmarks/box_losses.py --steps 1000 --threads 1 --out ...          # a busy machine
    python benchmarks/box_losses.py --losses IoU CIoU --steps 500 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from yolo_teach.boxes import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.losses import CodedBoxSSE, IoUBoxLoss
from yolo_teach.losses.regression_sim import iou_loss
from yolo_teach.utils import setup

MODEL = "yolov3-nano"
ASSIGN = "neighbours"
BOX_LOSSES = {
    "SSE": CodedBoxSSE(),
    "IoU": IoUBoxLoss(iou_loss),
    "GIoU": IoUBoxLoss(generalized_box_iou_loss),
    "DIoU": IoUBoxLoss(distance_box_iou_loss),
    "CIoU": IoUBoxLoss(complete_box_iou_loss),
}


def run(box_loss: str, steps: int = 1500, seed: int = 0, threads: int = 2) -> dict:
    """Train the nano YOLOv3 with ``box_loss`` (a key of :data:`BOX_LOSSES`) for ``steps``
    optimizer steps and return its JSON-able summary."""
    setup(seed, threads)
    started = time.perf_counter()
    exp = make_experiment(MODEL, "shapes", assign=ASSIGN, seed=seed, epochs=10_000,
                          max_steps=steps, val_every=0, progress=False,
                          loss_options={"box_loss": BOX_LOSSES[box_loss]}, **short_run(MODEL))
    last = exp.trainer.fit()[-1]
    return {
        "model": MODEL, "assign": ASSIGN, "box_loss": box_loss, "seed": seed,
        "threads": threads, "iterations": last["iteration"], "train_seconds": last["train_seconds"],
        "images_per_second": round(last["images_per_second"], 1),
        "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--losses", nargs="+", default=list(BOX_LOSSES), choices=list(BOX_LOSSES))
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps per run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="append each JSON line to this .jsonl file as well")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        for name in args.losses:
            result = run(name, args.steps, seed, args.threads)
            line = json.dumps(result)
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(line + "\n")
            results.append(result)
    return results


if __name__ == "__main__":
    main()
