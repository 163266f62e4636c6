"""Every widget of the course: a WidgetPanel with a static view, natural-size picture and
readable text (issue #10: what GitHub shows, and what a browser shows at 100 % zoom)."""

import base64

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.data import make_shapes  # noqa: E402
from yolo_teach.viz.anchor_explorer import anchor_explorer  # noqa: E402
from yolo_teach.viz.augment_view import mosaic_preview  # noqa: E402
from yolo_teach.viz.panel import (  # noqa: E402
    MIN_TEXT_PX,
    WidgetPanel,
    scrolling,
    show_figure,
    smallest_text_px,
)
from yolo_teach.viz.prediction_explorer import prediction_explorer  # noqa: E402
from yolo_teach.viz.widgets import iou_playground, nms_explorer  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
ANCHORS = [torch.tensor([[10.0, 10], [20, 20], [16, 32]]),
           torch.tensor([[30.0, 60], [62, 45], [59, 119]]),
           torch.tensor([[116.0, 90], [156, 198], [373, 326]])]


def _scene():
    boxes = np.array([[30.0, 54, 70, 94], [4, 4, 24, 44], [60, 10, 120, 60]])
    return boxes, np.array([1, 0, 2])


def _widgets():
    boxes, labels = _scene()
    scores = np.array([0.9, 0.6, 0.8])
    preds = [{"boxes": torch.tensor(boxes), "scores": torch.tensor(scores),
              "labels": torch.tensor(labels)}] * 2
    targets = [{"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}] * 2
    names = ["circle", "square", "triangle"]
    return {
        "iou-playground": lambda: iou_playground(),
        "nms-explorer": lambda: nms_explorer(boxes, scores, labels, class_names=names),
        "mosaic-preview": lambda: mosaic_preview(make_shapes(6, 96, seed=0), size=96),
        "anchor-explorer": lambda: anchor_explorer(None, boxes, labels, ANCHORS, (8, 16, 32),
                                                   128, names, rule="neighbours"),
        "prediction-explorer": lambda: prediction_explorer(None, preds, targets, names),
    }


@pytest.mark.parametrize("name", list(_widgets()))
def test_every_widget_is_a_panel_with_a_static_view(name):
    ui = _widgets()[name]()
    assert isinstance(ui, WidgetPanel) and ui.name == name
    assert {"yolo-teach-widget", f"yt-{name}"} <= set(ui._dom_classes)
    assert "yt-picture" in ui.picture._dom_classes and ui.texts
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live: the widget
    png = base64.b64decode(bundle["image/png"])  # GitHub / nbviewer: its first view
    assert png == bytes(ui.picture.value) and png.startswith(PNG)
    assert "VBox" not in bundle["text/plain"]
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (ui.picture.layout.width, ui.picture.layout.height) == (f"{width}px", f"{height}px")
    assert ui.picture.layout.flex == "0 0 auto"  # a flex row or column cannot stretch it
    assert smallest_text_px(ui.figure) >= MIN_TEXT_PX
    for control in ui.controls.values():
        for c in control if isinstance(control, list) else [control]:
            assert any(k.startswith("yt-control-") for k in c._dom_classes)


def test_anchor_explorer_table_scrolls_inside_a_fixed_height():
    boxes, labels = _scene()
    many = np.tile(boxes, (40, 1)), np.tile(labels, 40)  # 120 ground truths, hundreds of rows
    ui = anchor_explorer(None, *many, ANCHORS, (8, 16, 32), 128, rule="neighbours")
    box = ui.children[-1]
    assert box.children == (ui.texts[1],) and box.layout.overflow == "auto"
    assert box.layout.max_height.endswith("em") and ui.texts[1].value.count("<tr>") > 100


def test_show_figure_sets_the_natural_size_and_refuses_other_widgets():
    fig, image = Figure(figsize=(2, 1), dpi=50), widgets.Image(format="png")
    fig.add_subplot().set_title("x", fontsize=9)
    show_figure(image, fig)
    assert (image.layout.width, image.layout.height) == ("100px", "50px")
    assert smallest_text_px(fig) == pytest.approx(9 * 50 / 72)
    assert smallest_text_px(Figure()) == float("inf")
    with pytest.raises(TypeError, match="Image"):
        show_figure(widgets.Output(), fig)


def test_scrolling_box():
    html = widgets.HTML("<table></table>")
    box = scrolling(html, "5em")
    assert box.children == (html,) and box.layout.max_height == "5em"
