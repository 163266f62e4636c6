"""Building blocks shared by the detectors (see :mod:`yolo_teach.layers.conv`)."""

from yolo_teach.layers.conv import (
    ConvBNAct,
    DarknetLeaky,
    DarknetResidual,
    MaxPoolStride1,
    Reorg,
    init_objectness_bias_,
)

__all__ = [
    "ConvBNAct",
    "DarknetLeaky",
    "DarknetResidual",
    "MaxPoolStride1",
    "Reorg",
    "init_objectness_bias_",
]
