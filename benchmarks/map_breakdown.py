"""Where a nano loses mAP: train it, then split its mAP50 into class-agnostic, per class and by
object size.

    python benchmarks/map_breakdown.py --model yolox-cpu-nano --steps 2000 --img-size 256

Prints one JSON line: ``map50``, ``map`` (COCO, class-aware), ``agnostic_map50`` (every class
merged into one: what a perfect classifier on the same boxes would score), ``per_class_ap``
(AP .50:.95 per class) and ``map50_side_LO_HI`` / ``n_side_LO_HI`` for object sides in
``[LO, HI)`` px of the 128-px scene. The size split is rough: the ground truth of one bucket
is scored against the predictions of similar size (0.7 LO to 1.4 HI), so hits on objects of a
neighbouring bucket count as false positives and every bucket reads lower than the whole.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from yolo_teach.experiment import make_experiment, short_run
from yolo_teach.metrics.coco import mean_average_precision
from yolo_teach.utils import setup

SIDE_BUCKETS = ((0, 16), (16, 32), (32, 10_000))


def _side(boxes: np.ndarray) -> np.ndarray:
    return np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))


def breakdown(preds: list[dict], targets: list[dict], class_names: list[str]) -> dict:
    """The split of ``mean_average_precision(preds, targets)`` described in the module doc."""
    m = mean_average_precision(preds, targets)
    merged = mean_average_precision(
        [{**p, "labels": np.zeros_like(p["labels"])} for p in preds],
        [{**t, "labels": np.zeros_like(t["labels"])} for t in targets])
    out = {"map50": round(m["map_50"], 3), "map": round(m["map"], 3),
           "agnostic_map50": round(merged["map_50"], 3),
           "per_class_ap": {class_names[int(c)]: round(float(a), 3)
                            for c, a in zip(m["classes"], m["map_per_class"])}}
    for lo, hi in SIDE_BUCKETS:
        keep_t = [(_side(t["boxes"]) >= lo) & (_side(t["boxes"]) < hi) for t in targets]
        keep_p = [(_side(p["boxes"]) >= 0.7 * lo) & (_side(p["boxes"]) < 1.4 * hi) for p in preds]
        bucket = mean_average_precision([{k: v[keep] for k, v in p.items()}
                                         for p, keep in zip(preds, keep_p)],
                                        [{k: v[keep] for k, v in t.items()}
                                         for t, keep in zip(targets, keep_t)])
        out[f"map50_side_{lo}_{hi}"] = round(bucket["map_50"], 3)
        out[f"n_side_{lo}_{hi}"] = int(sum(keep.sum() for keep in keep_t))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolox-cpu-nano")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup(args.seed, args.threads)
    exp = make_experiment(args.model, "shapes", img_size=args.img_size, seed=args.seed,
                          epochs=10_000, max_steps=args.steps, val_every=0, progress=False,
                          **short_run(args.model))
    exp.trainer.fit()
    data = exp.trainer.val_data
    targets = [{"boxes": data.source[i][1], "labels": data.source[i][2]} for i in range(len(data))]
    result = {"model": args.model, "steps": args.steps, "img_size": args.img_size,
              "seed": args.seed,
              **breakdown(exp.trainer.predictions(data), targets, exp.val_set.class_names)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
