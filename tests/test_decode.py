"""Box coders, decoding and post-processing: round trips and hand-computed boxes."""

import math

import pytest
import torch

from yolo_teach.decode import (
    YOLOv2BoxCoder,
    YOLOv5BoxCoder,
    decode_anchor_maps,
    decode_yolov1,
    make_grid,
    postprocess,
    predict,
)
from yolo_teach.losses import (
    NeighbourCellAssigner,
    SingleAnchorAssigner,
    YOLOv1Loss,
    one_object_per_cell,
)

STRIDES = (8, 16, 32)
ANCHORS = [torch.tensor([[10.0, 13], [16, 30], [33, 23]]),  # YOLOv3's, px at 416
           torch.tensor([[30.0, 61], [62, 45], [59, 119]]),
           torch.tensor([[116.0, 90], [156, 198], [373, 326]])]
TARGETS = torch.tensor([  # [b, class, x1, y1, x2, y2] at 416 px
    [0, 1, 100, 100, 220, 190],
    [0, 0, 300, 20, 320, 50],
    [1, 2, 50, 200, 110, 320],
], dtype=torch.float32)


@pytest.mark.parametrize("coder", [YOLOv2BoxCoder(), YOLOv5BoxCoder()])
def test_encode_decode_round_trip(coder):
    torch.manual_seed(0)
    cell = torch.randint(0, 13, (100, 2)).float()
    anchor = torch.rand(100, 2) * 4 + 0.5
    low, high = coder.centre_range
    offset = low + 0.05 + torch.rand(100, 2) * (high - low - 0.1)  # reachable centres
    ratio = torch.rand(100, 2) * 3.5 + 0.3  # w / p_w within YOLOv5's (0, 4)
    box = torch.cat([cell + offset, anchor * ratio], 1)  # cxcywh in cells
    assert torch.allclose(coder.decode(coder.encode(box, cell, anchor), cell, anchor), box,
                          atol=1e-4)
    t = torch.randn(100, 4)
    assert torch.allclose(coder.encode(coder.decode(t, cell, anchor), cell, anchor), t, atol=1e-3)


def test_coders_by_hand():
    t = torch.zeros(1, 4)  # sigma(0) = 0.5, e^0 = 1
    cell, anchor = torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 1.0]])
    # YOLOv2: b = (0.5 + 3, 0.5 + 4, 2 e^0, 1 e^0)
    assert YOLOv2BoxCoder().decode(t, cell, anchor).tolist() == [[3.5, 4.5, 2.0, 1.0]]
    # YOLOv5: b = (2 0.5 - 0.5 + 3, ..., 2 (2 0.5)^2, 1 (2 0.5)^2)
    assert YOLOv5BoxCoder().decode(t, cell, anchor).tolist() == [[3.5, 4.5, 2.0, 1.0]]
    big = torch.full((1, 4), 50.0)  # sigma -> 1: YOLOv5 reaches 1.5 cells and 4 anchors at most
    assert torch.allclose(YOLOv5BoxCoder().decode(big, cell, anchor),
                          torch.tensor([[4.5, 5.5, 8.0, 4.0]]))


def test_make_grid_is_cached_and_ordered_x_then_y():
    grid = make_grid(2, 3)
    assert grid.shape == (2, 3, 2)
    assert grid[1, 2].tolist() == [2.0, 1.0]  # row 1, column 2 -> (c_x, c_y) = (2, 1)
    assert make_grid(2, 3) is grid


def ideal_maps(assigner, coder, num_classes, batch=2, size=416, logit=12.0):
    """Raw maps that a perfect detector would output for TARGETS: encoded boxes, sure logits."""
    grids = [(size // s, size // s) for s in STRIDES]
    maps = [torch.full((batch, 3, h, w, 5 + num_classes), -logit) for h, w in grids]
    for s, asg in enumerate(assigner(TARGETS, ANCHORS, STRIDES, grids)):
        cell = torch.stack([asg.gx, asg.gy], 1).float()
        anchor = ANCHORS[s][asg.a] / STRIDES[s]
        centre = (asg.boxes[:, :2] + asg.boxes[:, 2:]) / 2
        truth = torch.cat([centre, asg.boxes[:, 2:] - asg.boxes[:, :2]], 1) / STRIDES[s]
        row = torch.full((len(asg), 5 + num_classes), -logit)
        row[:, :4] = coder.encode(truth, cell, anchor)
        row[:, 4] = logit
        row[torch.arange(len(asg)), 5 + asg.labels] = logit
        maps[s][asg.b, asg.a, asg.gy, asg.gx] = row
    # (B, A, H, W, 5+K) -> (B, A(5+K), H, W), anchor-major like the models
    return [m.permute(0, 1, 4, 2, 3).reshape(batch, -1, *m.shape[2:4]) for m in maps]


@pytest.mark.parametrize("assigner, coder", [(SingleAnchorAssigner(), YOLOv2BoxCoder()),
                                             (NeighbourCellAssigner(), YOLOv5BoxCoder())])
def test_decode_and_postprocess_give_back_the_encoded_boxes(assigner, coder):
    maps = ideal_maps(assigner, coder, num_classes=3)
    decoded = decode_anchor_maps(maps, ANCHORS, STRIDES, coder)
    assert decoded.shape == (2, 3 * (52**2 + 26**2 + 13**2), 4 + 1 + 3)
    preds = postprocess(decoded, conf_threshold=0.5, iou_threshold=0.45)
    for b, pred in enumerate(preds):
        truth = TARGETS[TARGETS[:, 0] == b]
        order = torch.argsort(pred["boxes"][:, 0])  # the duplicates of neighbour cells are gone
        assert torch.allclose(pred["boxes"][order], truth[torch.argsort(truth[:, 2]), 2:],
                              atol=1e-2)
        assert pred["labels"][order].tolist() == truth[torch.argsort(truth[:, 2]), 1].tolist()
        assert pred["labels"].dtype == torch.int64 and (pred["scores"] > 0.99).all()


def test_decode_softmax_classes_sum_to_one():
    maps = [torch.randn(1, 5 * 7, 4, 4)]
    decoded = decode_anchor_maps(maps, [torch.ones(5, 2) * 32], (32,), YOLOv2BoxCoder(),
                                 class_activation="softmax")
    assert torch.allclose(decoded[..., 5:].sum(-1), torch.ones(1, 80))


def test_decode_yolov1_by_hand():
    # S = 2, 64 px (32 px cells), 2 predictors, 2 classes. Cell (row 1, col 0), predictor 1:
    # x = y = 0.5 -> centre (0.5 * 32, (1 + 0.5) * 32) = (16, 48); sqrt w = 0.5 -> w = 16 px.
    out = torch.zeros(1, 2, 2, 12)
    out[0, 1, 0, 5:10] = torch.tensor([0.5, 0.5, 0.5, 0.25, 0.9])  # h = 0.25^2 64 = 4 px
    out[0, 1, 0, 10:] = torch.tensor([0.1, 0.8])
    decoded = decode_yolov1(out, img_size=64, num_boxes=2)
    assert decoded.shape == (1, 2 * 2 * 2, 7)
    row = decoded[0, (1 * 2 + 0) * 2 + 1]  # (row, col, predictor) flattened
    assert torch.allclose(row, torch.tensor([8.0, 46, 24, 50, 0.9, 0.1, 0.8]))
    preds = postprocess(decoded, conf_threshold=0.5)
    assert preds[0]["labels"].tolist() == [1] and math.isclose(preds[0]["scores"].item(), 0.72,
                                                               rel_tol=1e-6)


def test_postprocess_nms_per_class_and_agnostic():
    # two nearly identical boxes of different classes, both confident
    rows = torch.tensor([[[0, 0, 10, 10, 0.9, 1.0, 0.0], [0, 0, 10, 11, 0.8, 0.0, 1.0],
                          [50, 50, 60, 60, 0.1, 1.0, 0.0]]])
    per_class = postprocess(rows, conf_threshold=0.25)[0]
    assert per_class["labels"].tolist() == [0, 1]  # the low-score box is filtered out
    agnostic = postprocess(rows, conf_threshold=0.25, class_agnostic=True)[0]
    assert agnostic["labels"].tolist() == [0]
    assert postprocess(rows, max_det=1)[0]["scores"].tolist() == pytest.approx([0.9])
    empty = postprocess(torch.zeros(1, 0, 7))[0]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64


def test_predict_restores_the_training_mode_and_clips():
    model = torch.nn.Conv2d(3, 3 * 6, 1)
    model.train()
    decoder = lambda out: decode_anchor_maps(out, [torch.full((3, 2), 200.0)], (1,),  # noqa: E731
                                             YOLOv2BoxCoder())
    preds = predict(model, torch.rand(2, 3, 8, 8), decoder, conf_threshold=0.0)
    assert model.training and len(preds) == 2
    assert preds[0]["boxes"].min() >= 0 and preds[0]["boxes"].max() <= 8


def test_decode_yolov1_gives_back_the_boxes_the_loss_calls_perfect():
    # S = 4 at 128 px (32 px cells), 2 predictors, 3 classes. Encode the truths the way the loss
    # reads them (offset in the cell, sqrt of the size relative to the image, confidence = IoU = 1
    # on predictor 1, one-hot classes), check that the loss is 0, decode, get the boxes back.
    targets = torch.tensor([[0, 1, 10, 20, 50, 40],     # centre (30, 30): row 0, col 0
                            [0, 2, 70, 80, 120, 127],   # centre (95, 103.5): row 3, col 2
                            [1, 0, 33, 1, 60, 90]],     # centre (46.5, 45.5): row 1, col 1
                           dtype=torch.float32)
    out = torch.zeros(2, 4, 4, 2 * 5 + 3)
    b, row, col, truth = one_object_per_cell(targets, img_size=128, grid_size=4)
    assert sorted(zip(b.tolist(), row.tolist(), col.tolist())) == [(0, 0, 0), (0, 3, 2), (1, 1, 1)]
    out[b, row, col, 5:7] = truth[:, 1:3]  # x, y of predictor 1
    out[b, row, col, 7:9] = truth[:, 3:5].sqrt()  # sqrt w, sqrt h
    out[b, row, col, 9] = 1.0  # its confidence
    out[b, row, col, 10 + truth[:, 0].long()] = 1.0  # Pr(class | object)
    loss, terms = YOLOv1Loss(img_size=128, num_boxes=2)(out, targets)
    assert loss.item() == pytest.approx(0.0, abs=1e-6), terms
    preds = postprocess(decode_yolov1(out, img_size=128, num_boxes=2), conf_threshold=0.5)
    for image, pred in enumerate(preds):
        truth = targets[targets[:, 0] == image]
        order = torch.argsort(pred["boxes"][:, 0])
        assert torch.allclose(pred["boxes"][order], truth[torch.argsort(truth[:, 2]), 2:],
                              atol=1e-4)
        assert pred["labels"][order].tolist() == truth[torch.argsort(truth[:, 2]), 1].tolist()
        assert torch.allclose(pred["scores"], torch.ones(len(truth)))
