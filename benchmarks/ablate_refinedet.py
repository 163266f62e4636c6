"""RefineDetLite's training and inference strategies on the CPU nano, in the shape of the paper's
Table 3 (rows c-o): the basic configuration, then soft-NMS, GIoU, each of the paper's three
strategies on top of them, and all of them (RefineDetLite++). Every trained row uses the same
steps, seed and recipe on the default shapes data (128 px); a row that only changes the NMS
evaluates the weights of the row it extends, as the paper's soft-NMS needs no training.

Prints one JSON line per row and seed: ``row``, ``paper_row``, ``changes``, ``seed``,
``params``, ``iterations``, ``train_seconds``, ``images_per_second``, ``map_50``, ``map``
(50-95), ``map_75``, ``nms`` and, for eq. 5, the ``class_weights`` used.

    python benchmarks/ablate_refinedet.py                                 # every row, seed 0
    python benchmarks/ablate_refinedet.py --rows basic "+soft-NMS" --steps 300
    python benchmarks/ablate_refinedet.py --out yolo_teach/assets/results/ablate_refinedet.jsonl

=====================  =================================================================  =====
row                    what it adds (RefineDetLite §4-5)                                   paper
=====================  =================================================================  =====
basic                  smooth L1, cross entropy, OHEM 1:3, λ = 1, greedy NMS (§5.1)        (c)
+soft-NMS              the basic weights, Gaussian soft-NMS at inference                   (d)
+GIoU                  GIoU box loss, soft-NMS                                             (h)
+GIoU+class weights    and eq. 5's weights from the training set's box counts              (i)
+GIoU+IoU-guided       and eq. 3-4's soft labels and sample weights                        (j)
+GIoU+multi-task       and eq. 6's learnable uncertainty weights                           (k)
all (++)               every strategy: the advanced configuration with eq. 5               (o)
=====================  =================================================================  =====
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.losses.refinedet_loss import GIoUBoxLoss, IoUGuided, class_weights
from yolo_teach.models.summary import count_parameters
from yolo_teach.nms import batched_nms, batched_soft_nms
from yolo_teach.utils import setup

MODEL = "refinedet-lite-nano"

# row -> (paper row, loss options, soft-NMS, eq. 5 class weights, row whose weights it reuses)
ROWS = {
    "basic": ("c", {}, False, False, None),
    "+soft-NMS": ("d", {}, True, False, "basic"),
    "+GIoU": ("h", {"box_loss": GIoUBoxLoss()}, True, False, None),
    "+GIoU+class weights": ("i", {"box_loss": GIoUBoxLoss()}, True, True, None),
    "+GIoU+IoU-guided": ("j", {"box_loss": GIoUBoxLoss(), "iou_guided": IoUGuided()}, True,
                         False, None),
    "+GIoU+multi-task": ("k", {"box_loss": GIoUBoxLoss(), "uncertainty": True}, True, False,
                         None),
    "all (++)": ("o", {"box_loss": GIoUBoxLoss(), "iou_guided": IoUGuided(),
                       "uncertainty": True}, True, True, None),
}


def box_counts(dataset, num_classes: int) -> list[int]:
    """Boxes per class in a :class:`~yolo_teach.data.BoxDataset` (eq. 5's M_i)."""
    labels = np.concatenate([np.asarray(lab, np.int64) for lab in dataset.labels])
    return np.bincount(labels, minlength=num_classes).tolist()


def evaluate(exp, soft: bool) -> dict:
    """COCO mAP of the experiment's EMA model on its validation set, with greedy or soft NMS."""
    exp.detector.nms = batched_soft_nms if soft else batched_nms
    cfg = exp.trainer.cfg
    exp.trainer.predict = exp.detector.predictor(cfg.conf_threshold, cfg.iou_threshold)
    return exp.trainer.evaluate()


def train(row: str, seed: int, steps: int, threads: int):
    """Train one row's model; returns the experiment and its summary fields."""
    _, options, _, weighted, _ = ROWS[row]
    setup(seed, threads)
    exp = make_experiment(MODEL, "shapes", img_size=128, seed=seed, epochs=10_000,
                          max_steps=steps, val_every=0, progress=False,
                          **{**short_run(MODEL), "loss_options": dict(options)})
    weights = None
    if weighted:  # eq. 5 needs the training set's counts, known once the data is made
        weights = class_weights(box_counts(exp.train_set, len(exp.class_names)))
        exp.detector.criterion.class_weights = torch.tensor(weights)
    last = exp.trainer.fit()[-1]
    fields = {"params": count_parameters(exp.detector.model), "iterations": last["iteration"],
              "train_seconds": last["train_seconds"],
              "images_per_second": round(last["images_per_second"], 1),
              "class_weights": [round(w, 3) for w in weights] if weights else None}
    return exp, fields


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per row")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines here")
    args = parser.parse_args(argv)
    records = []
    for seed in args.seeds:
        trained: dict = {}
        for row in args.rows:
            paper_row, options, soft, weighted, reuse = ROWS[row]
            started = time.perf_counter()
            if reuse is not None and reuse not in trained:
                trained[reuse] = train(reuse, seed, args.steps, args.threads)
            if reuse is None:
                trained[row] = train(row, seed, args.steps, args.threads)
            exp, fields = trained[reuse or row]
            metrics = evaluate(exp, soft)
            record = {"row": row, "paper_row": paper_row, "model": MODEL, "seed": seed,
                      "steps": args.steps,
                      "changes": sorted(options) + ["class_weights"] * weighted
                      + ["soft-NMS"] * soft,
                      "nms": "soft" if soft else "greedy", **fields,
                      "map_50": round(metrics["map_50"], 4), "map": round(metrics["map"], 4),
                      "map_75": round(metrics["map_75"], 4),
                      "wall_seconds": round(time.perf_counter() - started, 1)}
            records.append(record)
            line = json.dumps(record)
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a") as f:
                    f.write(line + "\n")
    return records


if __name__ == "__main__":
    main()
