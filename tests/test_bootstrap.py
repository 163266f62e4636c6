"""The helpers of the CT-lesion case study (seed 000, notebook 17): bootstrap intervals of mAP
over validation images and the per-class table shaped like the paper's Table 2."""

import numpy as np
import pytest

from yolo_teach.metrics import bootstrap_map, class_table, mean_average_precision, resampled_ap


def scenes(n: int = 40, seed: int = 0, noise: float = 6.0):
    """``n`` images with 1-3 boxes of 2 classes and noisy, sometimes wrong, detections."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n):
        m = int(rng.integers(1, 4))
        xy = rng.uniform(0, 200, (m, 2))
        wh = rng.uniform(10, 40, (m, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        labels = rng.integers(0, 2, m)
        jitter = boxes + rng.normal(0, noise, boxes.shape)
        flipped = np.where(rng.random(m) < 0.2, 1 - labels, labels)  # 20 % wrong class
        preds.append({"boxes": jitter, "scores": rng.uniform(0.1, 1.0, m), "labels": flipped})
        targets.append({"boxes": boxes, "labels": labels})
    return preds, targets


def test_the_whole_set_gives_cocos_ap():
    preds, targets = scenes()
    labels, full, samples = resampled_ap(preds, targets, n=0)
    coco = mean_average_precision(preds, targets)
    assert labels == [0, 1] and samples.shape == (0, 2, 10)
    assert full[:, 0].mean() == pytest.approx(coco["map_50"], abs=1e-12)
    assert full.mean() == pytest.approx(coco["map"], abs=1e-12)
    np.testing.assert_allclose(full.mean(axis=1), coco["map_per_class"], atol=1e-12)


def test_a_resample_is_the_ap_of_the_images_drawn():
    # resample 0 of seed 3 draws these image indices (NumPy's default_rng(3).integers)
    preds, targets = scenes(n=12)
    drawn = np.random.default_rng(3).integers(0, 12, 12)
    _, _, samples = resampled_ap(preds, targets, n=1, seed=3)
    coco = mean_average_precision([preds[i] for i in drawn], [targets[i] for i in drawn])
    assert samples[0, :, 0].mean() == pytest.approx(coco["map_50"], abs=1e-12)


def test_interval_brackets_the_estimate_and_is_seeded():
    preds, targets = scenes(n=60)
    a = bootstrap_map(preds, targets, n=200, seed=0)
    b = bootstrap_map(preds, targets, n=200, seed=0)
    full = mean_average_precision(preds, targets)["map_50"]
    assert a == b
    assert a.low < full < a.high and a.low < a.mean < a.high
    assert 0.0 < a.high - a.low < 0.5
    wide = bootstrap_map(preds, targets, n=200, seed=0, level=0.99)
    assert wide.low <= a.low and wide.high >= a.high
    strict = bootstrap_map(preds, targets, n=50, seed=0, iou="50:95")
    assert strict.mean < a.mean  # stricter IoU thresholds
    with pytest.raises(ValueError, match="iou"):
        bootstrap_map(preds, targets, n=1, iou="75")


def test_identical_images_leave_no_spread_and_perfect_detections_score_one():
    preds, targets = scenes(n=1)
    same = bootstrap_map(preds * 20, targets * 20, n=50, seed=1)
    one = mean_average_precision(preds, targets)["map_50"]
    assert same.low == pytest.approx(same.high) == pytest.approx(one)
    _, targets = scenes(n=30)
    perfect = [{"boxes": t["boxes"], "scores": np.ones(len(t["labels"])), "labels": t["labels"]}
               for t in targets]
    assert tuple(bootstrap_map(perfect, targets, n=30)) == (1.0, 1.0, 1.0)


def test_class_table_counts_images_and_instances():
    preds, targets = scenes(n=30)
    rows = class_table(preds, targets, ["lung", "liver", "kidney"], n=100, seed=0)
    assert [r["class"] for r in rows] == ["lung", "liver", "kidney", "all"]
    for k, row in enumerate(rows[:2]):
        assert row["instances"] == sum(int((t["labels"] == k).sum()) for t in targets)
        assert row["images"] == sum(bool((t["labels"] == k).any()) for t in targets)
        assert row["mAP50_low"] <= row["mAP50"] <= row["mAP50_high"]
        assert 0 <= row["P"] <= 1 and 0 <= row["R"] <= 1
    assert rows[2]["instances"] == 0 and np.isnan(rows[2]["mAP50_low"])  # no kidney here
    every = rows[-1]
    coco = mean_average_precision(preds, targets)
    assert every["images"] == 30 and every["instances"] == rows[0]["instances"] + \
        rows[1]["instances"]
    assert every["mAP50"] == pytest.approx(coco["map_50"])
    assert every["mAP50-95"] == pytest.approx(coco["map"])
    assert every["mAP50_low"] < every["mAP50"] < every["mAP50_high"]
