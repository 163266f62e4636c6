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

from yolo_teach.data.core import BoxDataset
from yolo_teach.data.errors import ImageError, LabelError, LabelWarning
from yolo_teach.data.formats.coco import read_coco, write_coco
from yolo_teach.data.formats.common import IMAGE_SUFFIXES, NORMALISED_TOLERANCE, PIXEL_TOLERANCE
from yolo_teach.data.formats.voc import read_voc, write_voc
from yolo_teach.data.formats.yolo import read_yolo, write_yolo

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
