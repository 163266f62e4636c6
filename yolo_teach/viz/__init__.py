"""Drawing and widgets: thin views over the tested functions of the package.

* :mod:`~yolo_teach.viz.draw`: boxes with labels and scores on a matplotlib axes, one class palette;
* :mod:`~yolo_teach.viz.geometry`: pictures and numbers of IoU, GIoU, DIoU and CIoU;
* :mod:`~yolo_teach.viz.widgets`: the IoU playground and the NMS explorer (ipywidgets).
"""

from yolo_teach.viz.draw import (
    CLASS_COLORS,
    class_color,
    class_legend,
    draw_boxes,
    draw_canvas,
    draw_nms_step,
)
from yolo_teach.viz.geometry import (
    box_geometry,
    draw_iou_geometry,
    iou_family_curves,
    iou_family_values,
    plot_iou_curves,
)
from yolo_teach.viz.widgets import (
    NMS_METHODS,
    NMSResult,
    apply_nms,
    greedy_nms_steps,
    iou_playground,
    nms_explorer,
)

__all__ = [
    "CLASS_COLORS",
    "NMS_METHODS",
    "NMSResult",
    "apply_nms",
    "box_geometry",
    "class_color",
    "class_legend",
    "draw_boxes",
    "draw_canvas",
    "draw_iou_geometry",
    "draw_nms_step",
    "greedy_nms_steps",
    "iou_family_curves",
    "iou_family_values",
    "iou_playground",
    "nms_explorer",
    "plot_iou_curves",
]
