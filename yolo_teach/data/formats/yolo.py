"""YOLO (Darknet / Ultralytics): ``images/<stem>.png`` + ``labels/<stem>.txt`` with one
``class cx cy w h`` line per object (divided by the image width and height), and ``data.yaml``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from yolo_teach.boxes import box_convert, xyxy_to_yolo
from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError
from yolo_teach.data.formats.common import (
    NORMALISED_TOLERANCE,
    _assemble,
    _check_on_error,
    _drop_degenerate,
    _fit_box,
    _Item,
    _list_images,
    _number,
    _Object,
    _preview,
    _read_class_list,
    _read_image,
    _read_text,
    _tolerate,
    _write_png,
)
from yolo_teach.data.formats.writing import _clip_boxes, _shortest_decimals, _writable_dataset

_YOLO_FIELDS = ("class id", "cx", "cy", "w", "h")
_MAX_INFERRED_CLASSES = 10_000  # without class names, a larger YOLO class id is taken for a typo


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
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the package docstring).
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
    boxes = _writable_dataset(dataset)
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
