"""YOLOv4's bag of freebies on the nano YOLOv4, in the spirit of Table 4 of the YOLOv4 paper
(seed 001): every row trained with the same number of steps, one change from a common base.

Prints one JSON line per row: ``row``, ``changes`` (from the base), ``seed``, ``iterations``,
``train_seconds``, ``images_per_second``, ``map_50``, ``map``.

    python benchmarks/ablate_yolov4.py                        # every row, seed 0
    python benchmarks/ablate_yolov4.py --rows base "no IT" --steps 500 --seeds 0 1

The base is ``yolov4-nano`` as registered (yolov4.cfg's loss: IT, S and CIoU) with the short-run
recipe (light augmentation, cosine schedule) and the official anchors. Each row removes one of
the cfg's freebies or adds one more (YOLOv4 §3.3-3.4, Table 4's letters):

==============  =============================================================================
base            multi-anchor IT (IoU > 0.213), grid sensitivity S (1.2, 1.1, 1.05), CIoU x 0.07
no IT           one anchor per truth (the best)
no S            YOLOv2's coding (a centre reaches its cell's border only at t = +-infinity)
no CIoU         YOLOv3's sum-squared error on the coded box instead of CIoU
+M              Mosaic (with the affine jitter of the "full" augmentation)
+LS             class label smoothing (epsilon = 0.1)
+OA             optimized anchors (k-means on the training boxes)
YOLOv3 loss     no IT, no S and no CIoU together: YOLOv3's loss on YOLOv4's network
==============  =============================================================================

Not measured here: CmBN and dynamic mini-batch size (batch statistics tricks for large GPU
batches), genetic hyper-parameter search, DropBlock and SAT (see notebook 10); the cosine
schedule is already the short-run recipe's.
"""

from __future__ import annotations

import argparse
import json
import time

from yolo_teach.decode import YOLOv2BoxCoder
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.losses import BCEClassLoss, CodedBoxSSE
from yolo_teach.utils import setup

MODEL = "yolov4-nano"
V3_LOSS = {"coder": YOLOv2BoxCoder(), "box_loss": CodedBoxSSE(), "box_gain": 1.0}

BASE = {"assign": "multi", "anchors": "official", "augment": "light", "loss": {}}
ROWS = {
    "base": {},
    "no IT": {"assign": "single"},
    "no S": {"loss": {"coder": YOLOv2BoxCoder()}},
    "no CIoU": {"loss": {"box_loss": CodedBoxSSE(), "box_gain": 1.0}},
    "+M": {"augment": "full"},
    "+LS": {"loss": {"class_loss": BCEClassLoss(label_smoothing=0.1)}},
    "+OA": {"anchors": "kmeans"},
    "YOLOv3 loss": {"assign": "single", "loss": V3_LOSS},
}


def row_options(row: str) -> dict:
    """The base with the changes of ``row`` (loss options merged, not replaced)."""
    changes = ROWS[row]
    return {**BASE, **changes, "loss": {**BASE["loss"], **changes.get("loss", {})}}


def run(row: str, steps: int = 1500, seed: int = 0, threads: int = 2) -> dict:
    """Train the nano YOLOv4 with one row's freebies for ``steps`` steps; its JSON summary."""
    setup(seed, threads)
    started = time.perf_counter()
    options = row_options(row)
    recipe = {**short_run(MODEL), "augment": options["augment"]}
    exp = make_experiment(MODEL, "shapes", assign=options["assign"], anchors=options["anchors"],
                          seed=seed, epochs=10_000, max_steps=steps, val_every=0,
                          progress=False, loss_options=options["loss"], **recipe)
    last = exp.trainer.fit()[-1]
    return {
        "row": row, "changes": {k: v if k != "loss" else sorted(v)
                                for k, v in ROWS[row].items()},
        "seed": seed, "iterations": last["iteration"],
        "train_seconds": last["train_seconds"],
        "images_per_second": round(last["images_per_second"], 1),
        "map_50": round(last["map_50"], 4), "map": round(last["map"], 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    results = []
    for row in args.rows:
        for seed in args.seeds:
            result = run(row, args.steps, seed, args.threads)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
