"""The in-memory detection dataset every generator returns and every format reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
