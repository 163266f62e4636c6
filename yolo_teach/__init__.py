"""yolo_teach: learn the YOLO family of object detectors by building it.

Legend used in every shape comment of the package:
B batch, C channels, H W map size, N M boxes, K classes, A anchors per cell, S grid size (YOLOv1).
Boxes inside the library are ``xyxy`` in pixels unless a name or docstring says otherwise.
"""

__version__ = "0.1.0"
