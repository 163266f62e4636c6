"""YOLOX's loss and the anchor-free decoding it shares with the decoder."""

import math

import pytest
import torch

from yolo_teach.decode import anchor_points, decode_anchor_free, decode_points, flatten_point_maps
from yolo_teach.losses.yolox_loss import YOLOXLoss

K = 3
STRIDES = (8, 16)
SIZES = [(8, 8), (4, 4)]  # a 64 px image


def raw_for(box, point, stride):
    """The raw (t_x, t_y, t_w, t_h) that decode to ``box`` (xyxy) at the cell of ``point``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    corner = (point[0] - stride / 2, point[1] - stride / 2)
    return [(cx - corner[0]) / stride, (cy - corner[1]) / stride,
            math.log((box[2] - box[0]) / stride), math.log((box[3] - box[1]) / stride)]


def outputs_with(predictions, batch=1, logit=-8.0):
    """Maps that predict nothing (low objectness) except ``predictions``:
    ``{point index: (box, class)}`` with confident objectness and class."""
    maps = [torch.full((batch, 5 + K, h, w), logit) for h, w in SIZES]
    points, strides = anchor_points(SIZES, STRIDES)
    flat_index = [(k, y, x) for k, (h, w) in enumerate(SIZES) for y in range(h) for x in range(w)]
    for p, (box, label) in predictions.items():
        k, y, x = flat_index[p]
        maps[k][0, :4, y, x] = torch.tensor(raw_for(box, points[p].tolist(), float(strides[p])))
        maps[k][0, 4, y, x] = 8.0
        maps[k][0, 5 + label, y, x] = 8.0
    return maps


def test_decode_points_inverts_the_raw_offsets():
    points, strides = anchor_points(SIZES, STRIDES)
    box = [20.0, 12.0, 44.0, 40.0]
    raw = torch.tensor([raw_for(box, points[p].tolist(), float(strides[p])) for p in (0, 27, 70)])
    decoded = decode_points(raw, points[[0, 27, 70]], strides[[0, 27, 70]])
    torch.testing.assert_close(decoded, torch.tensor([box] * 3))
    maps = outputs_with({27: (box, 2)})
    rows = decode_anchor_free(maps, STRIDES)  # (1, 80, 5 + K)
    assert rows.shape == (1, 64 + 16, 5 + K) and flatten_point_maps(maps).shape == rows.shape
    torch.testing.assert_close(rows[0, 27, :4], torch.tensor(box))
    assert rows[0, 27, 4] > 0.99 and rows[0, 27, 5 + 2] > 0.99 and rows[0, 0, 4] < 0.01


def test_a_perfect_prediction_costs_little_and_a_wrong_one_more():
    box = [16.0, 16.0, 48.0, 48.0]
    targets = torch.tensor([[0.0, 1, *box]])
    loss_fn = YOLOXLoss(STRIDES, K, use_l1=True)
    points, _ = anchor_points(SIZES, STRIDES)
    centre = [p for p in range(64) if points[p].tolist() in ([28.0, 28.0], [36.0, 36.0])]
    good, parts = loss_fn(outputs_with({p: (box, 1) for p in centre}), targets)
    assert parts["box"] < 1e-4 and parts["l1"] < 1e-4  # positives are the perfect points
    assert good == pytest.approx(sum(parts.values()))
    wrong, wrong_parts = loss_fn(outputs_with({p: ([0.0, 0, 8, 8], 0) for p in centre}), targets)
    assert wrong > good and wrong_parts["box"] > 1.0 and wrong_parts["cls"] > parts["cls"]


def test_gradients_flow_and_empty_images_only_learn_objectness():
    maps = [m.requires_grad_() for m in outputs_with({})]
    loss, parts = YOLOXLoss(STRIDES, K)(maps, torch.zeros(0, 6))
    assert parts["box"] == 0 and parts["cls"] == 0 and parts["obj"] > 0
    loss.backward()
    assert maps[0].grad[:, 4].abs().sum() > 0 and maps[0].grad[:, 5:].abs().sum() == 0


def test_ciou_option_and_bad_option():
    box = [16.0, 16.0, 48.0, 48.0]
    targets = torch.tensor([[0.0, 1, *box]])
    maps = outputs_with({27: ([18.0, 14.0, 50.0, 44.0], 1)})
    _, iou_parts = YOLOXLoss(STRIDES, K)(maps, targets)
    _, ciou_parts = YOLOXLoss(STRIDES, K, box_loss="ciou")(maps, targets)
    assert 0 < iou_parts["box"] and 0 < ciou_parts["box"] and iou_parts["box"] != ciou_parts["box"]
    with pytest.raises(ValueError, match="box_loss"):
        YOLOXLoss(STRIDES, K, box_loss="giou")


def test_yolox_cpu_nano_is_registered_and_trains_through_make_experiment():
    from yolo_teach.experiment import make_experiment
    from yolo_teach.registry import get_spec

    spec = get_spec("yolox-cpu-nano")
    assert spec.anchors is None and spec.default_rule == "simota" and spec.img_size == 128
    exp = make_experiment("yolox-cpu-nano", "shapes", n_train=16, n_val=8, epochs=1, seed=0,
                          batch_size=8, augment="none", progress=False)
    assert isinstance(exp.detector.criterion, YOLOXLoss)
    history = exp.trainer.fit()
    assert history[-1]["iteration"] == 2 and math.isfinite(history[-1]["train_loss"])
    preds = exp.detector.predict_dataset(exp.trainer.val_data)
    assert len(preds) == 8 and preds[0]["boxes"].shape[1] == 4


def test_final_phase_turns_mosaic_off_and_l1_on_from_an_epoch_boundary():
    """YOLOX's last epochs (TrainConfig.final_phase): 4 epochs of 2 steps, the last half in the
    final phase -> epochs 3 and 4 train without Mosaic and with the L1 term."""
    from yolo_teach.experiment import make_experiment

    exp = make_experiment("yolox-cpu-nano", "shapes", n_train=16, n_val=4, epochs=4, seed=0,
                          batch_size=8, augment="full", progress=False, val_every=0,
                          final_phase=0.5)
    assert exp.trainer.final_phase_at == 4
    assert exp.trainer.train_data.augment.mosaic == 1.0 and not exp.detector.criterion.use_l1
    history = exp.trainer.fit()
    assert [row["final_phase"] for row in history] == [False, False, True, True]
    assert exp.trainer.train_data.augment.mosaic == 0.0
    assert exp.detector.criterion.use_l1
    assert all(math.isfinite(row["train_l1"]) for row in history)
    assert history[0]["train_l1"] == 0.0 and history[-1]["train_l1"] > 0.0


def test_final_phase_off_by_default():
    from yolo_teach.train import TrainConfig

    assert TrainConfig().final_phase == 0.0


def test_topk_sets_how_many_ious_make_dynamic_k(monkeypatch):
    import yolo_teach.losses.yolox_loss as module

    seen, real = [], module.simota_assign

    def spy(*args, **kwargs):
        res = real(*args, **kwargs)
        seen.append(int(res.dynamic_k[0]))
        return res

    monkeypatch.setattr(module, "simota_assign", spy)
    box = [16.0, 16.0, 48.0, 48.0]
    points, _ = anchor_points(SIZES, STRIDES)
    inside = [p for p in range(64) if all(16 < v < 48 for v in points[p].tolist())]
    assert len(inside) == 16  # 16 stride-8 points, each predicting the box (IoU 1)
    maps = outputs_with({p: (box, 1) for p in inside})
    for topk in (2, 10):
        YOLOXLoss(STRIDES, K, topk=topk)(maps, torch.tensor([[0.0, 1, *box]]))
    assert seen[0] in (1, 2) and seen[1] in (9, 10)  # the sum of the top-k IoUs, about k
    assert YOLOXLoss(STRIDES, K).topk == 10  # the official n_candidate_k
