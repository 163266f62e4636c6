"""Read, write and convert the label formats learners bring: YOLO txt, Pascal VOC xml, COCO json.

Inside the library a box is ``xyxy`` in pixels of its image: 0-based, with ``x2`` and ``y2`` the far
edges, so the box covering a ``W x H`` image is ``[0, 0, W, H]``. The formats differ only here:

| format | on disk                                  | to ``xyxy``                                  |
| ------ | ---------------------------------------- | -------------------------------------------- |
| YOLO   | ``class cx cy w h``, divided by W and H  | ``x1 = (cx - w/2) W``, ``x2 = (cx + w/2) W`` |
| VOC    | ``xmin ymin xmax ymax``, 1-based pixels  | ``x1 = xmin - 1``, ``x2 = xmax - 1``         |
| COCO   | ``bbox = [x, y, w, h]``, 0-based pixels  | ``x1 = x``, ``x2 = x + w``                   |

VOC's ``- 1`` is the one Darknet's ``voc_label.py`` applies; our VOC writer adds the 1 back.

Readers check everything and report a problem as a ``LabelError`` or ``ImageError`` that names the
file and the 1-based line. ``on_error`` says what to do with a problem:

- ``"raise"`` (default): raise at the first one.
- ``"clip"``: clip a box that sticks out of its image into it, and drop a box with no area (or none
  left after clipping), each with a ``LabelWarning``. Every other problem still raises.
- ``"skip"``: skip a bad line, object or annotation, and skip the whole image when a file is bad (a
  corrupt image, a label file that is not text), each with a ``LabelWarning``.

A box that sticks out by no more than ``NORMALISED_TOLERANCE`` of the image (YOLO) or
``PIXEL_TOLERANCE`` pixels (VOC, COCO) is no problem: it is clipped silently.

Writers refuse datasets they could not read back, are deterministic (the same dataset gives
byte-identical files) and write each box with the fewest decimals that read back to the very same
float32 box, so round trips between the formats are lossless.
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.parsers import expat

import cv2
import numpy as np
import yaml

from yolo_teach.boxes import box_convert, xyxy_to_yolo
from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError, LabelWarning

__all__ = [
    "IMAGE_SUFFIXES",
    "NORMALISED_TOLERANCE",
    "PIXEL_TOLERANCE",
    "ImageError",
    "LabelError",
    "LabelWarning",
    "convert",
    "read_coco",
    "read_voc",
    "read_yolo",
    "write_coco",
    "write_voc",
    "write_yolo",
]

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
NORMALISED_TOLERANCE = 1e-3  # YOLO: how far (in image widths/heights) a box may stick out unnoticed
PIXEL_TOLERANCE = 1.0  # VOC, COCO: the same in pixels; also absorbs 0-based VOC files
_ON_ERROR = ("raise", "clip", "skip")
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]  # fixed, so the same pixels give the same bytes
_MAX_DECIMALS = 17  # enough for any float64; a search for the shortest exact text stops there
_YOLO_FIELDS = ("class id", "cx", "cy", "w", "h")
_MAX_INFERRED_CLASSES = 10_000  # without class names, a larger YOLO class id is taken for a typo
_VOC_CORNERS = ("xmin", "ymin", "xmax", "ymax")


# ---------------------------------------------------------------------------------------------
# What a reader collects before class names are settled


@dataclass
class _Object:
    """One box as read from a file: ``xyxy`` pixels, and a class id or (VOC) a class name."""

    box: tuple[float, float, float, float]
    label: int | str
    path: Path
    line: int | None
    difficult: bool = False


@dataclass
class _Item:
    """One image and the objects read for it."""

    name: str
    image: np.ndarray
    objects: list[_Object] = field(default_factory=list)


def _assemble(items: list[_Item], class_names: Sequence[str], meta: dict | None = None):
    """Build the ``BoxDataset`` from items whose labels are class ids by now."""
    return BoxDataset(
        images=[item.image for item in items],
        boxes=[
            np.array([o.box for o in item.objects], np.float32).reshape(-1, 4) for item in items
        ],
        labels=[np.array([o.label for o in item.objects], np.int64) for item in items],
        class_names=list(class_names),
        names=[item.name for item in items],
        meta=meta or {},
    )


# ---------------------------------------------------------------------------------------------
# Problems and what on_error does with them


def _check_on_error(on_error: str) -> None:
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")


def _warn(error: LabelError | ImageError, action: str) -> None:
    warnings.warn(f"{error}; {action}", LabelWarning, stacklevel=3)


def _tolerate(error, on_error: str, modes=("skip",), action: str = "skipped") -> None:
    """Raise ``error`` unless ``on_error`` is one of ``modes``; then warn ``action`` and return."""
    if on_error not in modes:
        raise error
    _warn(error, action)


def _drop_degenerate(error: LabelError, on_error: str) -> None:
    """A box with no area: an error when raising, else dropped (``clip`` and ``skip`` alike)."""
    _tolerate(error, on_error, modes=("clip", "skip"), action="dropped")


def _clip(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """Clamp an ``xyxy`` box into ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = box
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def _fit_box(box, width, height, tolerance, on_error, locate: Callable, outside: str):
    """Return an ``xyxy`` box (with ``x2 > x1``, ``y2 > y1``) clipped into the image, or ``None``.

    Sticking out by at most ``tolerance`` is clipped silently. More is a problem, worded by
    ``outside``: raised, clipped (``clip``) or skipped (``skip``). A box left with no area inside
    the image is dropped in ``clip`` mode. ``locate(message)`` makes the ``LabelError`` that
    names the file and line, only when there is a problem.
    """
    x1, y1, x2, y2 = box
    clipped = _clip(box, width, height)
    sticks_out = min(x1, y1) < -tolerance or x2 > width + tolerance or y2 > height + tolerance
    no_area = clipped[2] <= clipped[0] or clipped[3] <= clipped[1]
    if not (sticks_out or no_area):
        return clipped
    message = outside if sticks_out else "the box has no area (its width or height rounds to 0)"
    error = locate(message)
    if on_error == "clip" and not no_area:
        _warn(error, "clipped into the image")
        return clipped
    action = "skipped" if on_error == "skip" else "dropped: no area left inside the image"
    _tolerate(error, on_error, modes=("clip", "skip"), action=action)
    return None


# ---------------------------------------------------------------------------------------------
# Reading files: text, numbers, images


def _line_at(data: bytes | str, offset: int) -> int:
    """The 1-based line that holds character (or byte) ``offset``."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise LabelError(f"cannot read the file ({err.strerror})", path) from None


def _read_text(path: Path) -> str:
    """Decode a text file as UTF-8 (a BOM is fine); ``LabelError`` at binary or non-UTF-8 bytes."""
    data = _read_bytes(path)
    nul = data.find(b"\0")
    if nul >= 0:
        message = "binary data (a NUL byte); expected a UTF-8 text file"
        raise LabelError(message, path, _line_at(data, nul))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        message = f"byte 0x{data[err.start]:02x} is not UTF-8; expected a UTF-8 text file"
        raise LabelError(message, path, _line_at(data, err.start)) from None


def _number(text: str, what: str, path: Path, line: int | None) -> float:
    """Parse a finite number from label text, naming ``what`` it was meant to be on failure."""
    try:
        value = float(text)
    except ValueError:
        raise LabelError(f"{what} {text!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise LabelError(f"{what} is {text!r}; expected a finite number", path, line)
    return value


def _class_id(value: float, text: str, num_classes: int | None, path: Path, line: int) -> int:
    """Check a class id read as a number: a non-negative integer below ``num_classes``."""
    if value != int(value):
        raise LabelError(f"class id {text!r} is not an integer", path, line)
    label = int(value)
    if label < 0:
        raise LabelError(f"class id {label} is negative; expected 0, 1, 2, ...", path, line)
    if num_classes is not None and label >= num_classes:
        message = f"class id {label} out of range [0, {num_classes}): {num_classes} class names"
        raise LabelError(message, path, line)
    return label


def _list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    suffixes = set(IMAGE_SUFFIXES)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())


def _read_image(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; ``ImageError`` if it cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # with imdecode: also works for non-ASCII paths
    except OSError as err:
        raise ImageError(f"cannot read the image ({err.strerror})", path) from None
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ImageError("not a readable image (corrupt, truncated or not an image)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _PNG_PARAMS)
    if not ok:
        raise ImageError("OpenCV could not encode the image as PNG", path)
    path.write_bytes(data.tobytes())


def _read_class_list(path: Path) -> list[str] | None:
    """Class names from a ``classes.txt`` (one a line), or ``None`` if there is no such file."""
    if not path.is_file():
        return None
    return [name.strip() for name in _read_text(path).split("\n") if name.strip()]


def _preview(values: Sequence, limit: int = 10) -> str:
    """A short list for a message: the first ``limit`` values, then how many more."""
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


# ---------------------------------------------------------------------------------------------
# Writing: checks and numbers


def _check_names(dataset: BoxDataset) -> None:
    """Image names become file names and class names become text lines: both must be clean."""
    seen = set()
    for name in dataset.names:
        if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\n]", name):
            raise LabelError(f"image name {name!r} cannot be used as a file name")
        if name in seen:
            raise LabelError(f"image name {name!r} appears twice; names become file names")
        seen.add(name)
    classes = dataset.class_names
    for name in classes:
        if not isinstance(name, str) or not name or name != name.strip() or "\n" in name:
            raise LabelError(f"class name {name!r} must be text without surrounding spaces")
    if len(set(classes)) != len(classes):
        raise LabelError(
            f"class names {_preview(classes)} repeat a name; VOC and COCO name classes"
        )


def _writable_boxes(index: int, dataset: BoxDataset) -> np.ndarray:
    """Check image ``index`` of a dataset for writing; return its boxes clipped into the image.

    Boxes may stick out by ``NORMALISED_TOLERANCE`` of the image (clipped silently), so every
    written file reads back without a problem in every format.
    """
    name, image, boxes, labels = dataset.names[index], *dataset[index]
    where = f"dataset image {index} ({name!r})"
    shape = getattr(image, "shape", None)
    if not (getattr(image, "dtype", None) == np.uint8 and len(shape) == 3 and shape[2] == 3):
        raise ImageError(f"{where} has shape {shape}; expected an (H, W, 3) uint8 RGB array")
    height, width = shape[:2]
    if len(boxes) != len(labels):
        raise LabelError(f"{where} has {len(boxes)} boxes but {len(labels)} labels")
    limit = NORMALISED_TOLERANCE * np.array([width, height])
    clipped = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)  # (N, 4)
    bad = (
        ~np.isfinite(boxes).all(axis=1)
        | (boxes[:, :2] < -limit).any(axis=1)
        | (boxes[:, 2:] > np.array([width, height]) + limit).any(axis=1)
        | (clipped[:, 2] <= clipped[:, 0])
        | (clipped[:, 3] <= clipped[:, 1])
    )
    if bad.any():
        k = int(np.argmax(bad))
        message = (
            f"{where}: box {k} {boxes[k].tolist()} is not xyxy inside the {width}x{height} image; "
            f"expected 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}"
        )
        raise LabelError(message)
    out_of_range = (labels < 0) | (labels >= dataset.num_classes)
    if out_of_range.any():
        label = int(labels[np.argmax(out_of_range)])
        raise LabelError(f"{where}: label {label} out of range [0, {dataset.num_classes})")
    return clipped


def _decimal(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, trailing zeros trimmed (``0.250`` -> ``0.25``)."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _shortest_decimals(values: np.ndarray, decode: Callable, target: np.ndarray) -> list[list[str]]:
    """For each row of ``values``, texts with the fewest decimals that read back as ``target``.

    ``decode`` does what the reader does, ``(M, K)`` numbers -> ``(M, 4)`` ``xyxy`` boxes, so the
    texts of a row decode to exactly its ``target`` row in float32. The values of a row share one
    number of decimals. A row that is not exact even at ``_MAX_DECIMALS`` (a box far below a
    float32 step) gets the longest texts.

    Args:
        values: ``(N, K)`` float64 numbers to write, one row per box.
        decode: the reader's arithmetic.
        target: ``(N, 4)`` float32 ``xyxy`` boxes the texts must read back as.
    """
    target = np.asarray(target, np.float32).reshape(-1, 4)  # (N, 4)
    texts: list = [None] * len(target)
    todo = np.arange(len(target))
    for decimals in range(_MAX_DECIMALS + 1):
        if len(todo) == 0:
            break
        rows = [[_decimal(v, decimals) for v in values[i]] for i in todo]
        decoded = np.asarray(decode(np.array(rows, np.float64)), np.float32)  # (M, 4)
        exact = (decoded == target[todo]).all(axis=1) | (decimals == _MAX_DECIMALS)
        for i, row, done in zip(todo, rows, exact):
            texts[i] = row if done else None
        todo = todo[~exact]
    return texts


def _clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``_clip`` for ``(N, 4)`` boxes."""
    return np.clip(boxes, 0.0, [width, height, width, height])


# ---------------------------------------------------------------------------------------------
# YOLO: images/<stem>.png + labels/<stem>.txt with "class cx cy w h" lines, data.yaml


def _yolo_corners(cxcywh: Sequence[float]) -> tuple[float, ...]:
    """Normalised ``cx cy w h`` -> normalised ``xyxy``."""
    return tuple(box_convert(np.asarray(cxcywh, np.float64), "cxcywh", "xyxy").tolist())


def _scale(box: Sequence[float], width: float, height: float) -> tuple[float, ...]:
    """Normalised ``xyxy`` -> pixels."""
    x1, y1, x2, y2 = box
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def _yolo_lines(boxes: np.ndarray, labels: np.ndarray, width: int, height: int) -> list[str]:
    """Label lines ``class cx cy w h`` for an image's ``xyxy`` pixel boxes."""

    def decode(cxcywh):  # what read_yolo does with valid lines
        corners = _clip_boxes(box_convert(cxcywh, "cxcywh", "xyxy"), 1.0, 1.0)
        return corners * np.array([width, height, width, height], np.float64)

    cxcywh = xyxy_to_yolo(boxes.astype(np.float64), width, height)  # (N, 4)
    texts = _shortest_decimals(cxcywh, decode, boxes)
    return [" ".join([str(int(label)), *row]) + "\n" for label, row in zip(labels, texts)]


def _column_hint(count: int) -> str:
    if count == 4:
        return " (is the class id missing?)"
    if count == 6:
        return " (a confidence column from a predictions file?)"
    if count > 6 and count % 2 == 1:
        return " (a segmentation polygon 'class x1 y1 x2 y2 ...'? convert it to a box first)"
    return ""


def _parse_yolo_line(text: str, path: Path, line: int, num_classes: int | None):
    """``(class_id, cx, cy, w, h)`` from one label line, or ``LabelError``."""
    tokens = text.split()
    if len(tokens) != len(_YOLO_FIELDS):
        message = f"expected 5 columns 'class cx cy w h', got {len(tokens)}"
        raise LabelError(message + _column_hint(len(tokens)), path, line)
    values = [_number(token, what, path, line) for token, what in zip(tokens, _YOLO_FIELDS)]
    return (_class_id(values[0], tokens[0], num_classes, path, line), *values[1:])


def _yolo_object(text, path, line, num_classes, width, height, on_error) -> _Object | None:
    """The object on one YOLO label line, or ``None`` when ``on_error`` let it go."""
    try:
        label, cx, cy, w, h = _parse_yolo_line(text, path, line, num_classes)
    except LabelError as error:
        _tolerate(error, on_error)
        return None
    if w <= 0 or h <= 0:
        _drop_degenerate(
            LabelError(f"w {w:g} and h {h:g}: expected both > 0", path, line), on_error
        )
        return None
    hint = ""
    if max(cx, cy, w, h) > 1.5:
        hint = (
            "; these look like pixels, but YOLO divides x and w by the width, y and h by the height"
        )
    outside = f"box cx cy w h = {cx:g} {cy:g} {w:g} {h:g} reaches outside [0, 1]{hint}"
    corners = _yolo_corners((cx, cy, w, h))
    locate = functools.partial(LabelError, path=path, line=line)
    box = _fit_box(corners, 1.0, 1.0, NORMALISED_TOLERANCE, on_error, locate, outside)
    return None if box is None else _Object(_scale(box, width, height), label, path, line)


def _yolo_label_path(image_path: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder in the path becomes ``labels``; ``.txt``."""
    parts = image_path.parts
    folders = parts[:-1]
    if "images" in folders:
        k = len(folders) - 1 - folders[::-1].index("images")
        parts = (*parts[:k], "labels", *parts[k + 1 :])
    return Path(*parts).with_suffix(".txt")


def _read_yolo_item(image_path: Path, num_classes, on_error: str) -> _Item | None:
    """An image and the objects of its label file (none if it has no label file)."""
    label_path = _yolo_label_path(image_path)
    try:
        image = _read_image(image_path)
        text = _read_text(label_path) if label_path.is_file() else ""
    except (ImageError, LabelError) as error:
        _tolerate(error, on_error)
        return None
    height, width = image.shape[:2]
    item = _Item(image_path.stem, image)
    for line, content in enumerate(text.split("\n"), start=1):
        if content.strip():  # blank lines are fine
            obj = _yolo_object(content, label_path, line, num_classes, width, height, on_error)
            item.objects += [obj] if obj is not None else []
    return item


def _check_orphan_labels(folders: list[Path], on_error: str) -> None:
    """A label file whose image is missing is a mistake (often a renamed or deleted image)."""
    for folder in folders:
        label_folder = _yolo_label_path(folder / "image.png").parent
        if label_folder == folder or not label_folder.is_dir():
            continue
        stems = {p.stem for p in _list_images(folder)}
        for label_path in sorted(label_folder.glob("*.txt")):
            if label_path.name != "classes.txt" and label_path.stem not in stems:
                message = f"label file without its image: no {label_path.stem}.* image in {folder}"
                _tolerate(LabelError(message, label_path), on_error)


@dataclass
class _YoloSplit:
    """Where one split's images are, and the class names if the dataset names them."""

    images: list[Path]
    folders: list[Path]  # image folders, whose label folders are checked for orphans
    class_names: list[str] | None


def _load_yaml(path: Path) -> dict:
    try:
        config = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        raise LabelError(f"malformed YAML: {problem}", path, line) from None
    if not isinstance(config, dict):
        raise LabelError("expected a mapping with train:, val: and names: keys", path)
    return config


def _yaml_class_names(config: dict, path: Path) -> list[str] | None:
    """Class names from a data.yaml's ``names`` (list or ``{id: name}``) checked against ``nc``."""
    names, nc = config.get("names"), config.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 0):
        raise LabelError(f"nc: {nc!r}; expected the number of classes", path)
    if names is None:
        return None if nc is None else [f"class_{k}" for k in range(nc)]
    if isinstance(names, dict):
        if set(names) != set(range(len(names))):
            raise LabelError(f"names: keys {_preview(list(names))}; expected 0 .. n-1", path)
        names = [names[k] for k in range(len(names))]
    if not isinstance(names, list):
        raise LabelError("names: expected a list or an {id: name} mapping", path)
    if nc is not None and nc != len(names):
        raise LabelError(f"nc: {nc} but names: lists {len(names)} classes", path)
    return [str(name) for name in names]


def _image_list(list_path: Path) -> list[Path]:
    """Images named one a line in a ``.txt`` file, relative to that file's folder."""
    lines = [line.strip() for line in _read_text(list_path).split("\n")]
    return [list_path.parent / line for line in lines if line]


def _yolo_split_from_yaml(config_path: Path, split: str | None) -> _YoloSplit:
    config = _load_yaml(config_path)
    base = config.get("path") or "."
    if not isinstance(base, str):
        raise LabelError(f"path: {base!r}; expected the dataset folder", config_path)
    base = config_path.parent / base
    key = split or "train"
    entries = config.get(key)
    if entries is None:
        raise LabelError(f"no '{key}:' entry; expected one naming its image folder", config_path)
    images, folders = [], []
    for entry in entries if isinstance(entries, list) else [entries]:
        source = base / str(entry)
        if source.is_dir():
            images += _list_images(source)
            folders.append(source)
        elif source.suffix == ".txt" and source.is_file():
            images += _image_list(source)
        else:
            message = f"{key}: {entry!r} is {source}, which is no image folder or .txt image list"
            raise LabelError(message, config_path)
    return _YoloSplit(images, folders, _yaml_class_names(config, config_path))


def _yolo_split(root: Path, split: str | None) -> _YoloSplit:
    """Find a split's images from a dataset folder or a data.yaml."""
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    config_path = root if root.is_file() else root / "data.yaml"
    if config_path.is_file():
        return _yolo_split_from_yaml(config_path, split)
    folder = root / "images" / split if split else root / "images"
    if not folder.is_dir():
        message = f"no {folder} folder; expected images/ and labels/ folders, or a data.yaml"
        raise LabelError(message, root)
    class_names = _read_class_list(root / "classes.txt")
    if class_names is None:
        class_names = _read_class_list(root / "labels" / "classes.txt")  # LabelImg's place
    return _YoloSplit(_list_images(folder), [folder], class_names)


def read_yolo(root, *, split: str | None = None, on_error: str = "raise", class_names=None):
    """Read a YOLO (Darknet / Ultralytics) dataset.

    Each image ``.../images/<stem>.<ext>`` has a label file ``.../labels/<stem>.txt`` with one
    ``class cx cy w h`` line per object, the box centre and size divided by the image width and
    height, so in ``[0, 1]``. An image without a label file has no objects; blank lines are fine.

    Args:
        root: a folder with ``images/`` and ``labels/`` (and maybe a ``data.yaml`` or
            ``classes.txt``), or the path to an Ultralytics ``data.yaml`` whose ``train:``/``val:``
            name image folders (or ``.txt`` image lists) relative to ``path:`` (default: the yaml's
            folder) and whose ``names:`` is a list or an ``{id: name}`` mapping.
        split: which data.yaml entry to read (default ``"train"``); without a data.yaml, the
            subfolder ``images/<split>``.
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the module docstring).
        class_names: overrides the names from data.yaml or ``classes.txt``. With no names
            anywhere they are ``class_0 .. class_<max id>``.

    Returns:
        A ``BoxDataset`` with ``xyxy`` float32 pixel boxes; names are the image file stems.

    Raises:
        LabelError, ImageError: naming the file and line of the first problem (``on_error``).
    """
    _check_on_error(on_error)
    source = _yolo_split(Path(root), split)
    names = list(class_names) if class_names is not None else source.class_names
    num_classes = None if names is None else len(names)
    _check_orphan_labels(source.folders, on_error)
    items, seen = [], set()
    for image_path in source.images:
        if _yolo_label_path(image_path) in seen:
            error = ImageError(
                "another image has this stem, so it would share its labels", image_path
            )
            _tolerate(error, on_error)
            continue
        seen.add(_yolo_label_path(image_path))
        item = _read_yolo_item(image_path, num_classes, on_error)
        items += [item] if item is not None else []
    if names is None:
        names = _inferred_class_names(items, on_error)
    return _assemble(items, names)


def _inferred_class_names(items: list[_Item], on_error: str) -> list[str]:
    """``class_0 .. class_<max id>`` for a dataset that names no classes.

    An id of ``_MAX_INFERRED_CLASSES`` or more is taken for a typo (it would make that many names).
    """
    for item in items:
        plausible = [o for o in item.objects if o.label < _MAX_INFERRED_CLASSES]
        for obj in item.objects:
            if obj.label >= _MAX_INFERRED_CLASSES:
                message = (
                    f"class id {obj.label} and no class names; expected ids below "
                    f"{_MAX_INFERRED_CLASSES} (or pass class_names, or a data.yaml with names:)"
                )
                _tolerate(LabelError(message, obj.path, obj.line), on_error)
        item.objects = plausible
    top = max((o.label for item in items for o in item.objects), default=-1)
    return [f"class_{k}" for k in range(top + 1)]


def _write_data_yaml(root: Path, class_names: list[str], split: str | None) -> Path:
    """Write (or, for a split, update) data.yaml, Ultralytics-style, with no ``path:`` key.

    Without ``path:`` Ultralytics and ``read_yolo`` take the folder of the yaml, so the dataset
    can be moved. Ultralytics wants both ``train:`` and ``val:``; ``split=None`` writes both.
    """
    path = root / "data.yaml"
    config = _load_yaml(path) if split and path.is_file() else {}
    if config and _yaml_class_names(config, path) != class_names:
        message = f"already names classes other than {_preview(class_names)}; use another folder"
        raise LabelError(message, path)
    folder = f"images/{split}" if split else "images"
    splits = {k: v for k, v in config.items() if k not in ("path", "nc", "names")}
    splits.update({split: folder} if split else {"train": folder, "val": folder})
    order = ["train", "val", "test"]
    keys = [k for k in order if k in splits] + sorted(k for k in splits if k not in order)
    document = {k: splits[k] for k in keys}
    document.update(nc=len(class_names), names=dict(enumerate(class_names)))
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def write_yolo(dataset: BoxDataset, root, *, split: str | None = None) -> Path:
    """Write a dataset as YOLO: ``images/<name>.png``, ``labels/<name>.txt`` and ``data.yaml``.

    Each object becomes ``class cx cy w h`` with the fewest decimals that read back to the same
    float32 box. Every image gets a label file, empty if it has no objects.

    Args:
        dataset: boxes ``xyxy`` in pixels inside their images, labels below ``num_classes``.
        root: the dataset folder (created if needed).
        split: write to ``images/<split>/`` and ``labels/<split>/`` and add ``<split>:`` to an
            existing data.yaml; by default the flat layout, with ``train:`` and ``val:`` both on it.

    Returns:
        The path of ``data.yaml``, ready for ``read_yolo``.
    """
    _check_names(dataset)
    boxes = [_writable_boxes(i, dataset) for i in range(len(dataset))]
    root = Path(root)
    image_dir = root / "images" / split if split else root / "images"
    label_dir = root / "labels" / split if split else root / "labels"
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for name, image, image_boxes, labels in zip(
        dataset.names, dataset.images, boxes, dataset.labels
    ):
        height, width = image.shape[:2]
        _write_png(image_dir / f"{name}.png", image)
        lines = _yolo_lines(image_boxes, labels, width, height)
        (label_dir / f"{name}.txt").write_text("".join(lines), encoding="utf-8", newline="\n")
    return _write_data_yaml(root, list(dataset.class_names), split)


# ---------------------------------------------------------------------------------------------
# Pascal VOC: JPEGImages/<stem>.png + Annotations/<stem>.xml


def _parse_xml(path: Path) -> tuple[ET.Element, dict[ET.Element, int]]:
    """Parse an XML file into elements and the 1-based line each element starts on.

    ElementTree keeps no line numbers, so the tree is built from expat's events by hand.
    """
    builder, lines = ET.TreeBuilder(), {}
    parser = expat.ParserCreate()

    def start(tag: str, attrs: dict) -> None:
        lines[builder.start(tag, attrs)] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(_read_bytes(path), True)
    except expat.ExpatError as err:
        message = f"malformed XML: {expat.ErrorString(err.code)} (column {err.offset + 1})"
        raise LabelError(message, path, err.lineno) from None
    return builder.close(), lines


def _voc_child(parent: ET.Element, tag: str, lines: dict, path: Path) -> ET.Element:
    child = parent.find(tag)
    if child is None:
        raise LabelError(f"<{parent.tag}> has no <{tag}>", path, lines.get(parent))
    return child


def _voc_text(parent: ET.Element, tag: str, lines: dict, path: Path) -> str:
    child = _voc_child(parent, tag, lines, path)
    text = (child.text or "").strip()
    if not text:
        raise LabelError(f"<{tag}> is empty", path, lines.get(child))
    return text


def _voc_number(parent: ET.Element, tag: str, lines: dict, path: Path) -> float:
    text = _voc_text(parent, tag, lines, path)
    return _number(text, f"<{tag}>", path, lines.get(parent.find(tag)))


def _voc_difficult(element: ET.Element, lines: dict, path: Path) -> bool:
    """The optional ``<difficult>`` flag: ``0`` or ``1``."""
    child = element.find("difficult")
    text = (child.text or "").strip() if child is not None else ""
    if text not in ("", "0", "1"):
        raise LabelError(f"<difficult> is {text!r}; expected 0 or 1", path, lines.get(child))
    return text == "1"


def _check_voc_size(root: ET.Element, lines: dict, path: Path, width: int, height: int) -> None:
    """``<size>`` is optional, but if present (and not ``0 x 0``) it must be the image's size."""
    size = root.find("size")
    if size is None:
        return
    file_size = (_voc_number(size, "width", lines, path), _voc_number(size, "height", lines, path))
    if file_size not in ((width, height), (0, 0)):
        message = (
            f"<size> says {file_size[0]:g}x{file_size[1]:g} but the image is {width}x{height}; "
            "expected the size of the image (was it resized after labelling?)"
        )
        raise LabelError(message, path, lines.get(size))


def _voc_object(element, lines, path, width, height, on_error) -> _Object | None:
    """One ``<object>``: its class name, difficult flag and box (``xyxy`` = VOC corners - 1)."""
    name_element = _voc_child(element, "name", lines, path)
    name = _voc_text(element, "name", lines, path)
    bndbox = _voc_child(element, "bndbox", lines, path)
    xmin, ymin, xmax, ymax = (_voc_number(bndbox, tag, lines, path) for tag in _VOC_CORNERS)
    difficult = _voc_difficult(element, lines, path)
    line = lines.get(bndbox)
    corners = f"xmin ymin xmax ymax = {xmin:g} {ymin:g} {xmax:g} {ymax:g}"
    if xmax <= xmin or ymax <= ymin:
        error = LabelError(f"{corners}: expected xmin < xmax and ymin < ymax", path, line)
        _drop_degenerate(error, on_error)
        return None
    outside = (
        f"{corners} reaches outside the {width}x{height} image; expected 1-based pixels "
        f"within [1, {width + 1}] x [1, {height + 1}]"
    )
    box = (xmin - 1, ymin - 1, xmax - 1, ymax - 1)  # 1-based -> 0-based, as Darknet's voc_label.py
    locate = functools.partial(LabelError, path=path, line=line)
    box = _fit_box(box, width, height, PIXEL_TOLERANCE, on_error, locate, outside)
    return None if box is None else _Object(box, name, path, lines.get(name_element), difficult)


def _parse_voc(path: Path, width: int, height: int, on_error: str) -> list[_Object]:
    """The objects of one annotation file; a bad object is handled by ``on_error``."""
    root, lines = _parse_xml(path)
    if root.tag != "annotation":
        raise LabelError(f"root element <{root.tag}>; expected <annotation>", path, lines[root])
    _check_voc_size(root, lines, path, width, height)
    objects = []
    for element in root.findall("object"):
        try:
            obj = _voc_object(element, lines, path, width, height, on_error)
        except LabelError as error:
            _tolerate(error, on_error)
            continue
        objects += [obj] if obj is not None else []
    return objects


def _read_voc_item(image_path: Path, xml_path: Path | None, on_error: str) -> _Item | None:
    try:
        image = _read_image(image_path)
        height, width = image.shape[:2]
        objects = _parse_voc(xml_path, width, height, on_error) if xml_path else []
    except (ImageError, LabelError) as error:
        _tolerate(error, on_error)
        return None
    return _Item(image_path.stem, image, objects)


def _names_to_ids(items: list[_Item], class_names: list[str], on_error: str) -> None:
    """Replace class names by ids in place; an unknown name is a problem for ``on_error``."""
    index = {name: k for k, name in enumerate(class_names)}
    for item in items:
        known = []
        for obj in item.objects:
            if obj.label in index:
                obj.label = index[obj.label]
                known.append(obj)
            else:
                message = f"unknown class {obj.label!r}; expected one of {_preview(class_names)}"
                _tolerate(LabelError(message, obj.path, obj.line), on_error)
        item.objects = known


def read_voc(root, *, on_error: str = "raise", class_names=None, difficult: bool = True):
    """Read a Pascal VOC dataset: ``JPEGImages/<stem>.*`` and ``Annotations/<stem>.xml``.

    Each ``<object>`` has a ``<name>``, a ``<bndbox>`` with ``xmin ymin xmax ymax`` in 1-based
    pixels (integers in the wild, any number from ``write_voc``) and an optional ``<difficult>``.
    The box is ``xyxy = corners - 1``. ``<size>``, if given, must be the image's size. An image
    without an annotation file has no objects. ``<filename>`` is ignored: files pair by stem.

    Args:
        root: the folder holding ``JPEGImages/`` and ``Annotations/``.
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the module docstring).
        class_names: the classes, in id order. Default: ``root/classes.txt`` if there is one,
            else every name found, sorted.
        difficult: keep objects marked difficult (default), or drop them as Darknet does.

    Returns:
        A ``BoxDataset``; ``meta["difficult"]`` maps each image name to a ``(N,)`` bool array.
    """
    _check_on_error(on_error)
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    image_dir, annotation_dir = root / "JPEGImages", root / "Annotations"
    for folder in (image_dir, annotation_dir):
        if not folder.is_dir():
            raise LabelError(f"no {folder.name}/ folder; expected JPEGImages/ + Annotations/", root)
    images = {p.stem: p for p in _list_images(image_dir)}
    annotations = {p.stem: p for p in sorted(annotation_dir.glob("*.xml"))}
    for stem in sorted(set(annotations) - set(images)):
        error = LabelError(
            f"annotation without its image: no {stem}.* in {image_dir}", annotations[stem]
        )
        _tolerate(error, on_error)
    items = []
    for stem in sorted(images):
        item = _read_voc_item(images[stem], annotations.get(stem), on_error)
        if item is not None:
            item.objects = [o for o in item.objects if difficult or not o.difficult]
            items.append(item)
    names = list(class_names) if class_names is not None else _read_class_list(root / "classes.txt")
    if names is None:
        names = sorted({o.label for item in items for o in item.objects})
    _names_to_ids(items, names, on_error)
    flags = {item.name: np.array([o.difficult for o in item.objects], bool) for item in items}
    return _assemble(items, names, meta={"difficult": flags})


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text
    return child


def _voc_xml(name: str, shape: tuple, boxes, labels, class_names, difficult) -> str:
    """One annotation file, corners 1-based (``xyxy + 1``) with the fewest exact decimals."""
    height, width = shape[:2]
    root = ET.Element("annotation")
    _sub(root, "folder", "JPEGImages")
    _sub(root, "filename", f"{name}.png")
    size = _sub(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        _sub(size, tag, str(value))
    _sub(root, "segmented", "0")
    corners = _shortest_decimals(
        boxes.astype(np.float64) + 1, lambda v: _clip_boxes(v - 1, width, height), boxes
    )  # 1-based
    for box_texts, label, hard in zip(corners, labels, difficult):
        obj = _sub(root, "object")
        for tag, text in (
            ("name", class_names[label]),
            ("pose", "Unspecified"),
            ("truncated", "0"),
            ("difficult", str(int(hard))),
        ):
            _sub(obj, tag, text)
        bndbox = _sub(obj, "bndbox")
        for tag, text in zip(_VOC_CORNERS, box_texts):
            _sub(bndbox, tag, text)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(dataset: BoxDataset, root) -> Path:
    """Write a dataset as Pascal VOC: ``JPEGImages/<name>.png``, ``Annotations/<name>.xml``.

    Images are PNG (lossless) despite the folder's name. Corners are written 1-based, ``xyxy + 1``,
    with the fewest decimals that read back to the same float32 box. ``classes.txt`` keeps the
    class order. ``<difficult>`` comes from ``meta["difficult"][name]`` when it has one flag per
    box, else 0.

    Returns:
        ``root``, ready for ``read_voc``.
    """
    _check_names(dataset)
    boxes = [_writable_boxes(i, dataset) for i in range(len(dataset))]
    root = Path(root)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    flags = dataset.meta.get("difficult", {}) if isinstance(dataset.meta, dict) else {}
    for name, image, image_boxes, labels in zip(
        dataset.names, dataset.images, boxes, dataset.labels
    ):
        difficult = flags.get(name) if isinstance(flags, dict) else None
        if difficult is None or len(difficult) != len(image_boxes):
            difficult = np.zeros(len(image_boxes), bool)
        _write_png(root / "JPEGImages" / f"{name}.png", image)
        xml = _voc_xml(name, image.shape, image_boxes, labels, dataset.class_names, difficult)
        (root / "Annotations" / f"{name}.xml").write_text(xml, encoding="utf-8", newline="\n")
    classes = "".join(f"{c}\n" for c in dataset.class_names)
    (root / "classes.txt").write_text(classes, encoding="utf-8", newline="\n")
    return root


# ---------------------------------------------------------------------------------------------
# COCO: one json with images, annotations (bbox = [x, y, w, h]) and categories


class _JsonLines:
    """Finds the line each element of a top-level JSON array starts on, for error messages.

    ``json`` keeps no positions, so the file is scanned again, once per array and only when an
    error needs a line.
    """

    def __init__(self, text: str):
        self.text = text
        self._found: dict[str, tuple[int, ...]] = {}

    def __call__(self, key: str, index: int) -> int | None:
        if key not in self._found:
            self._found[key] = self._scan(key)
        lines = self._found[key]
        return lines[index] if index < len(lines) else None

    def _scan(self, key: str) -> tuple[int, ...]:
        """Walk the top-level object to ``key`` and then its array, value by value."""
        text, decoder, space = self.text, json.JSONDecoder(), re.compile(r"[ \t\n\r]*")
        try:
            i = space.match(text, 0).end() + 1  # past '{'
            while True:
                name, i = decoder.raw_decode(text, space.match(text, i).end())
                i = space.match(text, space.match(text, i).end() + 1).end()  # past ':'
                if name == key:
                    return self._scan_array(i, decoder, space)
                _, i = decoder.raw_decode(text, i)
                i = space.match(text, i).end() + 1  # past ','
        except (ValueError, IndexError):
            return ()

    def _scan_array(self, i: int, decoder: json.JSONDecoder, space: re.Pattern) -> tuple[int, ...]:
        text, lines = self.text, []
        i = space.match(text, i + 1).end()  # past '['
        line, counted = _line_at(text, i), i  # count newlines as we go: linear, not quadratic
        while text[i] != "]":
            line, counted = line + text.count("\n", counted, i), i
            lines.append(line)
            _, i = decoder.raw_decode(text, i)
            i = space.match(text, i).end()
            if text[i] == ",":
                i = space.match(text, i + 1).end()
        return tuple(lines)


def _load_json(path: Path) -> tuple[dict, _JsonLines]:
    """The parsed COCO document, checked to have its lists, and a line finder for its entries."""
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelError(
            f"malformed JSON: {err.msg} (column {err.colno})", path, err.lineno
        ) from None
    except RecursionError:
        raise LabelError("malformed JSON: nested too deeply", path) from None
    if not isinstance(document, dict):
        raise LabelError("expected a JSON object with images, annotations, categories", path)
    document.setdefault("annotations", [])  # a test set may have none
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise LabelError(f"expected '{key}' to be a list", path)
    return document, _JsonLines(text)


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer too big for a float
        return False


@dataclass
class _CocoFile:
    """The json being read, to word errors with the line of the entry they are about."""

    path: Path
    lines: _JsonLines

    def error(self, key: str, index: int, message: str) -> LabelError:
        return LabelError(message, self.path, self.lines(key, index))


def _coco_categories(document: dict, source: _CocoFile, class_names) -> tuple[dict, list[str]]:
    """Map category id -> class id (sorted category ids, or by name onto ``class_names``)."""
    categories = {}
    for k, category in enumerate(document["categories"]):
        if not (
            isinstance(category, dict)
            and _is_id(category.get("id"))
            and isinstance(category.get("name"), str)
        ):
            raise source.error("categories", k, f"category {k}: expected {{'id': .., 'name': ..}}")
        if category["id"] in categories:
            raise source.error("categories", k, f"category {k}: id {category['id']!r} repeats")
        categories[category["id"]] = (k, category["name"])
    order = sorted(categories, key=lambda c: (isinstance(c, str), c))  # ids may be int or str
    if class_names is None:
        return {c: k for k, c in enumerate(order)}, [categories[c][1] for c in order]
    index = {name: k for k, name in enumerate(class_names)}
    for k, name in categories.values():
        if name not in index:
            message = f"category {name!r} is not one of the classes {_preview(class_names)}"
            raise source.error("categories", k, message)
    return {c: index[name] for c, (_, name) in categories.items()}, list(class_names)


def _coco_image(k: int, entry, images_dir: Path, source: _CocoFile) -> _Item:
    """Entry ``k`` of ``images`` read from ``images_dir``, its stated size checked."""
    if not (
        isinstance(entry, dict)
        and _is_id(entry.get("id"))
        and isinstance(entry.get("file_name"), str)
    ):
        raise source.error("images", k, f"image {k}: expected {{'id': .., 'file_name': ..}}")
    image = _read_image(images_dir / entry["file_name"])
    height, width = image.shape[:2]
    stated = (entry.get("width", width), entry.get("height", height))
    if stated != (width, height):
        message = (
            f"image {k} ({entry['file_name']}): width, height = {stated[0]!r}, {stated[1]!r} but "
            f"the file is {width}x{height}; expected the size of the image file"
        )
        raise source.error("images", k, message)
    return _Item(Path(entry["file_name"]).stem, image)


def _coco_object(k, annotation, items: dict, category_to_class: dict, source, on_error):
    """Annotation ``k`` as ``(image_id, _Object)``, or ``None``.

    ``items`` maps every image id to its ``_Item``, or to ``None`` for an image that was skipped.
    """
    if not isinstance(annotation, dict):
        raise source.error("annotations", k, f"annotation {k}: expected a JSON object")
    where = f"annotation {k} (id {annotation.get('id')!r})"
    image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
    if not _is_id(image_id) or image_id not in items:
        raise source.error("annotations", k, f"{where}: unknown image_id {image_id!r}")
    if not _is_id(category_id) or category_id not in category_to_class:
        known = _preview(list(category_to_class))
        message = f"{where}: unknown category_id {category_id!r}; expected one of {known}"
        raise source.error("annotations", k, message)
    bbox = annotation.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
        message = f"{where}: bbox {bbox!r}; expected [x, y, w, h], 4 finite numbers"
        raise source.error("annotations", k, message)
    if annotation.get("iscrowd") or items[image_id] is None:  # crowds are skipped, as Ultralytics
        return None
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        _drop_degenerate(
            source.error("annotations", k, f"{where}: bbox w {w:g}, h {h:g}: expected both > 0"),
            on_error,
        )
        return None
    height, width = items[image_id].image.shape[:2]
    outside = (
        f"{where}: bbox [x, y, w, h] = [{x:g}, {y:g}, {w:g}, {h:g}] reaches outside the "
        f"{width}x{height} image; expected 0 <= x, x + w <= {width} and 0 <= y, y + h <= {height}"
    )
    locate = functools.partial(source.error, "annotations", k)
    box = _fit_box((x, y, x + w, y + h), width, height, PIXEL_TOLERANCE, on_error, locate, outside)
    if box is None:
        return None
    return image_id, _Object(box, category_to_class[category_id], source.path, line=None)


def _coco_images(document: dict, images_dir: Path, source: _CocoFile, on_error: str) -> dict:
    """Image id -> ``_Item``, in json order; a skipped image maps to ``None``."""
    items = {}
    for k, entry in enumerate(document["images"]):
        try:
            item = _coco_image(k, entry, images_dir, source)
            if entry["id"] in items:
                raise source.error("images", k, f"image {k}: id {entry['id']!r} repeats")
        except (ImageError, LabelError) as error:
            _tolerate(error, on_error)
            if isinstance(entry, dict) and _is_id(entry.get("id")):
                items.setdefault(entry["id"], None)  # its annotations go with it
            continue
        items[entry["id"]] = item
    return items


def read_coco(json_path, images_dir=None, *, on_error: str = "raise", class_names=None):
    """Read a COCO detection json: ``images``, ``annotations`` and ``categories``.

    A ``bbox`` is ``[x, y, w, h]`` in 0-based pixels, so ``xyxy = [x, y, x + w, y + h]``. Category
    ids (any, e.g. COCO's 1..90 with gaps) become class ids 0, 1, 2, ... in sorted order, keeping
    the names. ``iscrowd`` annotations are skipped (as Ultralytics does). Images keep the json's
    order; their names are the file stems.

    Args:
        json_path: the annotations file, or a folder holding ``annotations.json``.
        images_dir: where ``file_name`` is relative to; default ``images/`` beside the json.
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the module docstring).
        class_names: map categories to these classes by name instead of by sorted id.

    Returns:
        A ``BoxDataset``. Errors name the json and the line of the offending entry.
    """
    _check_on_error(on_error)
    json_path = Path(json_path)
    if json_path.is_dir():
        json_path = json_path / "annotations.json"
    images_dir = Path(images_dir) if images_dir is not None else json_path.parent / "images"
    document, lines = _load_json(json_path)
    source = _CocoFile(json_path, lines)
    category_to_class, names = _coco_categories(document, source, class_names)
    items = _coco_images(document, images_dir, source, on_error)
    for k, annotation in enumerate(document["annotations"]):
        try:
            found = _coco_object(k, annotation, items, category_to_class, source, on_error)
        except LabelError as error:
            _tolerate(error, on_error)
            continue
        if found is not None:
            items[found[0]].objects.append(found[1])
    return _assemble([item for item in items.values() if item is not None], names)


def _coco_bboxes(boxes: np.ndarray, width: int, height: int) -> list[list[float]]:
    """``[x, y, w, h]`` for ``xyxy`` boxes, with the fewest decimals that read back exactly."""

    def decode(xywh):  # what read_coco does with a valid bbox
        return _clip_boxes(
            np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1), width, height
        )

    xyxy = boxes.astype(np.float64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # (N, 4)
    return [[float(t) for t in row] for row in _shortest_decimals(xywh, decode, boxes)]


def _dump_json(document: dict[str, list]) -> str:
    """JSON with sorted keys and one array element a line: byte-stable, and each annotation has
    its own line for error messages."""
    parts = []
    for key in sorted(document):
        rows = ",\n".join(
            json.dumps(row, sort_keys=True, ensure_ascii=False) for row in document[key]
        )
        parts.append(f"{json.dumps(key)}: [\n{rows}\n]" if rows else f"{json.dumps(key)}: []")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_coco(dataset: BoxDataset, root) -> Path:
    """Write a dataset as COCO: ``images/<name>.png`` and ``annotations.json``.

    Image ids are ``1..``, category ids ``class id + 1`` (COCO's ids start at 1), annotation ids
    ``1..``; ``bbox = [x1, y1, x2 - x1, y2 - y1]``, ``area = w * h``, ``iscrowd = 0``.

    Returns:
        The path of ``annotations.json``, ready for ``read_coco``.
    """
    _check_names(dataset)
    boxes = [_writable_boxes(i, dataset) for i in range(len(dataset))]
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k, (name, image, labels) in enumerate(zip(dataset.names, dataset.images, dataset.labels)):
        height, width = image.shape[:2]
        _write_png(root / "images" / f"{name}.png", image)
        images.append({"id": k + 1, "file_name": f"{name}.png", "width": width, "height": height})
        for bbox, label in zip(_coco_bboxes(boxes[k], width, height), labels):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(label) + 1,
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], 6),
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": k + 1, "name": name, "supercategory": "none"}
        for k, name in enumerate(dataset.class_names)
    ]
    path = root / "annotations.json"
    document = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(_dump_json(document), encoding="utf-8", newline="\n")
    return path


# ---------------------------------------------------------------------------------------------
# Conversion


def convert(src, src_format: str, dst, dst_format: str, *, on_error: str = "raise") -> BoxDataset:
    """Read ``src`` in one format and write it to ``dst`` in another; return the dataset read.

    Formats are ``"yolo"``, ``"voc"`` and ``"coco"``; ``src`` is what the reader takes (for COCO,
    the json or the folder holding ``annotations.json`` with ``images/``).
    """
    readers = {"yolo": read_yolo, "voc": read_voc, "coco": read_coco}
    writers = {"yolo": write_yolo, "voc": write_voc, "coco": write_coco}
    for name in (src_format, dst_format):
        if name not in readers:
            raise ValueError(f"unknown format {name!r}; expected 'yolo', 'voc' or 'coco'")
    dataset = readers[src_format](src, on_error=on_error)
    writers[dst_format](dataset, dst)
    return dataset
