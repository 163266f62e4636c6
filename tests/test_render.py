import numpy as np

from yolo_teach.viz.draw import class_color
from yolo_teach.viz.render import _rgb, render_boxes


def test_render_boxes_draws_the_class_colour_on_the_box_edge_only():
    image = np.zeros((50, 60, 3), np.uint8)
    out = render_boxes(image, [[10, 20, 40, 45]], labels=[2])
    assert image.sum() == 0  # the input is untouched
    assert tuple(out[45, 25]) == _rgb(class_color(2))  # bottom edge
    assert out[30, 25].sum() == 0  # inside stays as it was


def test_render_boxes_with_tags_and_no_boxes():
    image = np.full((40, 40, 3), 128, np.uint8)
    tagged = render_boxes(image, [[5, 15, 30, 35]], [0], [0.9], ["thing"])
    assert not np.array_equal(tagged[5:15], image[5:15])  # the tag sits above the box
    assert np.array_equal(render_boxes(image, np.zeros((0, 4))), image)
