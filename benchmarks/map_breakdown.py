"""Where a nano loses mAP: train it (or load a checkpoint), then split its mAP50 into
class-agnostic, per class and by object size, on the validation or the training scenes.

    python benchmarks/map_breakdown.py --model yolox-cpu-nano --steps 2000 --img-size 256
    python benchmarks/map_breakdown.py --weights yolov5-cpu-nano-shapes.pt --split train

Prints one JSON line: ``map50``, ``map`` (COCO, class-aware), ``agnostic_map50`` (every class
merged into one: what a perfect classifier on the same boxes would score), ``per_class_ap``
(AP .50:.95 per class), and per range of object side in pixels of the 128-px scene
(``AREA_RANGES``): ``ap50_NAME`` and ``agnostic_ap50_NAME`` with ``n_NAME`` ground truths.
The size split is COCOeval's rule for its small/medium/large rows
(:func:`yolo_teach.metrics.map_by_area`): ground truths of other sizes, and the detections that
hit them, are ignored. (Until session 11 the split scored each bucket's ground truth against
the predictions of similar size, which counted hits on neighbouring sizes as false positives;
the rows of results/map_breakdown.jsonl with ``map50_side_*`` keys were measured that way.)

A checkpoint (``--weights``: a shipped weights file name or a path) is scored on the split
``--split`` of the default shapes data with the data seed ``--seed``; without it the model is
trained for ``--steps`` first (seed ``--seed``, the short recipe).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from yolo_teach import paths
from yolo_teach.data.loader import DetectionDataset
from yolo_teach.data.sources import load_dataset
from yolo_teach.experiment import load_detector, make_experiment, short_run
from yolo_teach.metrics.coco import map_by_area, mean_average_precision
from yolo_teach.utils import setup

# object side s = sqrt(box area), in pixels of the 128-px scene. The scenes' boxes are whole
# pixels, so areas are integers; COCOeval counts a box whose area equals an edge in both ranges,
# and half-pixel² edges keep each box in one (side < 10, 10-16, 16-32, >= 32).
EDGES = (0, 10**2 - 0.5, 16**2 - 0.5, 32**2 - 0.5, 1e10)
AREA_RANGES = {name: (lo, hi) for name, lo, hi in
               zip(("side_lt10", "side_10_16", "side_16_32", "side_ge32"), EDGES, EDGES[1:])}


def _agnostic(rows: list[dict]) -> list[dict]:
    return [{**r, "labels": np.zeros_like(r["labels"])} for r in rows]


def breakdown(preds: list[dict], targets: list[dict], class_names: list[str]) -> dict:
    """The split of ``mean_average_precision(preds, targets)`` described in the module doc."""
    m = mean_average_precision(preds, targets)
    merged = mean_average_precision(_agnostic(preds), _agnostic(targets))
    out = {"map50": round(m["map_50"], 3), "map": round(m["map"], 3),
           "agnostic_map50": round(merged["map_50"], 3),
           "per_class_ap": {class_names[int(c)]: round(float(a), 3)
                            for c, a in zip(m["classes"], m["map_per_class"])}}
    by_size = map_by_area(preds, targets, AREA_RANGES)
    agnostic = map_by_area(_agnostic(preds), _agnostic(targets), AREA_RANGES)
    for name in AREA_RANGES:
        out[f"ap50_{name}"] = round(by_size[name]["map_50"], 3)
        out[f"agnostic_ap50_{name}"] = round(agnostic[name]["map_50"], 3)
        out[f"n_{name}"] = by_size[name]["num_gt"]
    return out


def _targets(data: DetectionDataset) -> list[dict]:
    return [{"boxes": data.source[i][1], "labels": data.source[i][2]} for i in range(len(data))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolox-cpu-nano")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default=None,
                        help="score this checkpoint instead of training (file name or path)")
    parser.add_argument("--split", default="val", choices=("val", "train"),
                        help="score on 200 validation scenes or the first 200 training scenes")
    args = parser.parse_args(argv)
    setup(args.seed, args.threads)
    if args.weights:
        path = paths.weights_file(args.weights)
        detector, meta = load_detector(path)
        source = load_dataset("shapes", args.split, n=200, seed=args.seed)
        data = DetectionDataset(source, meta["img_size"], cache=True)
        preds = detector.predict_dataset(data)
        result = {"weights": path.name, "model": meta["model"], "img_size": meta["img_size"]}
    else:
        exp = make_experiment(args.model, "shapes", img_size=args.img_size, seed=args.seed,
                              epochs=10_000, max_steps=args.steps, val_every=0, progress=False,
                              **short_run(args.model))
        exp.trainer.fit()
        source = exp.val_set if args.split == "val" else exp.train_set.subset(range(200))
        data = DetectionDataset(source, args.img_size, cache=True)
        preds = exp.trainer.predictions(data)
        result = {"model": args.model, "steps": args.steps, "img_size": args.img_size}
    result.update({"seed": args.seed, "split": args.split,
                   **breakdown(preds, _targets(data), list(source.class_names))})
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
