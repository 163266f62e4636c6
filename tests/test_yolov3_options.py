"""The YOLOv3 options the nano model uses keep the network's data flow (strides, outputs)."""

import pytest
import torch
from torch import nn

from yolo_teach.models.yolov3 import ConvSet, YOLOv3, YOLOv3Config


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_conv_set_depth_alternates_1x1_and_3x3(depth):
    block = ConvSet(12, 8, depth)
    kernels = [m.kernel_size[0] for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [1, 3, 1, 3, 1][:depth]
    assert block(torch.zeros(1, 12, 5, 5)).shape == (1, 8, 5, 5)


def test_conv_set_rejects_even_depth():
    with pytest.raises(ValueError, match="1, 3 or 5"):
        ConvSet(12, 8, 2)


def test_stride_two_stem_keeps_the_output_strides():
    small = dict(num_classes=2, stem_channels=4, channels=(4, 8, 8, 8, 8), depths=(1,) * 5)
    x = torch.zeros(1, 3, 64, 64)
    for stem_stride in (1, 2):
        model = YOLOv3(YOLOv3Config(stem_stride=stem_stride, neck_depth=1, **small)).eval()
        assert [o.shape[-1] for o in model(x)] == [8, 4, 2]
    assert YOLOv3(YOLOv3Config(stem_stride=2, **small)).backbone.stem.conv.stride == (2, 2)
