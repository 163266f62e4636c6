"""Class imbalance seen from the data side: how many boxes and images each class has, and
repeat-factor sampling, which shows the images of rare classes more often.

Seed 001's face masks have 3232 ``mask``, 717 ``no_mask`` and 123 ``mask_incorrect`` faces; a
detector trained on them sees the rare class in few batches. Two remedies act on the data or
on the loss: repeat the images that hold rare classes (here), or weigh the rare classes' loss
more (``class_weights`` of :class:`~yolo_teach.losses.YOLOLoss`).

**Repeat-factor sampling** (Gupta, Dollár & Girshick, "LVIS: A Dataset for Large Vocabulary
Instance Segmentation", CVPR 2019, the sampling of its baselines): with :math:`f_c` the fraction
of training images that contain class ``c`` and a threshold ``t``,

.. math:: r_c = \\max\\left(1, \\sqrt{t / f_c}\\right), \\qquad r_i = \\max_{c \\in i} r_c

and image ``i`` is shown :math:`r_i` times per epoch (an image without boxes: once). Classes in
at least a fraction ``t`` of the images are not repeated; a class in ``t / 4`` of them is
repeated twice.
"""

from __future__ import annotations

import numpy as np

from yolo_teach.data.core import BoxDataset


def box_counts(dataset: BoxDataset) -> np.ndarray:
    """``(K,)`` number of boxes of each class."""
    labels = np.concatenate([np.zeros(0, np.int64), *dataset.labels])
    return np.bincount(labels, minlength=dataset.num_classes)


def image_counts(dataset: BoxDataset) -> np.ndarray:
    """``(K,)`` number of images that contain at least one box of each class."""
    counts = np.zeros(dataset.num_classes, np.int64)
    for labels in dataset.labels:
        counts[np.unique(labels)] += 1
    return counts


def repeat_factors(dataset: BoxDataset, threshold: float) -> np.ndarray:
    """``(N,)`` LVIS repeat factors :math:`r_i = \\max_{c \\in i} \\max(1, \\sqrt{t / f_c})` of
    the images (1 for an image without boxes); ``threshold`` is ``t``, a fraction of images."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    f = image_counts(dataset) / max(len(dataset), 1)  # (K,) fraction of images with class c
    r_class = np.maximum(1.0, np.sqrt(threshold / np.maximum(f, 1e-12)))  # (K,)
    return np.array([r_class[np.unique(labels)].max() if len(labels) else 1.0
                     for labels in dataset.labels])  # (N,)


def repeat_factor_sample(dataset: BoxDataset, threshold: float, seed: int = 0) -> BoxDataset:
    """A dataset in which image ``i`` appears :math:`r_i` times (:func:`repeat_factors`).

    A fractional :math:`r_i` is rounded at random, up with probability its fractional part
    (so that the expected count is :math:`r_i`), by a generator seeded with ``seed``: the same
    arguments give the same dataset. Copies follow their image, named ``NAME~1``, ``NAME~2``...
    so that names stay unique; per-image ``meta`` lists are repeated with the images.

    # NOTE(paper): LVIS draws the rounding anew every epoch; we draw it once, so an image with
    # r = 1.5 is shown once or twice in every epoch of a run, and a run's data is one list.
    """
    r = repeat_factors(dataset, threshold)  # (N,)
    rng = np.random.default_rng(seed)
    whole = np.floor(r)
    repeats = (whole + (rng.random(len(r)) < r - whole)).astype(np.int64)  # (N,) >= 1
    indices = np.repeat(np.arange(len(dataset)), repeats)  # copies next to their image
    out = dataset.subset(indices)
    copy = np.concatenate([np.arange(k) for k in repeats]) if len(repeats) else np.zeros(0, int)
    out.names = [name if k == 0 else f"{name}~{k}" for name, k in zip(out.names, copy)]
    return out
