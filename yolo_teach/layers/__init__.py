"""Building blocks shared by the detectors: one vocabulary for every version.

- :mod:`~yolo_teach.layers.conv`: ``ConvBNAct``, Darknet's leaky ReLU, the residual block,
  reorg, the stride-1 max-pool, the objectness bias initialisation;
- :mod:`~yolo_teach.layers.darknet`: Darknet-53's residual stages and YOLOv3's conv sets;
- :mod:`~yolo_teach.layers.heads`: the anchor head (3x3 conv, linear 1x1 conv per scale) and
  YOLOX's decoupled anchor-free head;
- :mod:`~yolo_teach.layers.activations`: Mish and its memory-saving twin (YOLOv4 §3.4);
- :mod:`~yolo_teach.layers.csp`: cross-stage-partial stages and blocks (CSPNet, YOLOv4 §3.1);
- :mod:`~yolo_teach.layers.c3`: YOLOv5's C3 (YOLOX's CSPLayer), its bottleneck, DWConv;
- :mod:`~yolo_teach.layers.pan`: the PANet neck of YOLOv5 and YOLOX;
- :mod:`~yolo_teach.layers.cspdarknet`: YOLOX's backbone (Focus, SPP bottleneck, CSPDarknet);
- :mod:`~yolo_teach.layers.nonlocal_block`: the non-local block and the multi-scale feature
  fusion of the improved YOLOX (seed 004 eq. 5-7);
- :mod:`~yolo_teach.layers.spp`: SPP(5, 9, 13) and SPPF (YOLOv4 §3.4);
- :mod:`~yolo_teach.layers.attention`: YOLOv4's point-wise SAM (§3.4), SE, CBAM, and context
  managers that record their maps or switch them off;
- :mod:`~yolo_teach.layers.regularization`: DropBlock and class label smoothing (§3.4);
- :mod:`~yolo_teach.layers.res2net` and :mod:`~yolo_teach.layers.light_head`: RefineDetLite's
  Res2NetLite blocks and its Light-head detection part and feature fusion (§3.2-3.3).

Models import their blocks from here, never from another model file.
"""

from yolo_teach.layers.activations import MemoryEfficientMish, Mish, activation_cost
from yolo_teach.layers.attention import CBAM, SAM, SE, attention_off, record_attention
from yolo_teach.layers.c3 import C3, Bottleneck, DWConv
from yolo_teach.layers.conv import (
    ConvBNAct,
    DarknetLeaky,
    DarknetResidual,
    MaxPoolStride1,
    Reorg,
    init_objectness_bias_,
)
from yolo_teach.layers.csp import ChannelSplit, CSPBlock, CSPStage, TinyCSPBlock
from yolo_teach.layers.cspdarknet import CSPDarknet, Focus, SPPBottleneck
from yolo_teach.layers.darknet import ConvSet, DarknetStage
from yolo_teach.layers.heads import AnchorHead, DecoupledHead
from yolo_teach.layers.nonlocal_block import NonLocalBlock, NonLocalFusion
from yolo_teach.layers.pan import PANet
from yolo_teach.layers.regularization import DropBlock2d, smooth_labels
from yolo_teach.layers.spp import SPP, SPPF

__all__ = [
    "C3",
    "PANet",
    "CBAM",
    "SAM",
    "SE",
    "SPP",
    "SPPF",
    "AnchorHead",
    "DecoupledHead",
    "Bottleneck",
    "DWConv",
    "CSPBlock",
    "CSPStage",
    "CSPDarknet",
    "Focus",
    "NonLocalBlock",
    "NonLocalFusion",
    "SPPBottleneck",
    "ChannelSplit",
    "DropBlock2d",
    "MemoryEfficientMish",
    "Mish",
    "TinyCSPBlock",
    "activation_cost",
    "attention_off",
    "record_attention",
    "smooth_labels",
    "ConvBNAct",
    "ConvSet",
    "DarknetLeaky",
    "DarknetResidual",
    "DarknetStage",
    "MaxPoolStride1",
    "Reorg",
    "init_objectness_bias_",
]
