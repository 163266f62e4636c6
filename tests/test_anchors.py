import numpy as np
import pytest

from yolo_teach.anchors import (
    anchor_fitness,
    anchors_to_grid,
    anchors_to_pixels,
    autoanchor,
    best_possible_recall,
    kmeans_anchors,
    ratio_recall,
    wh_iou,
)
from yolo_teach.models.yolov2 import ANCHORS as V2_ANCHORS
from yolo_teach.models.yolov3 import ANCHORS as V3_ANCHORS
from yolo_teach.models.yolov3 import TINY_ANCHORS as V3_TINY_ANCHORS

# the official anchors, as each model file declares them
YOLOV2_VOC_ANCHORS = V2_ANCHORS.array()  # cells of stride 32
YOLOV3_ANCHORS = V3_ANCHORS.array()  # pixels at 416
YOLOV3_TINY_ANCHORS = V3_TINY_ANCHORS.array()

CENTRES = np.array([[8, 10], [24, 48], [64, 32], [120, 130], [280, 200]], np.float64)


def mixture(seed=0, n=2000, noise=0.1):
    """``n`` box sizes around 5 well-separated centres, log-normal multiplicative noise."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(CENTRES), n)
    return CENTRES[which] * np.exp(rng.normal(0, noise, (n, 2)))


def test_wh_iou_hand_computed():
    # (2, 4) vs (4, 2): inter = min(2,4) min(4,2) = 4, union = 8 + 8 - 4 = 12 -> 1/3
    # (2, 4) vs (1, 1): inter = 1, union = 8 + 1 - 1 = 8 -> 1/8
    # (3, 3) vs (3, 3): 1; (3, 3) vs (6, 6): 9 / 36 = 1/4
    iou = wh_iou([[2, 4], [3, 3]], [[4, 2], [1, 1], [3, 3], [6, 6]])
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0, :2], [1 / 3, 1 / 8])
    np.testing.assert_allclose(iou[1, 2:], [1, 1 / 4])
    np.testing.assert_allclose(wh_iou([[5, 7]], [[5, 7]]), [[1.0]])


def test_kmeans_recovers_the_mixture_centres():
    anchors = kmeans_anchors(mixture(), k=5, seed=0)
    assert anchors.shape == (5, 2)
    areas = anchors.prod(1)
    assert (np.diff(areas) > 0).all()  # sorted by area
    iou = wh_iou(CENTRES, anchors)  # centres are sorted by area too
    assert iou.max(1).min() >= 0.95
    assert np.diag(iou).min() >= 0.95


def test_kmeans_is_deterministic_and_ignores_bad_boxes():
    wh = mixture(seed=1, n=500)
    a = kmeans_anchors(wh, k=5, seed=3)
    b = kmeans_anchors(wh, k=5, seed=3)
    np.testing.assert_array_equal(a, b)
    with_bad = np.concatenate([wh, [[0, 5], [5, -1], [np.nan, 3]]])
    np.testing.assert_array_equal(kmeans_anchors(with_bad, k=5, seed=3), a)
    with pytest.raises(ValueError, match="at least"):
        kmeans_anchors(wh[:3], k=5)


def test_kmeans_beats_the_official_anchors_on_its_own_data():
    wh = mixture(seed=2, n=1000)
    anchors = kmeans_anchors(wh, k=9, seed=0, statistic=np.mean)
    assert anchor_fitness(wh, anchors) > anchor_fitness(wh, YOLOV3_ANCHORS)
    assert best_possible_recall(wh, anchors) == 1.0


def test_fitness_and_bpr_hand_computed():
    wh = np.array([[10, 10], [20, 20], [100, 1]], np.float64)
    anchors = np.array([[10, 10]], np.float64)
    # best IoU: 1, 100/400 = 0.25, (10 * 1) / (100 + 100 - 10) = 10/190
    best = np.array([1, 0.25, 10 / 190])
    assert anchor_fitness(wh, anchors) == pytest.approx(best.mean())
    assert anchor_fitness(wh, anchors, threshold=0.2) == pytest.approx((1 + 0.25) / 3)
    assert best_possible_recall(wh, anchors) == pytest.approx(2 / 3)  # 0.25 > 0.213
    assert best_possible_recall(wh, anchors, threshold=0.3) == pytest.approx(1 / 3)


def test_unit_conversion_and_constants():
    assert YOLOV2_VOC_ANCHORS.shape == (5, 2) and YOLOV3_ANCHORS.shape == (9, 2)
    assert YOLOV3_TINY_ANCHORS.shape == (6, 2)
    for anchors in (YOLOV2_VOC_ANCHORS, YOLOV3_ANCHORS, YOLOV3_TINY_ANCHORS):
        assert (np.diff(anchors.prod(1)) > 0).all()  # the cfgs list them by area
    with pytest.raises(ValueError):
        YOLOV3_ANCHORS[0, 0] = 1  # read-only
    # 1.3221 cells * 32 px = 42.3072 px; 116 px / 32 = 3.625 cells
    px = anchors_to_pixels(YOLOV2_VOC_ANCHORS, V2_ANCHORS.cell_stride)
    assert px[0, 0] == pytest.approx(42.3072)
    np.testing.assert_allclose(anchors_to_grid(px, V2_ANCHORS.cell_stride), YOLOV2_VOC_ANCHORS)
    assert anchors_to_grid(YOLOV3_ANCHORS, 32)[6].tolist() == [3.625, 2.8125]
    strides = np.repeat([8, 16, 32], 3)[:, None]  # one stride per anchor
    grid = anchors_to_grid(YOLOV3_ANCHORS, strides)
    assert grid[0].tolist() == [10 / 8, 13 / 8] and grid[8].tolist() == [373 / 32, 326 / 32]
    np.testing.assert_allclose(anchors_to_pixels(grid, strides), YOLOV3_ANCHORS)


def test_ratio_recall_by_hand():
    anchors = [[10.0, 10.0]]
    # ratios 1, 3.9 (kept), 4.1 (lost) on the worse side
    wh = [[10.0, 10.0], [39.0, 10.0], [10.0, 41.0]]
    assert ratio_recall(wh, anchors) == pytest.approx(2 / 3)
    assert ratio_recall(wh, anchors, anchor_t=5.0) == 1.0


def test_autoanchor_keeps_good_anchors_and_refits_bad_ones():
    rng = np.random.default_rng(0)
    wh = np.concatenate([rng.uniform(8, 16, (200, 2)), rng.uniform(80, 120, (200, 2))])
    good = [[12.0, 12.0], [100.0, 100.0]]
    kept = autoanchor(wh, good)
    assert not kept["refit"] and kept["recall_before"] == 1.0
    np.testing.assert_array_equal(kept["anchors"], good)
    bad = [[300.0, 300.0], [400.0, 400.0]]  # nothing small can be learned
    fixed = autoanchor(wh, bad)
    assert fixed["refit"] and fixed["recall_before"] < 0.98 <= fixed["recall_after"]
    assert fixed["recall_after"] == ratio_recall(wh, fixed["anchors"])
