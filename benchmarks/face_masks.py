"""Class imbalance on the face masks of seed 001: YOLOv4-tiny (nano) with and without remedies.

Seed 001 trains YOLOv4 on the Kaggle face masks (3232 ``mask``, 717 ``no_mask``, 123 worn
incorrectly) and finds the rare class weakest (AP 61.9 % against 90.1 %), naming the imbalance
as the cause. This benchmark trains ``yolov4-tiny-nano`` on our generated face masks (same skew,
:mod:`yolo_teach.data.face_masks`) for a fixed number of steps, once per variant and seed:

============  ===========================================================================
variant       what changes
============  ===========================================================================
baseline      nothing: the short-run recipe of the model (notebook 18)
weights       class weights in the loss (``YOLOLoss(class_weights=...)``):
              :func:`~yolo_teach.losses.yolo_loss.inverse_frequency_weights` of the training
              set's box counts, power 1/2, mean 1 over the boxes
oversampling  LVIS's repeat-factor sampling of the training images
              (:func:`~yolo_teach.data.sampling.repeat_factor_sample`), threshold t = 1
both          the two together
============  ===========================================================================

Both remedies take the square root of an inverse frequency (boxes for the weights, images for the
sampling), so neither is the extreme inverse frequency. Every row is evaluated on the 200
validation images of its seed (the same for every variant): COCO mAP50 and mAP50-95, and
Darknet's report at conf 0.25 (seed 001's Fig. 12): per-class AP50, TP, FP, precision, recall,
F1 and the average IoU.

Appends one JSON line per (variant, seed) to ``--out`` and skips the rows already there, so an
interrupted run continues where it stopped. The baseline of seed 0 (``--export-seed``) is also
exported as the small weights file notebook 18 loads (float16, ``--weights-out``); when that
file is missing, its run is repeated to write it, and its row is not appended twice.

    python benchmarks/face_masks.py                        # the shipped rows: 3 variants x 3 seeds
    python benchmarks/face_masks.py --variants both        # the two remedies together (not run)

On a machine shared with other jobs, start it with ``OMP_WAIT_POLICY=PASSIVE``
(benchmarks/README.md: busy-waiting OpenMP threads made a step several times slower here); the
results do not change.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from yolo_teach import paths
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.data.sampling import box_counts, image_counts, repeat_factor_sample
from yolo_teach.data.sources import load_dataset
from yolo_teach.experiment import export_weights, make_experiment, short_run
from yolo_teach.losses.yolo_loss import inverse_frequency_weights
from yolo_teach.metrics import mean_average_precision
from yolo_teach.metrics.report import detection_report
from yolo_teach.utils import setup

MODEL = "yolov4-tiny-nano"
VARIANTS = {"baseline": (False, False), "weights": (True, False),
            "oversampling": (False, True), "both": (True, True)}  # (class weights, sampling)
WEIGHT_POWER, WEIGHT_MEAN = 0.5, "boxes"  # inverse_frequency_weights
REPEAT_THRESHOLD = 1.0  # repeat_factor_sample: r_c = max(1, sqrt(1 / f_c))
WEIGHTS_FILE = "yolov4-tiny-nano-face-masks.pt"
DEFAULTS = {"img_size": 256, "steps": 600, "n_train": 800, "n_val": 200, "assign": None}


def done(path: Path) -> set[tuple[str, int]]:
    """The (variant, seed) pairs already in ``path``."""
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["variant"], r["seed"]) for r in rows}


def run(variant: str, seed: int, args, out_dir: Path | None = None) -> dict:
    """Train one variant with one seed and evaluate it; the JSON row."""
    weighted, oversampled = VARIANTS[variant]
    setup(seed, args.threads)
    started = time.perf_counter()
    loss_options, counts = {}, None
    if weighted:  # the weights need the training set's counts: the same images the run makes
        train = load_dataset("face_masks", "train", n=args.n_train, seed=seed)
        counts = box_counts(train).tolist()
        loss_options["class_weights"] = inverse_frequency_weights(counts, WEIGHT_POWER,
                                                                  WEIGHT_MEAN)
    exp = make_experiment(MODEL, "face_masks", assign=args.assign, img_size=args.img_size,
                          n_train=args.n_train, n_val=args.n_val, seed=seed, epochs=10_000,
                          max_steps=args.steps, val_every=0, progress=False, out_dir=out_dir,
                          loss_options=loss_options, **short_run(MODEL))
    shown = exp.train_set
    if oversampled:  # the same trainer, fed the repeated images
        shown = repeat_factor_sample(exp.train_set, REPEAT_THRESHOLD, seed=seed)
        old = exp.trainer.train_data
        exp.trainer.train_data = DetectionDataset(shown, old.img_size, augment=old.augment,
                                                  cache=True, seed=seed)
    val, exp.trainer.val_data = exp.trainer.val_data, None  # evaluated once, below
    last = exp.trainer.fit()[-1]
    preds = exp.trainer.predictions(val)  # conf >= 0.001: AP over every detection
    targets = exp.val_set.targets()
    coco = mean_average_precision(preds, targets)
    report = detection_report(preds, targets, exp.class_names, conf_threshold=0.25)
    tp, fp, gt = report.tp, report.fp, report.num_gt
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(gt, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    row = {
        "variant": variant, "seed": seed, "model": MODEL, "rule": exp.detector.rule,
        "img_size": args.img_size, "n_train": args.n_train, "n_val": args.n_val,
        "steps": last["iteration"], "batch_size": exp.trainer.cfg.batch_size,
        "class_names": exp.class_names,
        "class_weights": [round(w, 4) for w in loss_options.get("class_weights", ())] or None,
        "train_boxes": counts or box_counts(exp.train_set).tolist(),
        "shown_images": len(shown), "shown_images_per_class": image_counts(shown).tolist(),
        "map_50": round(coco["map_50"], 4), "map": round(coco["map"], 4),
        "ap50": [round(float(a), 4) for a in report.ap],
        "tp": tp.tolist(), "fp": fp.tolist(), "num_gt": gt.tolist(),
        "precision": [round(float(p), 4) for p in precision],
        "recall": [round(float(r), 4) for r in recall],
        "f1": [round(float(f), 4) for f in f1],
        "precision_all": round(report.precision, 4), "recall_all": round(report.recall, 4),
        "f1_all": round(report.f1, 4), "average_iou": round(report.average_iou, 4),
        "conf_threshold": report.conf_threshold,
        "train_seconds": round(exp.trainer.train_seconds, 1),
        "images_per_second": round(last["iteration"] * exp.trainer.cfg.batch_size
                                   / exp.trainer.train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "threads": args.threads,
        "load_average": round(os.getloadavg()[0], 2),  # the machine was shared when > threads
    }
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["baseline", "weights", "oversampling"],
                        choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    parser.add_argument("--img-size", type=int, default=DEFAULTS["img_size"])
    parser.add_argument("--n-train", type=int, default=DEFAULTS["n_train"])
    parser.add_argument("--n-val", type=int, default=DEFAULTS["n_val"])
    parser.add_argument("--assign", default=DEFAULTS["assign"],
                        help="assignment rule (default: the model's, 'single')")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=paths.RESULTS / "face_masks.jsonl")
    parser.add_argument("--weights-out", type=Path, default=paths.WEIGHTS / WEIGHTS_FILE,
                        help="where the baseline of --export-seed is exported ('' for nowhere)")
    parser.add_argument("--export-seed", type=int, default=0,
                        help="its baseline is exported (re-run if the file is missing)")
    args = parser.parse_args(argv)
    have, rows = done(args.out), []
    export_to = args.weights_out if str(args.weights_out) else None
    for seed in args.seeds:
        for variant in args.variants:
            export = export_to is not None and variant == "baseline" and seed == args.export_seed
            if (variant, seed) in have and not (export and not export_to.exists()):
                print(f"skip {variant} seed {seed}: already in {args.out}", flush=True)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                row = run(variant, seed, args, out_dir=Path(tmp) if export else None)
                if export:
                    export_weights(Path(tmp) / "last.pt", export_to, seed=seed,
                                   made_by="benchmarks/face_masks.py", steps=row["steps"],
                                   batch_size=row["batch_size"])
                    print(f"weights: {export_to} ({export_to.stat().st_size / 1e6:.2f} MB)",
                          flush=True)
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if (variant, seed) not in have:
                with args.out.open("a") as f:
                    f.write(line + "\n")
    return rows


if __name__ == "__main__":
    main()
