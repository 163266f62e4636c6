"""Building blocks shared by the detectors: one vocabulary for every version.

- :mod:`~yolo_teach.layers.conv`: ``ConvBNAct``, Darknet's leaky ReLU, the residual block,
  reorg, the stride-1 max-pool, the objectness bias initialisation;
- :mod:`~yolo_teach.layers.darknet`: Darknet-53's residual stages and YOLOv3's conv sets;
- :mod:`~yolo_teach.layers.heads`: the anchor head (3x3 conv, linear 1x1 conv per scale).

Models import their blocks from here, never from another model file.
"""

from yolo_teach.layers.conv import (
    ConvBNAct,
    DarknetLeaky,
    DarknetResidual,
    MaxPoolStride1,
    Reorg,
    init_objectness_bias_,
)
from yolo_teach.layers.darknet import ConvSet, DarknetStage
from yolo_teach.layers.heads import AnchorHead

__all__ = [
    "AnchorHead",
    "ConvBNAct",
    "ConvSet",
    "DarknetLeaky",
    "DarknetResidual",
    "DarknetStage",
    "MaxPoolStride1",
    "Reorg",
    "init_objectness_bias_",
]
