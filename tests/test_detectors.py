"""Detectors by name, and the end-to-end check: a nano model overfits two tiny images."""

import numpy as np
import pytest
import torch

from yolo_teach.anchors import kmeans_anchors
from yolo_teach.boxes import box_iou, complete_box_iou_loss
from yolo_teach.decode import YOLOv2BoxCoder, YOLOv5BoxCoder, postprocess
from yolo_teach.detectors import build_detector, official_anchors, split_anchors
from yolo_teach.losses import (
    CodedBoxSSE,
    IoUBoxLoss,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    SoftmaxClassLoss,
    objectness_iou,
    objectness_one,
)
from yolo_teach.registry import detector_names


def test_official_anchors_are_rescaled_from_416():
    v3 = official_anchors("yolov3-nano", 208)  # half of 416
    assert [a.shape for a in v3] == [(3, 2)] * 3
    assert v3[0][0].tolist() == [5.0, 6.5] and v3[2][2].tolist() == [186.5, 163.0]
    v2 = official_anchors("yolov2", 416)  # cells of stride 32 -> pixels: 1.3221 * 32
    assert v2[0][0].tolist() == pytest.approx([42.3072, 55.4064])
    tiny = official_anchors("yolov3-tiny", 416)
    assert tiny[0][0].tolist() == [10.0, 14.0] and tiny[1][0].tolist() == [81.0, 82.0]


def test_split_anchors_sorts_by_area_finest_first():
    rng = np.random.default_rng(0)
    anchors = kmeans_anchors(rng.uniform(4, 100, (300, 2)), k=9)[::-1]  # largest first
    groups = split_anchors(anchors, 3)
    areas = [g.prod(1) for g in groups]
    assert areas[0].max() <= areas[1].min() and areas[1].max() <= areas[2].min()
    assert split_anchors(groups, 3)[1].tolist() == groups[1].tolist()  # per scale: kept


def test_assign_selects_the_matching_loss():
    faithful = build_detector("yolov3-nano", 3, 128)
    assert isinstance(faithful.criterion.assigner, SingleAnchorAssigner)
    assert isinstance(faithful.criterion.coder, YOLOv2BoxCoder)
    assert isinstance(faithful.criterion.box_loss, CodedBoxSSE)
    assert faithful.criterion.ignore_threshold == 0.5
    v5 = build_detector("yolov3-nano", 3, 128, assign="neighbours")
    assert isinstance(v5.criterion.assigner, NeighbourCellAssigner)
    assert isinstance(v5.criterion.coder, YOLOv5BoxCoder)
    assert v5.criterion.box_loss == IoUBoxLoss(complete_box_iou_loss)
    assert v5.criterion.objectness_target is objectness_iou
    assert v5.criterion.objectness_balance == (4.0, 1.0, 0.4)
    v2 = build_detector("yolov2-nano", 3, 128, objectness_target=objectness_one)  # override
    assert isinstance(v2.criterion.class_loss, SoftmaxClassLoss)
    assert v2.criterion.objectness_target is objectness_one
    with pytest.raises(ValueError):
        build_detector("yolov1-nano", 3, assign="neighbours")
    with pytest.raises(ValueError):
        build_detector("yolov3-nano", 3, 100)  # not a multiple of 32
    with pytest.raises(ValueError):
        build_detector("yolov2-nano", 3, 128, anchors=np.ones((9, 2)))  # v2 has 5 anchors


@pytest.mark.parametrize("name", ["yolov1-nano", "yolov2-nano", "yolov3-nano"])
def test_nano_detectors_train_and_predict_shapes(name):
    det = build_detector(name, 3, 128)
    images = torch.rand(2, 3, 128, 128)
    targets = torch.tensor([[0.0, 2, 10, 20, 60, 90], [1.0, 0, 64, 64, 120, 100]])
    loss, terms = det.criterion(det.model(images), targets)
    loss.backward()
    assert torch.isfinite(loss) and set(terms) >= {"box", "obj", "cls"}
    preds = det.predict(images, conf_threshold=0.3, iou_threshold=0.5)
    assert len(preds) == 2 and preds[0]["boxes"].shape[1] == 4 and det.model.training
    assert det.name == name and det.img_size == 128 and name in detector_names()


# ---------------------------------------------------------------------------------------------
# Overfitting two tiny images: loss, assignment, coder and decoder agree end to end.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Small convolutions gain nothing from a second thread and suffer when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_images(size: int = 128):
    """Two dark images with two painted boxes each, painted in the channel of their class."""
    torch.manual_seed(0)
    images = torch.rand(2, 3, size, size) * 0.2
    targets = torch.tensor([[0.0, 0, 10, 12, 50, 40], [0, 1, 60, 70, 110, 120],
                            [1, 1, 20, 64, 70, 100], [1, 0, 80, 10, 118, 50]])
    for b, c, x1, y1, x2, y2 in targets.long().tolist():
        images[b, c, y1:y2, x1:x2] = 0.9
    return images, targets


def overfit(det, images, targets, steps: int) -> list[float]:
    torch.manual_seed(0)
    det.model.init_bias()
    optimizer = torch.optim.Adam(det.model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss, _ = det.criterion(det.model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_finds_every_box(preds, targets):
    for b, pred in enumerate(preds):
        for _, label, *box in targets[targets[:, 0] == b].tolist():
            same = pred["labels"] == label
            assert same.any(), f"no detection of class {label} in image {b}"
            iou = box_iou(torch.tensor([box]), pred["boxes"][same]).max()
            assert iou > 0.5, f"best IoU {iou:.2f} for {box} in image {b}"


@pytest.mark.parametrize("name, assign", [("yolov3-nano", "single"),
                                          ("yolov3-nano", "neighbours"),
                                          ("yolov2-nano", "single")])
def test_anchor_detectors_overfit_two_images(name, assign, one_thread):
    images, targets = two_images()
    det = build_detector(name, 2, 128, assign=assign)
    losses = overfit(det, images, targets, steps=80)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    assert_finds_every_box(det.predict(images, conf_threshold=0.25), targets)


def test_yolov1_overfits_two_images(one_thread):
    images, targets = two_images()
    det = build_detector("yolov1-nano", 2, 128)
    det.model.head.dropout.p = 0.0  # memorise without dropout's noise
    losses = overfit(det, images, targets, steps=120)
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
    # read the training-mode outputs: the nano head's last convs see 1 x 1 maps, where batch
    # norm over 2 images normalises with 2 values and the running (unbiased) variance is twice
    # the batch variance, so eval mode would not show what was learned here
    with torch.no_grad():
        preds = postprocess(det.decoder(det.model(images)), conf_threshold=0.25)
    assert_finds_every_box(preds, targets)
