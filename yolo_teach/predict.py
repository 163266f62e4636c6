"""Detections on image files, saved the way Ultralytics' ``predict`` saves them.

For every image ``NAME``, :func:`predict_to_folder` writes into ``out/``:

* ``NAME.png``: the image with its boxes, class names and scores drawn;
* ``labels/NAME.txt``: one line per detection, ``class cx cy w h conf``: the box centre and
  size divided by the image's width and height (YOLO's label format, so in ``[0, 1]``) and the
  confidence as a sixth column, as Ultralytics writes with ``save_conf=True``. An image without
  detections gets an empty file. Drop the last column to use the file as a training label
  (:func:`~yolo_teach.data.formats.read_yolo` reads five columns).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo_teach.boxes import xyxy_to_yolo
from yolo_teach.data.augment import letterbox, unletterbox_boxes
from yolo_teach.data.errors import ImageError, UserError
from yolo_teach.data.formats.common import IMAGE_SUFFIXES
from yolo_teach.data.sources import GENERATORS, load_dataset
from yolo_teach.detectors import Detector
from yolo_teach.viz.render import render_boxes

LOG = logging.getLogger("yolo_teach")


def image_sources(source: str | Path, n: int = 8) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, RGB image (H, W, 3) uint8)`` pairs from a folder of images, one image file, the
    validation images of a ``data.yaml``, or the first ``n`` validation images of a built-in
    dataset (``"shapes"``, ...).

    Raises:
        UserError: ``source`` is none of these, or a folder without images.
        ImageError: a single image file that cannot be read (in a folder, such files are
            skipped with a warning on the ``yolo_teach`` logger).
    """
    path = Path(source)
    if str(source) in GENERATORS:
        dataset = load_dataset(str(source), "val", n=n)
        yield from zip(dataset.names, dataset.images)
    elif path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        dataset = load_dataset(path, "val")
        yield from zip(dataset.names, dataset.images)
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"--source {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in "
                            f"this folder")
        for file in files:
            image = _read_rgb(file)
            if image is None:
                LOG.warning("skipping %s: not a readable image", file)
                continue
            yield file.stem, image
    elif path.is_file():
        image = _read_rgb(path)
        if image is None:
            raise ImageError("not a readable image", path)
        yield path.stem, image
    else:
        raise UserError(f"--source {str(source)!r}: no such file or folder, and not a built-in "
                        f"dataset {sorted(GENERATORS)}")


def _read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detect_image(detector: Detector, image: np.ndarray, conf_threshold: float = 0.25,
                 iou_threshold: float = 0.45) -> dict[str, np.ndarray]:
    """Detections on one RGB image: letterbox, predict, and map the boxes back.

    Returns:
        ``{"boxes" (N, 4) xyxy pixels of ``image``, "scores" (N,), "labels" (N,)}`` in numpy.
    """
    boxed, _, r, pad = letterbox(image, np.zeros((0, 4), np.float32), detector.img_size)
    tensor = torch.from_numpy(boxed.transpose(2, 0, 1).copy()).float().div(255)[None]
    device = next(detector.model.parameters()).device
    det = detector.predict(tensor.to(device), conf_threshold, iou_threshold)[0]
    boxes = unletterbox_boxes(det["boxes"].cpu().numpy(), r, pad, image.shape[:2])
    return {"boxes": boxes, "scores": det["scores"].cpu().numpy(),
            "labels": det["labels"].cpu().numpy()}


def yolo_label_lines(boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, width: int,
                     height: int) -> list[str]:
    """Lines ``class cx cy w h conf`` for ``xyxy`` pixel boxes of a ``width x height`` image,
    centre and size normalised; numbers with 6 significant digits (``%g``, as Ultralytics)."""
    cxcywh = xyxy_to_yolo(np.asarray(boxes, np.float64).reshape(-1, 4), width, height)  # (N, 4)
    return [" ".join([str(int(label)), *(f"{v:g}" for v in (*row, score))]) + "\n"
            for label, row, score in zip(labels, cxcywh, scores)]


def predict_to_folder(detector: Detector, class_names: list[str], images, out: str | Path,
                      conf_threshold: float = 0.25, iou_threshold: float = 0.45) -> list[dict]:
    """Detect on every ``(name, image)`` of ``images`` and write ``out/NAME.png`` and
    ``out/labels/NAME.txt`` (module docstring); returns one ``{"image", "labels", "count"}``
    per image."""
    out = Path(out)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in images:
        det = detect_image(detector, image, conf_threshold, iou_threshold)
        drawn = render_boxes(image, det["boxes"], det["labels"], det["scores"], class_names)
        image_path, label_path = out / f"{name}.png", out / "labels" / f"{name}.txt"
        if not cv2.imwrite(str(image_path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
            raise ImageError("OpenCV could not write the image", image_path)
        height, width = image.shape[:2]
        label_path.write_text("".join(yolo_label_lines(det["boxes"], det["labels"],
                                                       det["scores"], width, height)))
        written.append({"image": image_path, "labels": label_path, "count": len(det["boxes"])})
    return written
