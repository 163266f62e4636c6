"""Datasets made offline by our own code, label formats and box-safe augmentation."""

from yolo_teach.data.backgrounds import image_rng, load_photos, random_background
from yolo_teach.data.core import BoxDataset, build_dataset
from yolo_teach.data.ct_lesions import LESION_CLASSES, make_ct_lesions, render_ct_slice
from yolo_teach.data.ct_phantom import WINDOWS, load_example_ct, window, window_rgb
from yolo_teach.data.errors import ImageError, LabelError, LabelWarning
from yolo_teach.data.face_masks import FACE_CLASSES, make_face_masks, render_face_scene
from yolo_teach.data.formats import (
    convert,
    read_coco,
    read_voc,
    read_yolo,
    write_coco,
    write_voc,
    write_yolo,
)
from yolo_teach.data.shapes import (
    EASY_SHAPES,
    ONE_SHAPE,
    SHAPE_CLASSES,
    SMALL_SHAPES,
    make_shapes,
    render_shapes_scene,
)

__all__ = [
    "BoxDataset",
    "FACE_CLASSES",
    "ImageError",
    "LESION_CLASSES",
    "LabelError",
    "LabelWarning",
    "EASY_SHAPES",
    "ONE_SHAPE",
    "SHAPE_CLASSES",
    "SMALL_SHAPES",
    "WINDOWS",
    "build_dataset",
    "convert",
    "image_rng",
    "load_example_ct",
    "load_photos",
    "make_ct_lesions",
    "make_face_masks",
    "make_shapes",
    "random_background",
    "read_coco",
    "read_voc",
    "read_yolo",
    "render_ct_slice",
    "render_face_scene",
    "render_shapes_scene",
    "window",
    "window_rgb",
    "write_coco",
    "write_voc",
    "write_yolo",
]
