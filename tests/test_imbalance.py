"""Class-imbalance remedies: class weights in the YOLO loss, repeat-factor sampling (nb 18)."""

import math

import numpy as np
import pytest
import torch
from test_decode import ANCHORS, STRIDES, TARGETS
from test_losses import FAITHFUL, YOLOV5, make_loss

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.sampling import (
    box_counts,
    image_counts,
    repeat_factor_sample,
    repeat_factors,
)
from yolo_teach.experiment import load_detector, make_experiment
from yolo_teach.losses.yolo_loss import YOLOLoss, inverse_frequency_weights


# ---------------------------------------------------------------------------- class weights
def test_inverse_frequency_weights_by_hand():
    # counts (3, 1): 1/n = (1/3, 1); mean over classes 2/3 -> (1/2, 3/2)
    assert inverse_frequency_weights([3, 1]) == pytest.approx((0.5, 1.5))
    # mean over boxes (3 * 1/3 + 1 * 1) / 4 = 1/2 -> (2/3, 2); check: (3 * 2/3 + 2) / 4 = 1
    assert inverse_frequency_weights([3, 1], mean_over="boxes") == pytest.approx((2 / 3, 2.0))
    # power 1/2 on (4, 1): (1/2, 1), mean 3/4 -> (2/3, 4/3)
    assert inverse_frequency_weights([4, 1], power=0.5) == pytest.approx((2 / 3, 4 / 3))
    # power 0: every class 1; a class without boxes counts as one box
    assert inverse_frequency_weights([10, 5, 1], power=0) == pytest.approx((1.0, 1.0, 1.0))
    assert inverse_frequency_weights([2, 0]) == inverse_frequency_weights([2, 1])


def test_inverse_frequency_weights_of_the_kaggle_counts():
    w = inverse_frequency_weights([3232, 717, 123])
    assert all(isinstance(v, float) for v in w)  # plain floats: saved with the loss options
    assert sum(w) / 3 == pytest.approx(1.0)
    assert w[2] / w[0] == pytest.approx(3232 / 123)  # Darknet's counters_per_class ratio
    with pytest.raises(ValueError, match="mean_over"):
        inverse_frequency_weights([1, 2], mean_over="images")


def maps_for(num_classes: int, seed: int = 0, batch: int = 2):
    torch.manual_seed(seed)
    return [torch.randn(batch, 3 * (5 + num_classes), 416 // s, 416 // s) for s in STRIDES]


@pytest.mark.parametrize("setup", [FAITHFUL, YOLOV5], ids=["faithful", "yolov5"])
def test_unit_class_weights_change_nothing(setup):
    maps = maps_for(3)
    plain_loss, plain = make_loss(**setup)(maps, TARGETS)
    ones_loss, ones = make_loss(**setup, class_weights=(1.0, 1.0, 1.0))(maps, TARGETS)
    assert torch.equal(plain_loss, ones_loss)
    assert all(torch.equal(plain[k], ones[k]) for k in plain)
    assert make_loss(**setup).class_weights is None  # the default path is the unweighted one


@pytest.mark.parametrize("setup", [FAITHFUL, YOLOV5], ids=["faithful", "yolov5"])
def test_a_rare_class_only_batch_scales_with_its_weight(setup):
    maps = maps_for(3, seed=1)
    rare = TARGETS.clone()
    rare[:, 1] = 2  # every truth is of class 2
    _, plain = make_loss(**setup)(maps, rare)
    loss, weighted = make_loss(**setup, class_weights=(0.1, 1.0, 4.0))(maps, rare)
    torch.testing.assert_close(weighted["cls"], 4.0 * plain["cls"])
    torch.testing.assert_close(weighted["box"], plain["box"])  # only the class term moves
    torch.testing.assert_close(weighted["obj"], plain["obj"])
    assert math.isclose(loss.item(), sum(v.item() for v in weighted.values()), rel_tol=1e-6)


def test_class_weights_weigh_each_truth_by_its_class():
    # the class term is a sum over the truths (Darknet: divided by B), so weighting the two
    # classes of a mixed batch gives the weighted sum of the one-class batches' terms
    maps = maps_for(3, seed=2)
    common, rare = TARGETS[TARGETS[:, 1] != 2], TARGETS[TARGETS[:, 1] == 2]
    w = (0.5, 0.5, 3.0)
    _, both = make_loss(**FAITHFUL, class_weights=w)(maps, TARGETS)
    _, only_common = make_loss(**FAITHFUL)(maps, common)
    _, only_rare = make_loss(**FAITHFUL)(maps, rare)
    torch.testing.assert_close(both["cls"], 0.5 * only_common["cls"] + 3.0 * only_rare["cls"])


def test_class_weights_must_match_the_classes():
    loss = YOLOLoss(ANCHORS, STRIDES, **FAITHFUL, class_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="2 class_weights for 3 classes"):
        loss(maps_for(3), TARGETS)


def test_class_weights_pass_through_make_experiment_and_the_checkpoint(tmp_path):
    weights = inverse_frequency_weights([3232, 717, 123], power=0.5)
    exp = make_experiment("yolov4-tiny-nano", "face_masks", img_size=64, n_train=8, n_val=4,
                          data_size=64, batch_size=4, epochs=1, max_steps=1, val_every=0,
                          progress=False, out_dir=tmp_path, augment="none",
                          loss_options={"class_weights": weights})
    torch.testing.assert_close(exp.detector.criterion.class_weights, torch.tensor(weights))
    exp.trainer.fit()
    detector, meta = load_detector(tmp_path / "last.pt")
    assert meta["loss_options"]["class_weights"] == pytest.approx(list(weights))
    torch.testing.assert_close(detector.criterion.class_weights, torch.tensor(weights))


# ---------------------------------------------------------------------------- sampling
def tiny_dataset(labels: list[list[int]], num_classes: int = 2) -> BoxDataset:
    """One 8 x 8 image per entry, a 2 x 2 box per label; per-image meta ``tag`` = its index."""
    images = [np.full((8, 8, 3), i % 256, np.uint8) for i in range(len(labels))]
    boxes = [np.tile([1.0, 1.0, 3.0, 3.0], (len(lab), 1)) for lab in labels]
    return BoxDataset(images, boxes, labels, [f"c{k}" for k in range(num_classes)],
                      meta={"tag": list(range(len(labels))), "source": "test"})


def test_counts_of_boxes_and_images():
    data = tiny_dataset([[0], [0, 1, 1], [0], []])
    assert box_counts(data).tolist() == [3, 2]  # class 1 twice in image 1
    assert image_counts(data).tolist() == [3, 1]


def test_repeat_factors_by_hand():
    data = tiny_dataset([[0], [0, 1], [0], []])
    # f_0 = 3/4, f_1 = 1/4; t = 1/2: r_0 = max(1, sqrt(2/3)) = 1, r_1 = sqrt(2) = 1.414;
    # image 1 holds both: max(1, 1.414); the empty image 3 stays at 1
    np.testing.assert_allclose(repeat_factors(data, 0.5), [1, math.sqrt(2), 1, 1])
    # t = 1: r_0 = sqrt(4/3) = 1.155 for every image with class 0, r_1 = sqrt(4) = 2
    np.testing.assert_allclose(repeat_factors(data, 1.0),
                               [math.sqrt(4 / 3), 2, math.sqrt(4 / 3), 1])
    with pytest.raises(ValueError, match="threshold"):
        repeat_factors(data, 0.0)


def test_repeat_factor_sample_repeats_the_rare_images_with_their_boxes_and_meta():
    # every image holds class 0 (f_0 = 1: r_0 = 1); class 1 in 1 of 4 (t = 1: r_1 = 2 exactly)
    data = tiny_dataset([[0], [0, 1], [0], [0]])
    out = repeat_factor_sample(data, 1.0)
    assert out.names == ["0000", "0001", "0001~1", "0002", "0003"]
    assert out.meta == {"tag": [0, 1, 1, 2, 3], "source": "test"}
    assert [int(im[0, 0, 0]) for im in out.images] == [0, 1, 1, 2, 3]
    assert out.labels[2].tolist() == [0, 1] and np.array_equal(out.boxes[2], data.boxes[1])
    assert image_counts(out).tolist() == [5, 2]
    assert len(data) == 4  # the source is not changed


def test_repeat_factor_sample_rounds_at_random_but_deterministically():
    # 1000 images, class 1 in every tenth: t = 0.2 gives r_1 = sqrt(2); rounded up with
    # probability 0.414, so the 100 rare images appear ~141 times
    labels = [[0, 1] if i % 10 == 0 else [0] for i in range(1000)]
    data = tiny_dataset(labels)
    a, b = repeat_factor_sample(data, 0.2, seed=3), repeat_factor_sample(data, 0.2, seed=3)
    assert a.names == b.names
    assert a.names != repeat_factor_sample(data, 0.2, seed=4).names
    rare = image_counts(a)[1]
    assert 100 + 25 <= rare <= 100 + 58  # expected 141.4, binomial sd 4.9
    assert image_counts(a)[0] - rare == 900  # the common images once each
    assert len(set(a.names)) == len(a)
