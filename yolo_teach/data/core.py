"""The in-memory detection dataset every generator returns and every format reads and writes,
and the one loop that fills it from a scene renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from yolo_teach.data.backgrounds import image_rng


@dataclass
class BoxDataset:
    """Images with their boxes and labels, all in memory.

    Attributes:
        images: list of ``(H, W, 3)`` uint8 RGB arrays (sizes may differ between images).
        boxes: list of ``(N, 4)`` float32 arrays, ``xyxy`` in pixels of the matching image.
        labels: list of ``(N,)`` int64 arrays, class ids in ``[0, len(class_names))``.
        class_names: the name of each class id.
        names: a file stem per image (used when the dataset is written to disk).
        meta: extras; a list with one entry per image (e.g. the HU slices of a CT dataset)
            follows its image through :meth:`subset`, anything else is shared.
    """

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: list[str]
    names: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.boxes) == len(self.labels)):
            raise ValueError(
                f"images, boxes and labels differ in length: "
                f"{len(self.images)}, {len(self.boxes)}, {len(self.labels)}"
            )
        if not self.names:
            width = max(4, len(str(len(self.images))))
            self.names = [f"{i:0{width}d}" for i in range(len(self.images))]
        self.boxes = [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in self.boxes]
        self.labels = [np.asarray(lab, dtype=np.int64).reshape(-1) for lab in self.labels]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(image, boxes, labels)`` of image ``i``."""
        return self.images[i], self.boxes[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices) -> BoxDataset:
        """A new dataset with the images at ``indices`` (per-image meta lists are indexed too)."""
        idx = list(indices)
        meta = {k: [v[i] for i in idx] if isinstance(v, list) and len(v) == len(self) else v
                for k, v in self.meta.items()}
        return BoxDataset(
            images=[self.images[i] for i in idx],
            boxes=[self.boxes[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            class_names=list(self.class_names),
            names=[self.names[i] for i in idx],
            meta=meta,
        )

    def targets(self) -> list[dict]:
        """Ground truth as the list of ``{"boxes", "labels"}`` dicts that the metrics take."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(self.boxes, self.labels)]


def build_dataset(
    render: Callable[[np.random.Generator], tuple],
    n: int,
    seed: int,
    class_names,
    *,
    start: int = 0,
    progress: bool = False,
    desc: str | None = None,
    meta: dict | None = None,
) -> BoxDataset:
    """Images ``start, ..., start + n - 1`` of a synthetic dataset, image ``i`` rendered by
    ``render(image_rng(seed, i))``.

    Image ``i`` depends only on ``(seed, i)``, so chunks made with ``start = 0, k, 2k, ...`` hold
    the same images, boxes and names as one call for the whole range.

    Args:
        render: draws one scene from its generator and returns ``(image, boxes, labels)`` or
            ``(image, boxes, labels, extra)``, where ``extra`` is a dict of per-image values
            (e.g. a CT slice's HU) collected into lists ``meta[key]``, one entry per image.
        n: number of images.
        seed: dataset seed.
        class_names: the name of each class id.
        start: index of the first image; names are the global index ``i``, zero-padded to
            ``max(4, digits of start + n)``.
        progress: show a tqdm progress bar (titled ``desc``).
        meta: entries shared by the whole dataset (e.g. the generator's name and seed).
    Returns:
        a ``BoxDataset`` of ``n`` images.
    """
    images, boxes, labels, extras = [], [], [], {}
    indices = range(start, start + n)
    for i in tqdm(indices, desc=desc, unit="img", disable=not progress):
        image, b, lab, *extra = render(image_rng(seed, i))
        images.append(image)
        boxes.append(b)
        labels.append(lab)
        for key, value in (extra[0] if extra else {}).items():
            extras.setdefault(key, []).append(value)
    width = max(4, len(str(start + n)))
    names = [f"{i:0{width}d}" for i in indices]
    return BoxDataset(images, boxes, labels, list(class_names), names=names,
                      meta={**(meta or {}), **extras})  # fmt: skip
