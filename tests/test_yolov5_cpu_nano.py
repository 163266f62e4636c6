"""The 128 px CPU variant of YOLOv5n (notebook 11's live run): what it changes and what it keeps."""

import torch
from torch import nn

from yolo_teach.detectors import build_detector
from yolo_teach.experiment import short_run
from yolo_teach.layers.heads import AnchorHead
from yolo_teach.models.summary import count_parameters
from yolo_teach.models.yolov5 import Detect, YOLOv5CPUNano, yolov5_cpu_nano, yolov5n
from yolo_teach.registry import get_spec


def test_same_backbone_and_neck_as_yolov5n_no_pooling_and_a_3x3_head():
    cpu, n = yolov5_cpu_nano(3), yolov5n(3)
    assert isinstance(cpu, YOLOv5CPUNano) and isinstance(n.head, Detect)
    assert count_parameters(cpu.backbone) == count_parameters(n.backbone)
    assert count_parameters(cpu.neck) == count_parameters(n.neck)
    assert cpu.backbone.sppf.pool.pool.kernel_size == 1  # a 1 x 1 window: no pooling
    assert n.backbone.sppf.pool.pool.kernel_size == 5  # yolov5n itself is unchanged
    assert isinstance(cpu.head, AnchorHead)
    # per scale: 3x3 conv C -> 2C (+ BN), then 1x1 2C -> A (5 + K) with bias; C = 64, 128, 256
    head = sum(9 * c * 2 * c + 2 * 2 * c + 2 * c * 24 + 24 for c in (64, 128, 256))
    assert count_parameters(cpu.head) == head
    assert count_parameters(cpu) == count_parameters(n) - count_parameters(n.head) + head
    bn = [m for m in cpu.neck.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.03 and m.eps == 1e-3 for m in bn)  # YOLOv5's, as in yolov5n


def test_outputs_objectness_prior_and_registration():
    cpu = yolov5_cpu_nano(3).eval()
    with torch.no_grad():
        outputs = cpu(torch.rand(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(2, 24, 16, 16), (2, 24, 8, 8), (2, 24, 4, 4)]
    bias = cpu.head.branches[0][-1].bias.view(3, 8)  # (A, 5 + K)
    torch.testing.assert_close(bias[:, 4].sigmoid(), torch.full((3,), 0.01))
    spec = get_spec("yolov5-cpu-nano")
    assert spec.img_size == 128 and spec.default_rule == "neighbours"
    assert spec.anchors is get_spec("yolov5n").anchors
    assert short_run("yolov5-cpu-nano")["lr"] == 0.003 < short_run("yolov5n")["lr"]


def test_one_training_step_is_finite():
    torch.manual_seed(0)
    det = build_detector("yolov5-cpu-nano", 3, 128)
    targets = torch.tensor([[0.0, 2, 10, 20, 60, 90], [1.0, 0, 64, 64, 120, 100]])
    loss, terms = det.criterion(det.model(torch.rand(2, 3, 128, 128)), targets)
    loss.backward()
    assert torch.isfinite(loss) and set(terms) >= {"box", "obj", "cls"}
    assert all(torch.isfinite(p.grad).all() for p in det.model.parameters() if p.grad is not None)
