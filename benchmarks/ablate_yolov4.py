"""YOLOv4's bag of freebies, one at a time, on the nano YOLOv4: a mini ablation shaped like
Table 4 of the YOLOv4 paper (seed 001), every row trained with the same number of steps.

Prints one JSON line per row: ``row``, ``changes`` (from the baseline), ``seed``, ``iterations``,
``train_seconds``, ``images_per_second``, ``map_50``, ``map``.

    python benchmarks/ablate_yolov4.py                        # every row, seed 0 (~20 min)
    python benchmarks/ablate_yolov4.py --rows baseline +S --steps 500 --seeds 0 1

The rows (YOLOv4 §3.4 / Table 4's letters):

==========  ===================================================================================
baseline    YOLOv3's loss on the YOLOv4 nano: best anchor only, σ/exp coding, coded SSE box
            loss, official anchors, light augmentation, step schedule
+S          eliminate grid sensitivity (§3.3: ``scale_x_y`` 1.2, 1.1, 1.05)
+M          Mosaic (with the affine jitter of the "full" augmentation)
+IT         IoU threshold: every anchor with IoU(truth, anchor) > 0.213 learns the truth
+LS         class label smoothing (ε = 0.1)
+CA         cosine annealing instead of the step schedule
+OA         optimized anchors (k-means on the training boxes)
+GIoU       GIoU box loss (yolov4.cfg's ``iou_normalizer`` 0.07 as its gain)
+DIoU       DIoU box loss
+CIoU       CIoU box loss
all         every row above except GIoU and DIoU: yolov4-nano's own rule ("multi") with
            Mosaic, label smoothing, cosine schedule and k-means anchors
==========  ===================================================================================

Not measured here: CmBN and dynamic mini-batch size (batch statistics tricks for large GPU
batches), genetic hyper-parameter search, DropBlock and SAT (see notebook 10).
"""

from __future__ import annotations

import argparse
import json
import time

from yolo_teach.boxes import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)
from yolo_teach.decode import GridSensitiveBoxCoder, YOLOv2BoxCoder
from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.losses import BCEClassLoss, CodedBoxSSE, IoUBoxLoss
from yolo_teach.utils import setup

MODEL = "yolov4-nano"
IOU_GAIN = 0.07  # yolov4.cfg iou_normalizer
SCALE_X_Y = [GridSensitiveBoxCoder(a) for a in (1.2, 1.1, 1.05)]  # strides 8, 16, 32

# YOLOv3's loss and recipe, on which each row changes one thing
BASELINE = {
    "assign": "single", "anchors": "official", "augment": "light", "schedule": "steps",
    "loss": {"coder": YOLOv2BoxCoder(), "box_loss": CodedBoxSSE(), "box_gain": 1.0,
             "class_loss": BCEClassLoss()},
}
ROWS = {
    "baseline": {},
    "+S": {"loss": {"coder": SCALE_X_Y}},
    "+M": {"augment": "full"},
    "+IT": {"assign": "multi"},
    "+LS": {"loss": {"class_loss": BCEClassLoss(label_smoothing=0.1)}},
    "+CA": {"schedule": "cosine"},
    "+OA": {"anchors": "kmeans"},
    "+GIoU": {"loss": {"box_loss": IoUBoxLoss(generalized_box_iou_loss), "box_gain": IOU_GAIN}},
    "+DIoU": {"loss": {"box_loss": IoUBoxLoss(distance_box_iou_loss), "box_gain": IOU_GAIN}},
    "+CIoU": {"loss": {"box_loss": IoUBoxLoss(complete_box_iou_loss), "box_gain": IOU_GAIN}},
    # yolov4-nano's own rule brings S, IT and CIoU (yolov4.cfg); the row adds the rest
    "all": {"own_rule": True, "assign": "multi", "augment": "full", "schedule": "cosine",
            "anchors": "kmeans", "loss": {"class_loss": BCEClassLoss(label_smoothing=0.1)}},
}


def row_options(row: str) -> dict:
    """The baseline with the changes of ``row`` (loss options merged, not replaced)."""
    changes = ROWS[row]
    base_loss = {} if changes.get("own_rule") else BASELINE["loss"]
    return {**BASELINE, **changes, "loss": {**base_loss, **changes.get("loss", {})}}


def run(row: str, steps: int = 1500, seed: int = 0, threads: int = 2) -> dict:
    """Train the nano YOLOv4 with one row's freebies for ``steps`` steps; its JSON summary."""
    setup(seed, threads)
    started = time.perf_counter()
    options = row_options(row)
    recipe = {**short_run(MODEL), "augment": options["augment"]}
    exp = make_experiment(MODEL, "shapes", assign=options["assign"], anchors=options["anchors"],
                          seed=seed, epochs=10_000, max_steps=steps, val_every=0,
                          progress=False, schedule=options["schedule"],
                          loss_options=options["loss"], **recipe)
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
