"""Simulated detectors: ground truth plus noisy, duplicated and false boxes.

For learning and testing evaluation without training anything: a "detector" that finds most
objects with some localisation noise, sometimes twice, sometimes with the wrong class, and adds
false alarms. Everything is drawn from the ``rng`` you pass, so a seed fixes the scene.
"""

from __future__ import annotations

import numpy as np


def noisy_detections(gt_boxes, gt_labels, rng, num_classes, size=400.0, recall=0.8,
                     jitter=0.12, duplicate_rate=0.3, false_alarms=4, label_noise=0.1):
    """Detections for one image: each ground truth found with probability ``recall``.

    Found boxes move by ``jitter`` times their size (Gaussian), a share ``duplicate_rate`` of
    them is reported twice (what NMS must remove), a share ``label_noise`` gets a wrong class,
    and about ``false_alarms`` random boxes are added. Returns a prediction dict
    (``boxes`` xyxy, ``scores``, ``labels``).
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    wh = gt_boxes[:, 2:] - gt_boxes[:, :2]
    hit = rng.random(len(gt_boxes)) < recall
    dt = gt_boxes[hit] + rng.normal(0, jitter, (hit.sum(), 4)) * np.repeat(wh[hit], 2, 1)
    wrong = rng.random(hit.sum()) < label_noise
    dl = np.where(wrong, rng.integers(0, num_classes, hit.sum()), gt_labels[hit])
    dup = rng.random(len(dt)) < duplicate_rate
    dt = np.concatenate([dt, dt[dup] + rng.normal(0, 2, (dup.sum(), 4))])
    dl = np.concatenate([dl, dl[dup]])
    f = int(rng.poisson(false_alarms))
    fxy = rng.uniform(0, size, (f, 2))
    fwh = np.exp(rng.uniform(np.log(3), np.log(size * 0.6), (f, 2)))
    dt = np.concatenate([dt, np.concatenate([fxy, fxy + fwh], 1)])
    dl = np.concatenate([dl, rng.integers(0, num_classes, f)])
    dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 0.5)
    scores = np.concatenate([rng.uniform(0.3, 1.0, hit.sum() + dup.sum()), rng.uniform(0, 0.6, f)])
    return {"boxes": dt, "scores": scores, "labels": dl}


def random_scene_set(rng, num_images, num_classes, size=400.0):
    """Lists of prediction and target dicts covering every case COCOeval has a rule for.

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
        many = rng.random() < 0.05  # sometimes more than 100 detections in one image
        pred = noisy_detections(gt, gl, rng, num_classes, size, false_alarms=130 if many else 4)
        if rng.random() < 0.3:
            pred["scores"] = pred["scores"].round(1)  # tied scores
        if rng.random() < 0.1:
            pred = {k: v[:0] for k, v in pred.items()}  # an image with no detections
        preds.append(pred)
        targets.append({"boxes": gt, "labels": gl})
    return preds, targets
