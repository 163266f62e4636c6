"""The YOLO detectors, one self-contained file per paper, and tools to measure them.

Every ``forward`` returns raw maps, in train and eval mode alike; decoding, losses and NMS live
in :mod:`yolo_teach.anchors`, :mod:`yolo_teach.losses` and :mod:`yolo_teach.nms`.

=================  ==========================================  ===============================
factory            network                                     output per image
=================  ==========================================  ===============================
``yolov1()``       paper net, 448 px, 20 classes                (7, 7, 30)
``yolov2()``       yolov2-voc.cfg, 416 px, 20 classes           (125, 13, 13)
``yolov2_tiny()``  yolov2-tiny-voc.cfg                          (125, 13, 13)
``yolov3()``       yolov3.cfg, 416 px, 80 classes               (255, 52|26|13, ...) strides 8-32
``yolov3_tiny()``  yolov3-tiny.cfg                              (255, 26|13, ...) strides 16, 32
``cspdarknet53()`` csdarknet53-omega.cfg classifier, 256 px       (1000,)
``yolov4()``       yolov4.cfg, 416 px, 80 classes               (255, 52|26|13, ...) strides 8-32
``yolov4_tiny()``  yolov4-tiny.cfg                              (255, 26|13, ...) strides 16, 32
``yolov5n()``...   yolov5{n,s,m,l,x}.yaml v6.0+, 640 px, 80    (255, 80|40|20, ...) strides 8-32
``yolov7()``...    yolov7{-tiny,,x}.yaml training, 640 px      (255, 80|40|20, ...) strides 8-32
``yolox_s()``...   YOLOX-S/M/L/X 640 px, Tiny/Nano 416 px       (85, 80|40|20, ...) strides 8-32
``refinedet*()``   RefineDet VGG16 / RefineDetLite, 320 px     ARM + ODM rows, one per anchor
``*_nano()``       same classes, thin and shallow, 128-256 px   same layout
=================  ==========================================  ===============================
"""

from yolo_teach.models.refinedet import (
    RefineDet,
    RefineDetConfig,
    refinedet320_vgg16,
    refinedet_anchors,
)
from yolo_teach.models.refinedet_lite import (
    RefineDetLite,
    RefineDetLiteConfig,
    refinedet_lite72,
    refinedet_lite_nano,
)
from yolo_teach.models.summary import (
    LayerRow,
    ModelSummary,
    count_flops,
    count_parameters,
    summary,
)
from yolo_teach.models.yolov1 import YOLOv1, YOLOv1Config, yolov1, yolov1_nano
from yolo_teach.models.yolov2 import (
    YOLOv2,
    YOLOv2Config,
    YOLOv2Tiny,
    YOLOv2TinyConfig,
    yolov2,
    yolov2_nano,
    yolov2_tiny,
)
from yolo_teach.models.yolov3 import (
    YOLOv3,
    YOLOv3Config,
    YOLOv3Tiny,
    YOLOv3TinyConfig,
    yolov3,
    yolov3_nano,
    yolov3_tiny,
)
from yolo_teach.models.yolov4 import (
    YOLOv4,
    YOLOv4Config,
    cspdarknet53,
    yolov4,
    yolov4_nano,
    yolov4_nano_mish,
)
from yolo_teach.models.yolov4_tiny import (
    YOLOv4Tiny,
    YOLOv4TinyConfig,
    yolov4_tiny,
    yolov4_tiny_nano,
)
from yolo_teach.models.yolov5 import (
    YOLOv5,
    YOLOv5Config,
    yolov5l,
    yolov5m,
    yolov5n,
    yolov5n_se_mish,
    yolov5s,
    yolov5x,
)
from yolo_teach.models.yolov7 import (
    YOLOv7,
    YOLOv7Config,
    yolov7,
    yolov7_tiny,
    yolov7_tiny_nano,
    yolov7_tiny_nano_aux,
    yolov7x,
)
from yolo_teach.models.yolox import (
    YOLOX,
    YOLOXConfig,
    decode_outputs,
    yolox_cpu_nano,
    yolox_cpu_nano_wide,
    yolox_l,
    yolox_m,
    yolox_nano,
    yolox_s,
    yolox_tiny,
    yolox_x,
)
from yolo_teach.models.yolox_improved import (
    YOLOXImproved,
    YOLOXImprovedConfig,
    yolox_improved_cpu_nano,
    yolox_improved_l,
    yolox_improved_s,
)

__all__ = [
    "LayerRow",
    "ModelSummary",
    "RefineDet",
    "RefineDetConfig",
    "RefineDetLite",
    "RefineDetLiteConfig",
    "YOLOv1",
    "YOLOv1Config",
    "YOLOv2",
    "YOLOv2Config",
    "YOLOv2Tiny",
    "YOLOv2TinyConfig",
    "YOLOv3",
    "YOLOv3Config",
    "YOLOv3Tiny",
    "YOLOv3TinyConfig",
    "YOLOv4",
    "YOLOv4Config",
    "YOLOv4Tiny",
    "YOLOv4TinyConfig",
    "YOLOX",
    "YOLOXConfig",
    "decode_outputs",
    "yolox_cpu_nano",
    "yolox_cpu_nano_wide",
    "yolox_l",
    "yolox_m",
    "yolox_nano",
    "yolox_s",
    "yolox_tiny",
    "yolox_x",
    "YOLOXImproved",
    "YOLOXImprovedConfig",
    "yolox_improved_cpu_nano",
    "yolox_improved_l",
    "yolox_improved_s",
    "count_flops",
    "cspdarknet53",
    "count_parameters",
    "summary",
    "refinedet320_vgg16",
    "refinedet_anchors",
    "refinedet_lite72",
    "refinedet_lite_nano",
    "yolov1",
    "yolov1_nano",
    "yolov2",
    "yolov2_nano",
    "yolov2_tiny",
    "yolov3",
    "yolov3_nano",
    "yolov3_tiny",
    "yolov4",
    "yolov4_nano",
    "yolov4_nano_mish",
    "yolov4_tiny",
    "yolov4_tiny_nano",
    "YOLOv5",
    "YOLOv5Config",
    "yolov5l",
    "yolov5m",
    "yolov5n",
    "yolov5n_se_mish",
    "yolov5s",
    "yolov5x",
    "YOLOv7",
    "YOLOv7Config",
    "yolov7",
    "yolov7_tiny",
    "yolov7_tiny_nano",
    "yolov7_tiny_nano_aux",
    "yolov7x",
]
