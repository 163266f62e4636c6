"""Random detection scenes for metric tests: ground truth plus noisy, duplicated and false boxes."""

import numpy as np


def random_scene_set(rng, num_images, num_classes, size=400.0):
    """Lists of prediction and target dicts covering the cases COCOeval has rules for.

    Includes images without ground truth, images without predictions, empty images, classes
    that are never predicted, more than 100 detections in some images, tied scores, and boxes
    of every COCO area range.
    """
    preds, targets = [], []
    for _ in range(num_images):
        g = int(rng.integers(0, 12)) if rng.random() > 0.1 else 0
        xy = rng.uniform(0, size, (g, 2))
        wh = np.exp(rng.uniform(np.log(3), np.log(250), (g, 2)))  # small, medium and large
        gt = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(0, num_classes, g)
        hit = rng.random(g) < 0.8
        jitter = rng.normal(0, 0.12, (hit.sum(), 4)) * np.repeat(wh[hit], 2, 1)
        dt = gt[hit] + jitter
        dl = np.where(rng.random(hit.sum()) < 0.9, gl[hit], rng.integers(0, num_classes, hit.sum()))
        dup = rng.random(len(dt)) < 0.3  # duplicates of some detections
        dt = np.concatenate([dt, dt[dup] + rng.normal(0, 2, (dup.sum(), 4))])
        dl = np.concatenate([dl, dl[dup]])
        f = int(rng.integers(0, 8)) if rng.random() > 0.05 else 130  # sometimes > 100 detections
        fxy = rng.uniform(0, size, (f, 2))
        fwh = np.exp(rng.uniform(np.log(3), np.log(250), (f, 2)))
        dt = np.concatenate([dt, np.concatenate([fxy, fxy + fwh], 1)])
        dl = np.concatenate([dl, rng.integers(0, num_classes, f)])
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 0.5)
        scores = rng.random(len(dt))
        if rng.random() < 0.3:
            scores = scores.round(1)  # ties
        if rng.random() < 0.1:
            dt, dl, scores = dt[:0], dl[:0], scores[:0]
        preds.append({"boxes": dt, "scores": scores, "labels": dl})
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets
