"""Datasets made offline by our own code, label formats and box-safe augmentation."""

from yolo_teach.data.core import BoxDataset

__all__ = ["BoxDataset"]
