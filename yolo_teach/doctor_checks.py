"""The detector doctor's label checks: one function per classic mistake of a YOLO label file.

Each takes the parsed :class:`LabelRow` s of :func:`yolo_teach.doctor.scan_labels` and returns a
:class:`~yolo_teach.doctor_report.Finding` or ``None``; :func:`yolo_teach.doctor.diagnose` runs
them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from yolo_teach.boxes import box_iou
from yolo_teach.data.errors import ImageError
from yolo_teach.data.formats.common import NORMALISED_TOLERANCE, _read_image
from yolo_teach.data.formats.yolo import _yolo_label_path
from yolo_teach.doctor_report import Finding

OUTSIDE_MARGIN = 0.01  # how far (in image widths/heights) a box may stick out before it counts
MIN_BOX_PIXELS = 2.0  # a box side below this, at the network input, cannot be learned
MIN_ASPECT = 1.2  # boxes at least this elongated vote in the swapped-wh check
OVERFIT_STEPS = 60  # steps of the overfit check: yolov3-nano memorises 8 images at 128 px
CONF_THRESHOLDS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5)
EXAMPLES = 3  # example (file, line) pairs per finding


@dataclass(frozen=True)
class LabelRow:
    """One label line with five numbers ``class cx cy w h``, as written, and where it is.

    ``image_size`` is the ``(W, H)`` of its image in pixels, ``None`` when it cannot be read.
    """

    path: Path
    line: int
    cls: float
    box: tuple[float, float, float, float]  # cx cy w h, as written
    image: Path
    image_size: tuple[int, int] | None

    @property
    def where(self) -> tuple[Path, int]:
        return (self.path, self.line)


@dataclass
class LabelScan:
    """Everything :func:`scan_labels` found: images, rows, and what could not be parsed."""

    images: list[Path]
    rows: list[LabelRow]
    malformed: list[tuple[Path, int | None, str]] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)  # label files that do not exist
    empty: list[Path] = field(default_factory=list)  # label files without a box
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # images
    class_names: list[str] | None = None
    val_images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _finding(code: str, severity: str, message: str, where: list) -> Finding:
    """A finding with the first :data:`EXAMPLES` places of ``where`` and its length as count."""
    return Finding(code, severity, message, list(where)[:EXAMPLES], len(where))


# ------------------------------------------------------------------------------------ checks
def _normalised(rows: list[LabelRow]) -> list[LabelRow]:
    """Rows whose centre is in [0, 1] and whose size is in (0, 1]: plausible YOLO boxes."""
    return [r for r in rows if 0 <= min(r.box[:2]) and max(r.box) <= 1 + NORMALISED_TOLERANCE
            and min(r.box[2:]) > 0]


def _sticks_out(cx, cy, w, h, margin: float = OUTSIDE_MARGIN) -> bool:
    return min(cx - w / 2, cy - h / 2) < -margin or max(cx + w / 2, cy + h / 2) > 1 + margin


def check_malformed(scan: LabelScan) -> Finding | None:
    """``malformed-line``: lines that are not five numbers (or files that are not text)."""
    if not scan.malformed:
        return None
    return _finding("malformed-line", "error", "label lines that are not five numbers 'class "
                    f"cx cy w h' (the first: {scan.malformed[0][2]}): fix or delete them.",
                    [(p, n) for p, n, _ in scan.malformed])


def check_empty_labels(scan: LabelScan) -> Finding | None:
    """``empty-labels``: images without a label file or with an empty one."""
    images = scan.missing + scan.empty
    if not images:
        return None
    share = len(images) / len(scan.images)
    return _finding(
        "empty-labels", "warning" if share > 0.1 else "info",
        f"{len(images)} of {len(scan.images)} images ({share:.0%}) have no boxes: "
        f"{len(scan.missing)} without a label file, {len(scan.empty)} with an empty one. "
        "Background images are legitimate (up to ~10 % teach the detector what is not an "
        "object); more usually means lost labels: each images/NAME.png needs labels/NAME.txt.",
        [(_yolo_label_path(p), None) for p in images])


def check_pixel_coordinates(rows: list[LabelRow]) -> Finding | None:
    """``pixel-coordinates``: values above 1 where YOLO wants fractions of the image size."""
    bad = [r for r in rows if max(r.box) > 1 + NORMALISED_TOLERANCE]
    if not bad:
        return None
    top = max(max(r.box) for r in bad)
    return _finding("pixel-coordinates", "error",
                    f"{len(bad)} boxes have cx, cy, w or h above 1 (up to {top:g}): these look "
                    "like pixels, but YOLO labels are fractions of the image: divide cx and w by "
                    "the image width, cy and h by its height.", [r.where for r in bad])


def check_corner_format(rows: list[LabelRow]) -> Finding | None:
    """``corner-format``: ``x1 y1 x2 y2`` written where ``cx cy w h`` belongs.

    Read as centres, many boxes stick out of the image (converters clip boxes to the image, so
    correct labels almost never do), while read as corners every box is valid (x2 > x1, y2 > y1).
    """
    rows = _normalised(rows)
    out = [r for r in rows if _sticks_out(*r.box)]
    corners_ok = all(r.box[2] > r.box[0] and r.box[3] > r.box[1] for r in rows)
    if len(out) < max(2, 0.1 * len(rows)) or not corners_ok:
        return None
    return _finding("corner-format", "error",
                    f"read as 'cx cy w h', {len(out)} of {len(rows)} boxes stick out of the image, "
                    "but every line is a valid 'x1 y1 x2 y2' box: write cx = (x1 + x2) / 2, "
                    "cy = (y1 + y2) / 2, w = x2 - x1, h = y2 - y1.", [r.where for r in out])


class ImageGradients:
    """Absolute Sobel gradients ``(|gx|, |gy|)`` of images, each read once, at most
    ``max_images`` of them (later ones, and unreadable ones, give ``None``)."""

    def __init__(self, load_image=_read_image, max_images: int = 200) -> None:
        self.load_image, self.max_images, self.cache = load_image, max_images, {}

    def __call__(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        if path not in self.cache:
            if len(self.cache) >= self.max_images:
                return None
            try:
                grey = cv2.cvtColor(self.load_image(path), cv2.COLOR_RGB2GRAY).astype(np.float32)
            except ImageError:
                self.cache[path] = None
                return None
            self.cache[path] = (np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)),
                                np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)))
        return self.cache[path]


def edge_alignment(gx: np.ndarray, gy: np.ndarray, box) -> float:
    """How well a box's border sits on object edges, in ``[-1, 1]``.

    Along a tight box's left and right sides the object's outline runs vertically (|gx|), along
    its top and bottom horizontally (|gy|): edges *parallel* to the border. A wrong box cuts
    through the object, so its border meets edges that *cross* it. Returns
    ``(parallel - crossing) / (parallel + crossing)`` over the two-pixel strips at the border.

    Args:
        gx, gy: ``(H, W)`` absolute Sobel gradients of the image.
        box: ``xyxy`` pixels.
    """
    height, width = gx.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    xa, xb, ya, yb = max(x1, 0), min(x2, width), max(y1, 0), min(y2, height)
    parallel = crossing = 0.0
    for x in (x1 - 1, x1, x2 - 1, x2):
        if 0 <= x < width and yb > ya:
            parallel += gx[ya:yb, x].sum()
            crossing += gy[ya:yb, x].sum()
    for y in (y1 - 1, y1, y2 - 1, y2):
        if 0 <= y < height and xb > xa:
            parallel += gy[y, xa:xb].sum()
            crossing += gx[y, xa:xb].sum()
    return float((parallel - crossing) / (parallel + crossing + 1e-6))


def _pixel_box(cx, cy, w, h, size) -> tuple[float, ...]:
    width, height = size
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
            (cy + h / 2) * height)


def check_swapped_wh(rows: list[LabelRow], gradients: ImageGradients | None = None
                     ) -> Finding | None:
    """``swapped-wh``: width and height swapped (``class cx cy h w``).

    Two pieces of evidence, either enough:

    - geometry: at least 3 boxes (and 5 %) stick out of the image as written, and swapping
      ``w`` and ``h`` puts at least 90 % of them back inside;
    - image content: of the boxes at least :data:`MIN_ASPECT` times longer than wide (at least
      10 of them), 75 % or more fit the object edges better with w and h swapped
      (:func:`edge_alignment`). Measured on correct labels, about 3 % vote "swapped" (long
      bars), 8 % (the face masks, aspect ~1.25) and 20 % (shapes with aspect >= 1.1).

    Limits: square-ish boxes carry no evidence (and then swapping them does little harm);
    objects whose outline does not reach the box edges (occluded, hollow, textured like the
    background) vote at random, so only a large majority counts.
    """
    gradients = gradients or ImageGradients()
    rows = [r for r in _normalised(rows) if r.image_size is not None]
    out = [r for r in rows if _sticks_out(*r.box)]
    fixed = [r for r in out if not _sticks_out(*r.box[:2], r.box[3], r.box[2])]
    geometry = len(out) >= max(3, 0.05 * len(rows)) and len(fixed) >= 0.9 * len(out)
    votes = []
    for r in rows:
        (cx, cy, w, h), (width, height) = r.box, r.image_size
        if max(w * width / (h * height), h * height / (w * width)) < MIN_ASPECT:
            continue
        grad = gradients(r.image)
        if grad is not None:
            swapped = edge_alignment(*grad, _pixel_box(cx, cy, h, w, r.image_size))
            votes.append((swapped > edge_alignment(*grad, _pixel_box(*r.box, r.image_size)), r))
    share = sum(v for v, _ in votes) / max(len(votes), 1)
    content = len(votes) >= 10 and share >= 0.75
    if not (geometry or content):
        return None
    evidence = [f"{len(out)} boxes stick out of the image as written and {len(fixed)} of them "
                "fit with w and h swapped"] if geometry else []
    if content:
        evidence.append(f"{share:.0%} of {len(votes)} elongated boxes fit the object edges "
                        "better with w and h swapped")
    where = list(dict.fromkeys([r.where for r in fixed] + [r.where for v, r in votes if v]))
    return _finding("swapped-wh", "error", "width and height look swapped: "
                    + "; ".join(evidence) + ". Write 'class cx cy w h' (w divided by the image "
                    "width, h by its height).", where)


def check_alignment(rows: list[LabelRow], gradients: ImageGradients | None = None,
                    threshold: float = 0.05) -> Finding | None:
    """``boxes-off-objects``: on average the box borders do not sit on object edges.

    The mean :func:`edge_alignment` of correct boxes, measured on the course's generators, is
    0.2 (shapes), 0.27 (faces) and 0.6 (bars); boxes of other images (shuffled or renamed label
    files) or shifted boxes score about 0 or below. Needs 10 boxes. Limits: on photos whose
    objects blend into the background the correct score is lower, hence a warning only.
    """
    gradients = gradients or ImageGradients()
    scores = [(edge_alignment(*g, _pixel_box(*r.box, r.image_size)), r)
              for r in _normalised(rows) if r.image_size is not None
              and not _sticks_out(*r.box) and (g := gradients(r.image)) is not None]
    mean = float(np.mean([a for a, _ in scores])) if scores else 1.0
    if len(scores) < 10 or mean >= threshold:
        return None
    worst = [r.where for _, r in sorted(scores, key=lambda t: t[0])]
    return _finding("boxes-off-objects", "warning",
                    f"the box borders do not sit on object edges (mean edge alignment {mean:.2f} "
                    f"over {len(scores)} boxes; correct labels score about 0.2-0.6, random boxes "
                    "about 0): the labels may belong to other images (shuffled or renamed files) "
                    "or be shifted. Draw a few images with their boxes to check.", worst)


def check_class_ids(rows: list[LabelRow], num_classes: int | None) -> Finding | None:
    """``class-out-of-range``: class ids that are negative, not integers, or >= ``nc``."""
    limit = num_classes if num_classes is not None else math.inf
    bad = [r for r in rows if r.cls != int(r.cls) or not 0 <= r.cls < limit]
    if not bad:
        return None
    values = sorted({f"{r.cls:g}" for r in bad})
    return _finding("class-out-of-range", "error",
                    f"class ids {', '.join(values[:5])} are not integers in [0, {num_classes}) "
                    "(data.yaml's nc): fix the ids, or add the missing names to data.yaml.",
                    [r.where for r in bad])


def check_duplicates(rows: list[LabelRow], iou_threshold: float = 0.95) -> Finding | None:
    """``duplicate-labels``: the same box (same class, IoU > ``iou_threshold``) twice in a file."""
    by_file: dict[Path, list[LabelRow]] = {}
    for r in _normalised(rows):
        by_file.setdefault(r.path, []).append(r)
    repeats = []
    for file_rows in by_file.values():
        boxes = torch.tensor([_pixel_box(*r.box, (1, 1)) for r in file_rows], dtype=torch.float64)
        classes = torch.tensor([r.cls for r in file_rows])
        same = (box_iou(boxes, boxes) > iou_threshold) & (classes[:, None] == classes[None, :])
        repeats += [r for i, r in enumerate(file_rows) if same[i, :i].any()]  # (N, N)
    if not repeats:
        return None
    return _finding("duplicate-labels", "warning",
                    f"{len(repeats)} boxes repeat an earlier box of the same class in the same "
                    "file (IoU > 0.95): a copy-paste or a double export. Delete the repeats; "
                    "each object is labelled once.", [r.where for r in repeats])


def check_degenerate(rows: list[LabelRow], img_size: int = 128) -> Finding | None:
    """``degenerate-boxes``: width or height <= 0 (error), or below :data:`MIN_BOX_PIXELS` at
    the ``img_size`` network input (warning)."""
    flat = [r for r in rows if min(r.box[2:]) <= 0]
    tiny = [r for r in _normalised(rows) if r.image_size is not None
            and min(r.box[2] * r.image_size[0], r.box[3] * r.image_size[1])
            * img_size / max(r.image_size) < MIN_BOX_PIXELS]
    if flat:
        return _finding("degenerate-boxes", "error", f"{len(flat)} boxes have a width or height "
                        "<= 0: fix or delete these lines.", [r.where for r in flat])
    if tiny:
        return _finding("degenerate-boxes", "warning", f"{len(tiny)} boxes are under "
                        f"{MIN_BOX_PIXELS:g} px at the {img_size} px network input: the detector "
                        "cannot see them; train at a larger --imgsz or drop them.",
                        [r.where for r in tiny])
    return None


def check_outside(rows: list[LabelRow], swapped: bool = False) -> Finding | None:
    """``outside-image``: boxes that stick out of the image by more than the reader tolerates
    (those that fit with w and h swapped are left to ``swapped-wh`` when ``swapped``)."""
    tol = NORMALISED_TOLERANCE
    out = [r for r in rows if max(r.box) <= 1 + tol and min(r.box[2:]) > 0
           and _sticks_out(*r.box, tol)
           and not (swapped and not _sticks_out(*r.box[:2], r.box[3], r.box[2], tol))]
    if not out:
        return None
    return _finding("outside-image", "error", f"{len(out)} boxes stick out of the image: the "
                    "reader refuses them; clip them to the image (x1 = max(cx - w/2, 0), ...).",
                    [r.where for r in out])
