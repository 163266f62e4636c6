"""The training dataset: letterbox, augment, and batch images with their boxes for a detector.

:class:`DetectionDataset` turns any indexable source of ``(image, boxes, labels)`` (a
:class:`~yolo_teach.data.core.BoxDataset`, or anything with ``__len__`` and ``__getitem__``) into
tensors of one size:

- ``image``: ``(3, S, S)`` float32 RGB in ``[0, 1]``,
- ``targets``: ``(N, 6)`` float32 rows ``[batch_index, class, x1, y1, x2, y2]``, boxes ``xyxy`` in
  pixels of the ``S x S`` network input; ``batch_index`` is 0 in a single item and filled in by
  :func:`collate_detections` (the YOLOv5 convention: one flat tensor per batch, no padding).

Augmentation is random but reproducible: the generator of item ``i`` in epoch ``e`` is
``np.random.default_rng([seed, e, i])``, so a resumed run sees the same samples, whatever the
number of workers or the order in which they ask for items.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from yolo_teach.data.augment import (
    Augment,
    Sample,
    filter_boxes,
    letterbox,
    resize_keep_aspect,
)


class DetectionDataset(Dataset):
    """Letterboxed (and optionally augmented) training samples of a detection dataset.

    Args:
        source: ``len(source)`` and ``source[i] -> (image (H, W, 3) uint8 RGB, boxes (N, 4)
            xyxy pixels, labels (N,))``; a ``BoxDataset`` fits.
        img_size: side ``S`` of the square network input (a multiple of the largest stride).
        augment: an :class:`~yolo_teach.data.augment.Augment` (``True`` for its defaults), or
            ``None``/``False`` for plain letterboxing (validation).
        cache: keep each image once resized to long side ``S`` (the expensive half of the
            letterbox) in memory; padding and augmentation still run on every access.
        seed: base seed of the per-item generators.

    Items are ``(image (3, S, S) float32 in [0, 1], targets (N, 6) float32)``, see the module
    docstring. Call :meth:`set_epoch` at the start of every epoch to draw new augmentations;
    with ``DataLoader(num_workers > 0)`` do it before the loader's iterator is created (and do
    not use ``persistent_workers``, whose copies of the dataset would keep the old epoch).
    """

    def __init__(
        self,
        source,
        img_size: int = 320,
        augment: Augment | bool | None = None,
        cache: bool = False,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.img_size = int(img_size)
        self.augment = Augment() if augment is True else (augment or None)
        self.cache = cache
        self.seed = int(seed)
        self.epoch = 0
        self._cache: list[Sample | None] = [None] * len(source)

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentations :meth:`__getitem__` will draw."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """Generator of item ``index`` in the current epoch: ``default_rng([seed, epoch, i])``."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def load_resized(self, index: int) -> Sample:
        """Image ``index`` resized so its long side is ``S`` (aspect kept), with its boxes.

        Boxes that the resize leaves degenerate are dropped with their labels. Cached when
        ``cache`` is on; the cached arrays are never handed out, only copies.
        """
        cached = self._cache[index]
        if cached is None:
            image, boxes, labels = self.source[index]
            h, w = np.asarray(image).shape[:2]
            image, boxes, r = resize_keep_aspect(np.asarray(image), boxes, self.img_size)
            # clip to the exact extent r W x r H, not the rounded pixel size, so that
            # unletterbox_boxes gives the source boxes back
            cached = (image, *filter_boxes(boxes, labels, w * r, h * r, min_size=0.0))
            if self.cache:
                self._cache[index] = cached
        image, boxes, labels = cached
        return image.copy(), boxes.copy(), labels.copy()

    def letterbox_params(self, index: int) -> tuple[float, tuple[float, float], tuple[int, int]]:
        """``(r, (p_x, p_y), (H, W))`` mapping image ``index`` to the un-augmented network input.

        Predictions on that input go back to the original image with
        ``unletterbox_boxes(boxes, r, (p_x, p_y), shape=(H, W))``.
        """
        image = np.asarray(self.source[index][0])
        h, w = image.shape[:2]
        r = self.img_size / max(h, w)
        new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
        pad = (float((self.img_size - new_w) // 2), float((self.img_size - new_h) // 2))
        return r, pad, (h, w)

    def sample(self, index: int) -> Sample:
        """Item ``index`` as numpy ``(image (S, S, 3) uint8, boxes (N, 4), labels (N,))``."""
        if self.augment is None:
            image, boxes, labels = self.load_resized(index)
            image, boxes, _, _ = letterbox(image, boxes, self.img_size)
            boxes, labels = filter_boxes(
                boxes, labels, self.img_size, self.img_size, min_size=0.0, min_area_ratio=0.0
            )
            return image, boxes, labels
        return self.augment(self.load_resized, index, len(self), self.img_size, self.rng(index))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, boxes, labels = self.sample(index)
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (3, S, S)
        targets = torch.zeros((len(boxes), 6), dtype=torch.float32)  # (N, 6)
        targets[:, 1] = torch.from_numpy(labels.astype(np.float32))
        targets[:, 2:] = torch.from_numpy(boxes.astype(np.float32))
        return image.float().div_(255), targets


def collate_detections(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack images and concatenate targets, writing each row's image index in column 0.

    Args:
        batch: ``B`` items ``(image (3, S, S), targets (N_b, 6))``.

    Returns:
        ``(images (B, 3, S, S), targets (sum N_b, 6))`` with rows ``[b, class, x1, y1, x2, y2]``.
    """
    images = torch.stack([image for image, _ in batch])  # (B, 3, S, S)
    targets = []
    for b, (_, t) in enumerate(batch):
        t = t.clone()
        t[:, 0] = b
        targets.append(t)
    return images, torch.cat(targets) if targets else torch.zeros((0, 6))


def epoch_order(n: int, seed: int) -> list[int]:
    """The order in which an epoch visits ``n`` training images: a permutation drawn from a
    generator seeded with ``seed``.

    NOTE: two 64-bit numbers are drawn and dropped first. The loop used to hand
    ``DataLoader(shuffle=True, generator=...)`` to ``tqdm.auto``, which made two iterators,
    each drawing the loader's base seed before the permutation; keeping those draws keeps
    every earlier run's order, so results stay bit-identical.
    """
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator).tolist()
