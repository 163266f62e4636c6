"""Pipelines: chain single-sample transforms, and the YOLOv4/v5 training recipe as one dataclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from yolo_teach.data.augment.core import Sample, filter_boxes
from yolo_teach.data.augment.geometric import hflip, letterbox, random_affine
from yolo_teach.data.augment.mixing import cutmix, mixup, mosaic
from yolo_teach.data.augment.photometric import blur, brightness_exposure, hsv_jitter

Transform = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], Sample]
"""A single-sample transform ``t(image, boxes, labels, rng) -> sample``."""


def compose(*transforms: Transform) -> Transform:
    """Chain single-sample transforms ``t(image, boxes, labels, rng) -> sample`` left to right.

    Bind hyper-parameters with ``functools.partial``, e.g.
    ``compose(partial(random_affine, degrees=10), hsv_jitter, partial(hflip, p=0.5))``.
    """

    def pipeline(image, boxes, labels, rng):
        sample = (image, boxes, labels)
        for transform in transforms:
            sample = transform(*sample, rng)
        return sample

    return pipeline


@dataclass(frozen=True)
class Augment:
    """The training-time augmentation of a detector, with its probabilities and magnitudes.

    One call builds a training sample of side ``size`` in this order (the YOLOv4/YOLOv5 recipe):

    1. geometric: with probability ``mosaic`` a :func:`mosaic` of the image and 3 random others,
       else the :func:`letterbox`-ed image; then :func:`random_affine`;
    2. with probability ``mixup`` a :func:`mixup` with a second geometric sample, else with
       probability ``cutmix`` a :func:`cutmix`;
    3. photometric: :func:`hsv_jitter`, :func:`brightness_exposure` (if non-zero),
       :func:`blur` with probability ``blur``;
    4. :func:`hflip` with probability ``fliplr``.

    Defaults are YOLOv5's ``hyp.scratch-low`` values (mosaic always, no rotation or shear).
    Use ``Augment(mosaic=0, translate=0, scale=0, hsv_h=0, hsv_s=0, hsv_v=0, fliplr=0)`` for
    none at all.
    """

    mosaic: float = 1.0
    mixup: float = 0.0
    cutmix: float = 0.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    brightness: float = 0.0
    exposure: float = 0.0
    blur: float = 0.0
    blur_sigma: float = 2.0
    fliplr: float = 0.5

    def geometric(
        self,
        load: Callable[[int], Sample],
        index: int,
        num_images: int,
        size: int,
        rng: np.random.Generator,
    ) -> Sample:
        """Step 1: a mosaic (or the letterboxed image ``index``), then the random affine."""
        if rng.random() < self.mosaic:
            others = rng.integers(0, num_images, size=3)
            sample = mosaic([load(index)] + [load(int(i)) for i in others], size, rng)
        else:
            image, boxes, labels = load(index)
            image, boxes, _, _ = letterbox(image, boxes, size)
            sample = (image, *filter_boxes(boxes, labels, size, size, min_size=0.0))
        return random_affine(
            *sample,
            rng,
            degrees=self.degrees,
            translate=self.translate,
            scale=self.scale,
            shear=self.shear,
        )

    def __call__(
        self,
        load: Callable[[int], Sample],
        index: int,
        num_images: int,
        size: int,
        rng: np.random.Generator,
    ) -> Sample:
        """Build the augmented sample of image ``index``.

        Args:
            load: ``load(i) -> (image, boxes, labels)`` of dataset image ``i`` (any size).
            index: the image this sample is about.
            num_images: dataset length, for drawing the extra images of mosaic/mixup/cutmix.
            size: output side ``s``.
            rng: random generator; the same state gives the same sample.

        Returns:
            ``(image (s, s, 3) uint8, boxes (N, 4) float32 xyxy, labels (N,) int64)``.
        """
        sample = self.geometric(load, index, num_images, size, rng)
        if rng.random() < self.mixup:
            other = self.geometric(load, int(rng.integers(num_images)), num_images, size, rng)
            sample = mixup(sample, other, rng)
        elif rng.random() < self.cutmix:
            other = self.geometric(load, int(rng.integers(num_images)), num_images, size, rng)
            sample = cutmix(sample, other, rng)
        if self.hsv_h or self.hsv_s or self.hsv_v:
            sample = hsv_jitter(*sample, rng, self.hsv_h, self.hsv_s, self.hsv_v)
        if self.brightness or self.exposure:
            sample = brightness_exposure(*sample, rng, self.brightness, self.exposure)
        if rng.random() < self.blur:
            sample = blur(*sample, rng, self.blur_sigma)
        return hflip(*sample, rng, p=self.fliplr)
