"""C3 / CSPLayer, Bottleneck and DWConv: widths and counts of the official codes."""

import torch

from yolo_teach.layers.c3 import C3, Bottleneck, DWConv


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_c3_counts_match_yolov5s():
    # yolov5s.yaml layers 2 and 4 (models/yolo.py summary at v7.0): C3(64, 64, 1), C3(128, 128, 2)
    assert count(C3(64, 64, 1)) == 18_816
    assert count(C3(128, 128, 2)) == 115_712
    assert C3(64, 64)(torch.rand(1, 64, 8, 8)).shape == (1, 64, 8, 8)


def test_bottleneck_shortcut_and_depthwise():
    x = torch.rand(2, 16, 8, 8)
    residual, plain = Bottleneck(16, 16, True), Bottleneck(16, 16, False)
    assert residual.add and not plain.add and not Bottleneck(16, 32, True).add
    plain.load_state_dict(residual.state_dict())
    torch.testing.assert_close(residual(x) - plain(x), x)
    dw = DWConv(16, 32, 3, 2)
    assert dw(x).shape == (2, 32, 4, 4)
    assert count(dw) == 16 * 9 + 2 * 16 + 16 * 32 + 2 * 32  # depth-wise + BN, point-wise + BN
    assert isinstance(Bottleneck(16, 16, depthwise=True).cv2, DWConv)
