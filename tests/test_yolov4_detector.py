"""YOLOv4 as a detector: its registered names bring yolov4.cfg's loss (multi-anchor IT, CIoU
weighted 0.07, grid sensitivity per scale, ignore 0.7) and the paper's DIoU-NMS."""

import pytest
import torch

from yolo_teach.boxes import complete_box_iou_loss
from yolo_teach.decode import GridSensitiveBoxCoder
from yolo_teach.detectors import build_detector, official_anchors
from yolo_teach.losses import (
    IoUBoxLoss,
    MultiAnchorAssigner,
    NeighbourCellAssigner,
    SingleAnchorAssigner,
)
from yolo_teach.nms import batched_diou_nms, batched_nms


def test_yolov4_defaults_are_the_cfg_and_the_bag_of_freebies():
    det = build_detector("yolov4-nano", 3)
    loss = det.criterion
    assert det.rule == "multi" and isinstance(loss.assigner, MultiAnchorAssigner)
    assert loss.assigner.iou_threshold == 0.213  # yolov4.cfg iou_thresh
    assert loss.box_loss == IoUBoxLoss(complete_box_iou_loss) and loss.box_gain == 0.07
    assert loss.ignore_threshold == 0.7 and loss.reduction == "sum"
    assert [c.scale_xy for c in loss.coder] == [1.2, 1.1, 1.05]  # strides 8, 16, 32
    assert det.nms is batched_diou_nms
    single = build_detector("yolov4-nano", 3, assign="single").criterion
    assert isinstance(single.assigner, SingleAnchorAssigner) and single.box_gain == 0.07
    v5 = build_detector("yolov4-nano", 3, assign="neighbours").criterion
    assert isinstance(v5.assigner, NeighbourCellAssigner)
    tiny = build_detector("yolov4-tiny-nano", 3)
    assert tiny.rule == "single" and [c.scale_xy for c in tiny.criterion.coder] == [1.05, 1.05]


def test_yolov4_anchors_are_pixels_at_608_and_tiny_masks_follow_the_cfg():
    v4 = official_anchors("yolov4", 608)
    assert v4[0].tolist() == [[12, 16], [19, 36], [40, 28]]
    assert official_anchors("yolov4", 304)[2][2].tolist() == [459 / 2, 401 / 2]
    tiny = official_anchors("yolov4-tiny", 416)  # mask 1,2,3 at stride 16, 3,4,5 at 32
    assert tiny[0].tolist() == [[23, 27], [37, 58], [81, 82]]
    assert tiny[1].tolist() == [[81, 82], [135, 169], [344, 319]]


def test_grid_sensitive_coders_reach_every_cell_the_assigner_uses():
    # the multi-anchor rule uses centre cells only: (0, 1) lies inside every coder's range
    for coder in build_detector("yolov4-nano", 3).criterion.coder:
        low, high = coder.centre_range
        assert low < 0 and high > 1 and isinstance(coder, GridSensitiveBoxCoder)


@pytest.mark.parametrize("name", ["yolov4-nano", "yolov4-tiny-nano", "yolov4-nano-mish"])
def test_yolov4_nanos_train_and_predict(name):
    torch.manual_seed(0)
    det = build_detector(name, 3, 128)
    images = torch.rand(2, 3, 128, 128)
    targets = torch.tensor([[0.0, 2, 10, 20, 60, 90], [1.0, 0, 64, 64, 120, 100]])
    loss, terms = det.criterion(det.model(images), targets)
    loss.backward()
    assert torch.isfinite(loss) and set(terms) == {"box", "obj", "cls"}
    grads = [p.grad for p in det.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    preds = det.predict(images, conf_threshold=0.0, iou_threshold=0.5)
    assert len(preds) == 2 and preds[0]["boxes"].shape[1] == 4


def test_batched_diou_nms_keeps_classes_apart_and_spares_distant_centres():
    # two boxes of one class with IoU 0.6 and far-apart centres along x:
    # (0,0,10,10) and (2.5,0,12.5,10): inter 75, union 125, IoU 0.6;
    # centres 2.5 apart, enclosing box 12.5 x 10 -> c^2 = 256.25, rho^2/c^2 = 6.25/256.25 = 0.024
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.5, 0, 12.5, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([0, 0, 1])
    # threshold 0.59: IoU 0.6 suppresses; DIoU 0.576 does not
    assert batched_nms(boxes, scores, classes, 0.59).tolist() == [0, 2]
    assert batched_diou_nms(boxes, scores, classes, 0.59).tolist() == [0, 1, 2]
    # the same box in another class is never suppressed, whatever the threshold
    assert 2 in batched_diou_nms(boxes, scores, classes, 0.0).tolist()
    assert batched_diou_nms(boxes[:0], scores[:0], classes[:0], 0.5).tolist() == []


def test_the_csp_ablation_switch_builds_darknet53_stages():
    from dataclasses import replace

    from yolo_teach.models import count_parameters, yolov3_nano, yolov4_nano
    from yolo_teach.models.yolov4 import YOLOv4

    # Darknet stages, yolov3_nano's layout, no SPP: exactly yolov3_nano's backbone under a PAN
    cfg = replace(yolov4_nano(7).cfg, cross_stage_partial=False, spp_kernel_sizes=(),
                  stage_strides=(1, 2, 2, 2, 2))
    model = YOLOv4(cfg)
    assert count_parameters(model.backbone) == count_parameters(yolov3_nano(7).backbone)
    outputs = model(torch.zeros(1, 3, 128, 128))
    assert [tuple(o.shape[1:]) for o in outputs] == [(36, 16, 16), (36, 8, 8), (36, 4, 4)]
