r"""Write the course's synthetic datasets to disk as YOLO, Pascal VOC or COCO.

    python scripts/make_datasets.py shapes --n 1000 --size 256 --seed 0 --format yolo \
        --out data/shapes
    python scripts/make_datasets.py face_masks --n 500 --format voc --out data/face_masks
    python scripts/make_datasets.py ct_lesions --n 200 --format coco --out data/ct_lesions
    python scripts/make_datasets.py --sample        # rewrite the samples in yolo_teach/assets/samples/

The images are those of ``make_shapes``, ``make_face_masks`` and ``make_ct_lesions`` (image ``i``
drawn with ``image_rng(seed, i)``), and the writers are deterministic, so the same arguments give
byte-identical files on every run. CT slices also get their Hounsfield units in
``hu/<name>.png``: 16-bit PNGs holding ``HU + 32768``, the convention of DeepLesion's PNG slices.
The whole dataset is held in memory while it is written (about ``n · 3 · size²`` bytes).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from yolo_teach import paths
from yolo_teach.data import (
    BoxDataset,
    make_ct_lesions,
    make_face_masks,
    make_shapes,
    write_coco,
    write_voc,
    write_yolo,
)

GENERATORS = {"shapes": make_shapes, "face_masks": make_face_masks, "ct_lesions": make_ct_lesions}
DEFAULT_SIZE = {"shapes": 256, "face_masks": 256, "ct_lesions": 512}
WRITERS = {"yolo": write_yolo, "voc": write_voc, "coco": write_coco}
HU_OFFSET = 32768  # DeepLesion stores HU + 32768 in uint16 PNGs
# The committed samples: (dataset, format, image indices of seed 0). Face image 5 is a crowd,
# CT slice 0 is an abdomen and slice 2 a thorax.
SAMPLES = (
    ("shapes", "yolo", tuple(range(8))),
    ("face_masks", "voc", (0, 1, 2, 5)),
    ("ct_lesions", "coco", (0, 2)),
)


def generate(name: str, indices, size: int, seed: int, progress: bool = True) -> BoxDataset:
    """The images ``indices`` of dataset ``name`` (CT: with ``meta["hu"]``): images
    ``0 .. max(indices)`` are made and the others dropped."""
    indices = list(indices)
    n = max(indices) + 1
    dataset = GENERATORS[name](n, size, seed=seed, progress=progress)
    return dataset if indices == list(range(n)) else dataset.subset(indices)


def write_hu(dataset: BoxDataset, out: Path) -> None:
    """Each CT slice's HU as ``hu/<name>.png``, uint16 ``HU + 32768`` (DeepLesion's convention);
    read back with ``cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.int32) - 32768``."""
    (out / "hu").mkdir(parents=True, exist_ok=True)
    for name, hu in zip(dataset.names, dataset.meta["hu"]):
        stored = (hu.astype(np.int32) + HU_OFFSET).astype(np.uint16)
        ok, data = cv2.imencode(".png", stored, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode the HU slice {name}")
        (out / "hu" / f"{name}.png").write_bytes(data.tobytes())


def write(dataset: BoxDataset, fmt: str, out: Path) -> None:
    """Write ``dataset`` in ``fmt`` to ``out`` (plus ``hu/`` for CT slices)."""
    WRITERS[fmt](dataset, out)
    if dataset.meta.get("hu"):
        write_hu(dataset, out)


def write_samples(out: Path, progress: bool = True) -> list[Path]:
    """Rewrite the committed samples: ``<out>/<dataset>_<format>/`` for each of ``SAMPLES``."""
    folders = []
    for name, fmt, indices in SAMPLES:
        folder = out / f"{name}_{fmt}"
        if folder.exists():
            shutil.rmtree(folder)  # only the sample folders this function owns
        write(generate(name, indices, DEFAULT_SIZE[name], seed=0, progress=progress), fmt, folder)
        folders.append(folder)
    return folders


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", nargs="?", choices=sorted(GENERATORS))
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side in px (default 256; 512 for ct_lesions)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--format", choices=sorted(WRITERS), default="yolo")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder, new or empty (default data/<dataset>)")
    parser.add_argument("--sample", action="store_true",
                        help="write the committed samples to --out (default: the package's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.sample == (args.dataset is not None):
        parser.error("give a dataset name, or --sample")
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.quiet
    if args.sample:
        for folder in write_samples(args.out or paths.samples(), progress):
            print(f"wrote {folder}")
        return 0
    out = args.out or Path("data") / args.dataset
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty; remove it or choose another --out", file=sys.stderr)
        return 1
    size = args.size or DEFAULT_SIZE[args.dataset]
    dataset = generate(args.dataset, range(args.n), size, args.seed, progress)
    write(dataset, args.format, out)
    boxes = sum(len(b) for b in dataset.boxes)
    print(f"wrote {len(dataset)} images, {boxes} boxes ({args.format}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
