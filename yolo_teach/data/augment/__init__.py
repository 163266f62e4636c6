"""Box-safe data augmentation: geometric, photometric and multi-image (Mosaic, MixUp, CutMix).

Every transform is a pure function of a *sample* ``(image, boxes, labels)``:

- ``image``: ``(H, W, 3)`` uint8 RGB,
- ``boxes``: ``(N, 4)`` float32 ``xyxy`` in pixels of that image,
- ``labels``: ``(N,)`` int64 class ids,

plus an explicit ``rng: np.random.Generator`` for the random ones. Inputs are never modified; a new
sample is returned. The same generator state gives the same output arrays.

After every geometric transform the boxes go through :func:`filter_boxes`, so the contract is:
every output box lies inside the output canvas with positive area, and the output labels are a
sub-multiset of the input labels (a box and its label are kept or dropped together).

Where the ideas come from:

- photometric and geometric distortion, MixUp, CutMix: YOLOv4 §2.2 (bag of freebies);
- Mosaic (four images in one) and CutMix for the detector: YOLOv4 §3.3;
- the photometric set of the face-mask study (seed 001): blur up to 2 px, exposure ±50 %,
  brightness ±40 %; its darknet cfg: ``saturation=1.5 exposure=1.5 hue=.1 mosaic=1``;
- MixUp: Zhang et al., "mixup: Beyond Empirical Risk Minimization" (2018);
- CutMix: Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers..." (2019);
- the affine warp with one 3x3 matrix and the box-candidate filter: Ultralytics YOLOv5
  (``random_perspective``, ``box_candidates``), reimplemented here.
"""

from yolo_teach.data.augment.core import FILL, Sample, filter_boxes
from yolo_teach.data.augment.geometric import (
    affine_matrix,
    hflip,
    letterbox,
    random_affine,
    resize_keep_aspect,
    transform_boxes,
    unletterbox_boxes,
)
from yolo_teach.data.augment.mixing import cutmix, mixup, mosaic, mosaic_layout
from yolo_teach.data.augment.photometric import blur, brightness_exposure, hsv_jitter
from yolo_teach.data.augment.pipeline import Augment, Transform, compose

__all__ = [
    "Augment",
    "FILL",
    "Sample",
    "Transform",
    "affine_matrix",
    "blur",
    "brightness_exposure",
    "compose",
    "cutmix",
    "filter_boxes",
    "hflip",
    "hsv_jitter",
    "letterbox",
    "mixup",
    "mosaic",
    "mosaic_layout",
    "random_affine",
    "resize_keep_aspect",
    "transform_boxes",
    "unletterbox_boxes",
]
