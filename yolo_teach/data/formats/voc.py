"""Pascal VOC: ``JPEGImages/<stem>.png`` + ``Annotations/<stem>.xml`` with 1-based corners
``xmin ymin xmax ymax``, and ``classes.txt`` for the class order.
"""

from __future__ import annotations

import functools
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.parsers import expat

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
    _list_images,
    _number,
    _Object,
    _preview,
    _read_bytes,
    _read_class_list,
    _read_image,
    _tolerate,
    _write_png,
)
from yolo_teach.data.formats.writing import _clip_boxes, _shortest_decimals, _writable_dataset

_VOC_CORNERS = ("xmin", "ymin", "xmax", "ymax")


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
        on_error: ``"raise"``, ``"clip"`` or ``"skip"`` (see the package docstring).
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
    boxes = _writable_dataset(dataset)
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
