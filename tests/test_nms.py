import math

import numpy as np
import pytest
import torch

from yolo_teach.boxes import box_iou
from yolo_teach.nms import batched_diou_nms, batched_nms, diou_nms, nms, soft_nms


def py_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def py_diou(a, b):
    rho2 = ((a[0] + a[2] - b[0] - b[2]) ** 2 + (a[1] + a[3] - b[1] - b[3]) ** 2) / 4
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    return py_iou(a, b) - rho2 / c2


def naive_greedy(boxes, scores, threshold, overlap=py_iou):
    """Textbook greedy NMS with Python lists: best first, ties by index, suppress if > threshold."""
    boxes, scores = boxes.tolist(), scores.tolist()
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(overlap(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def random_set(rng, n, num_classes=1):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
    scores = torch.tensor(rng.random(n).round(2), dtype=torch.float32)  # rounding makes ties
    labels = torch.tensor(rng.integers(0, num_classes, n))
    return boxes, scores, labels


def test_nms_hand_example():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 first (0.95); box 0 has IoU 90/100 = 0.9 with it -> removed; box 1: IoU with box 3 is
    # 81/(100+90-81) = 0.743 -> removed at 0.5; box 2 does not touch -> kept
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_overlap_equal_to_threshold_is_kept():
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 1]])  # IoU exactly 2/4 = 0.5
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]


def test_ties_keep_lower_index_first():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]


def test_empty_inputs():
    empty = torch.zeros(0, 4)
    no_classes = torch.zeros(0, dtype=torch.long)
    for keep in (nms(empty, torch.zeros(0), 0.5), diou_nms(empty, torch.zeros(0), 0.5),
                 batched_nms(empty, torch.zeros(0), no_classes, 0.5),
                 batched_diou_nms(empty, torch.zeros(0), no_classes, 0.5),
                 soft_nms(empty, torch.zeros(0))[0]):
        assert keep.shape == (0,) and keep.dtype == torch.long  # indices, even when empty
    new_scores = soft_nms(empty, torch.zeros(0, dtype=torch.float64))[1]
    assert new_scores.shape == (0,) and new_scores.dtype == torch.float64


def test_one_box_is_kept():
    box, score = torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0.6])
    assert nms(box, score, 0.5).tolist() == [0]
    assert diou_nms(box, score, 0.5).tolist() == [0]
    assert batched_nms(box, score, torch.tensor([3]), 0.5).tolist() == [0]
    assert batched_diou_nms(box, score, torch.tensor([3]), 0.5).tolist() == [0]
    keep, new = soft_nms(box, score)
    assert keep.tolist() == [0] and new.tolist() == pytest.approx([0.6])


@pytest.mark.parametrize("fn", [nms, diou_nms, lambda b, s, t: soft_nms(b, s, t)[0]])
def test_shapes_are_checked(fn):
    with pytest.raises(ValueError, match=r"got shapes \[\(3, 5\), \(3,\)\]"):
        fn(torch.zeros(3, 5), torch.zeros(3), 0.5)  # (N, 5): a score column left in
    with pytest.raises(ValueError, match=r"got shapes \[\(3, 4\), \(2,\)\]"):
        fn(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match=r"got shapes \[\(3, 4\), \(3, 1\)\]"):
        fn(torch.zeros(3, 4), torch.zeros(3, 1), 0.5)


@pytest.mark.parametrize("seed", range(40))
def test_nms_equals_naive_greedy_on_random_sets(seed):
    rng = np.random.default_rng(seed)
    boxes, scores, _ = random_set(rng, int(rng.integers(0, 121)))
    threshold = float(rng.uniform(0.2, 0.8))
    assert nms(boxes, scores, threshold).tolist() == naive_greedy(boxes, scores, threshold)


def test_batched_nms_separates_classes_with_negative_coordinates():
    # two copies of (-10, -10, 10, 10), a box partly left of and above the image: span 10 - (-10)
    # = 20, so class 1 moves by 20 + 1 to (11, 11, 31, 31), clear of class 0. (A shift of 19
    # would leave a 1x1 overlap, IoU 1 / 799 > 0.001; one of 10 + (-10) + 1 = 1 an IoU of 0.82.)
    boxes = torch.tensor([[-10.0, -10, 10, 10], [-10, -10, 10, 10]])
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.001).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([1, 1]), 0.001).tolist() == [0]
    # DIoU of the two copies: 1 in one class; classes apart: IoU 0, DIoU < 0
    assert batched_diou_nms(boxes, scores, torch.tensor([0, 1]), 0.001).tolist() == [0, 1]
    assert batched_diou_nms(boxes, scores, torch.tensor([1, 1]), 0.001).tolist() == [0]


@pytest.mark.parametrize("fn", [batched_nms, batched_diou_nms])
def test_batched_shapes_are_checked(fn):
    with pytest.raises(ValueError, match=r"got shapes \[\(3, 4\), \(3,\), \(2,\)\]"):
        fn(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"got shapes \[\(3, 4\), \(2,\), \(3,\)\]"):
        fn(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3, dtype=torch.long), 0.5)


@pytest.mark.parametrize("seed", range(40))
def test_batched_nms_equals_naive_per_class(seed):
    rng = np.random.default_rng(100 + seed)
    boxes, scores, labels = random_set(rng, int(rng.integers(0, 121)), num_classes=4)
    threshold = float(rng.uniform(0.2, 0.8))
    expected = []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        expected += [idx[i].item() for i in naive_greedy(boxes[idx], scores[idx], threshold)]
    expected.sort(key=lambda i: (-float(scores[i]), i))
    assert batched_nms(boxes, scores, labels, threshold).tolist() == expected


def test_nms_is_idempotent():
    rng = np.random.default_rng(7)
    boxes, scores, _ = random_set(rng, 100)
    keep = nms(boxes, scores, 0.4)
    again = nms(boxes[keep], scores[keep], 0.4)
    assert again.tolist() == list(range(len(keep)))


def test_diou_nms_keeps_a_neighbour_that_nms_drops():
    boxes = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10]])
    scores = torch.tensor([0.9, 0.8])
    # IoU = 80/120 = 0.667; centres 2 apart: rho^2 = 4, enclosing 12x10: c^2 = 244
    # DIoU = 0.667 - 4/244 = 0.650 < 0.66 < IoU
    assert nms(boxes, scores, 0.66).tolist() == [0]
    assert diou_nms(boxes, scores, 0.66).tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(10))
def test_diou_nms_equals_naive(seed):
    rng = np.random.default_rng(200 + seed)
    boxes, scores, _ = random_set(rng, int(rng.integers(0, 80)))
    assert diou_nms(boxes, scores, 0.4).tolist() == naive_greedy(boxes, scores, 0.4,
                                                                  py_diou)


def test_soft_nms_linear_hand_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [30, 30, 40, 40]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep, new = soft_nms(boxes, scores, iou_threshold=0.3, method="linear")
    # box 1 overlaps box 0 with IoU 50/100 = 0.5 > 0.3: its score becomes 0.8 * (1 - 0.5) = 0.4
    assert keep.tolist() == [0, 2, 1]
    assert new.tolist() == pytest.approx([0.9, 0.7, 0.4])


def test_soft_nms_gaussian_hand_example():
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 1], [10, 10, 12, 12]])
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.7]))  # sigma 0.5 by default
    # box 0 first; box 1 overlaps it with IoU 2/4 = 0.5: 0.8 exp(-0.5^2 / 0.5) = 0.8 exp(-0.5)
    # = 0.4852; box 2 does not overlap anything: exp(0) = 1 keeps 0.7, taken before box 1
    assert keep.tolist() == [0, 2, 1]
    assert new.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-0.5)])
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), sigma=2.0)
    assert new.tolist() == pytest.approx([0.9, 0.8 * math.exp(-0.25 / 2), 0.7])  # 0.706 > 0.7


def test_soft_nms_linear_keeps_an_overlap_equal_to_the_threshold():
    boxes = torch.tensor([[0.0, 0, 2, 2], [0, 0, 2, 1]])  # IoU exactly 2/4 = 0.5
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5, method="linear")
    assert keep.tolist() == [0, 1] and new.tolist() == pytest.approx([0.9, 0.8])  # not decayed
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.49, method="linear")
    assert new.tolist() == pytest.approx([0.9, 0.4])  # 0.8 (1 - 0.5)


def test_soft_nms_score_threshold_keeps_equal_scores_and_drops_lower_ones():
    boxes = torch.tensor([[0.0, 0, 2, 2], [5, 5, 7, 7], [10, 10, 12, 12]])  # no overlaps
    keep, new = soft_nms(boxes, torch.tensor([0.75, 0.5, 0.4]), score_threshold=0.5)
    assert keep.tolist() == [0, 1] and new.tolist() == [0.75, 0.5]  # 0.5 >= 0.5 stays, 0.4 not
    keep, new = soft_nms(boxes, torch.tensor([0.3, 0.2, 0.1]), score_threshold=0.5)
    assert keep.tolist() == [] and keep.dtype == torch.long and new.shape == (0,)


def test_soft_nms_gaussian_decay_and_order():
    rng = np.random.default_rng(8)
    boxes, scores, _ = random_set(rng, 60)
    keep, new = soft_nms(boxes, scores, sigma=0.5, method="gaussian", score_threshold=0.01)
    assert (new[1:] <= new[:-1]).all()  # selected scores never increase
    assert (new <= scores[keep] + 1e-7).all() and (new >= 0.01).all()
    assert new[0] == scores.max()
    # the first pick decays box i by exp(-IoU^2 / sigma)
    i = int(keep[1])
    iou0 = box_iou(boxes[keep[0]][None], boxes)[0]
    assert new[1] <= scores[i]
    with pytest.raises(ValueError, match="method"):
        soft_nms(boxes, scores, method="hard")
    assert iou0.shape == (60,)
