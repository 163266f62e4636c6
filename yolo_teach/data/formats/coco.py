"""COCO: one json with ``images``, ``annotations`` (``bbox = [x, y, w, h]``, 0-based pixels) and
``categories``, beside an ``images/`` folder.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError
from yolo_teach.data.formats.common import (
    PIXEL_TOLERANCE,
    _assemble,
    _check_on_error,
    _drop_degenerate,
    _fit_box,
    _Item,
    _line_at,
    _Object,
    _preview,
    _read_image,
    _read_text,
    _tolerate,
    _write_png,
)
from yolo_teach.data.formats.writing import _clip_boxes, _shortest_decimals, _writable_dataset


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
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the package docstring).
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
    boxes = _writable_dataset(dataset)
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
