"""Where training data comes from: a built-in generator by name, or a YOLO ``data.yaml`` on disk.

The command line (``yolo-teach train --data shapes``) and the benchmarks name their data this way.
Built-in generators make the training split with ``seed`` and the validation split with
``seed + VAL_SEED_OFFSET``, so the two never share an image.
"""

from __future__ import annotations

from pathlib import Path

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.ct_lesions import make_ct_lesions
from yolo_teach.data.errors import UserError
from yolo_teach.data.face_masks import make_face_masks
from yolo_teach.data.formats import read_yolo
from yolo_teach.data.shapes import make_shapes

GENERATORS = {"shapes": make_shapes, "face_masks": make_face_masks, "ct_lesions": make_ct_lesions}
DEFAULT_SIZES = {"shapes": 128, "face_masks": 256, "ct_lesions": 512}
VAL_SEED_OFFSET = 1_000


class DataNotFoundError(UserError, FileNotFoundError):
    """``data`` names neither a built-in dataset nor an existing path."""


def load_dataset(data: str | Path, split: str = "train", n: int | None = None,
                 size: int | None = None, seed: int = 0,
                 options: dict | None = None) -> BoxDataset:
    """A built-in dataset (``"shapes"``, ``"face_masks"``, ``"ct_lesions"``) or a ``data.yaml``.

    Args:
        data: generator name, or the path of an Ultralytics-style ``data.yaml`` (or a YOLO folder).
        split: ``"train"`` or ``"val"``.
        n: number of generated images (default 2000 for train, 200 for val); for a folder,
            keep the first ``n`` images.
        size: generated image side (default: 128 for shapes, 256 for face masks, 512 for CT).
        seed: generator seed of the training split.
        options: keyword arguments of a built-in generator, e.g. ``{"max_objects": 3}`` for
            :func:`~yolo_teach.data.shapes.make_shapes` (an error for a path).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if str(data) in GENERATORS:
        name = str(data)
        n = n if n is not None else (2000 if split == "train" else 200)
        size = size if size is not None else DEFAULT_SIZES[name]
        return GENERATORS[name](n, size=size, seed=seed + (VAL_SEED_OFFSET if split == "val" else 0),
                                **(options or {}))
    if options:
        raise ValueError(f"generator options {sorted(options)} need a built-in dataset "
                         f"{sorted(GENERATORS)}, not the path {str(data)!r}")
    path = Path(data)
    if not path.exists():
        raise DataNotFoundError(
            f"--data {str(data)!r} is neither a built-in dataset {sorted(GENERATORS)} nor a path")
    dataset = read_yolo(path, split=split)
    return dataset.subset(range(min(n, len(dataset)))) if n is not None else dataset
