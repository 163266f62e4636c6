"""How fast is our COCO mAP compared with pycocotools on the same detections?

Times ``mean_average_precision`` against pycocotools' evaluate + accumulate + summarize (the COCO
objects are built before the clock starts, so pycocotools is not charged for our conversion).
Prints one JSON line per scene set and a summary line. Run: ``python benchmarks/map_speed.py``.
"""

import contextlib
import io
import json
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolo_teach.metrics import COCO_STATS_KEYS, mean_average_precision, to_coco
from yolo_teach.metrics.simulate import random_scene_set


def pycocotools_stats(preds, targets):
    dataset, results = to_coco(preds, targets)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        start = time.perf_counter()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, time.perf_counter() - start


def main(seeds=range(5)):
    ratios = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        n, k = int(rng.integers(60, 501)), int(rng.integers(1, 21))
        preds, targets = random_scene_set(rng, n, k)
        start = time.perf_counter()
        ours = mean_average_precision(preds, targets)
        t_ours = time.perf_counter() - start
        stats, t_ref = pycocotools_stats(preds, targets)
        diff = max(abs(ours[key] - s) for key, s in zip(COCO_STATS_KEYS, stats))
        ratios.append(t_ref / t_ours)
        print(json.dumps({"images": n, "classes": k, "ours_s": round(t_ours, 3),
                          "pycocotools_s": round(t_ref, 3), "speedup": round(t_ref / t_ours, 2),
                          "max_abs_diff": diff}))
    print(json.dumps({"median_speedup": round(float(np.median(ratios)), 2)}))


if __name__ == "__main__":
    main()
