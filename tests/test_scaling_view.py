"""YOLOv5's compound scaling table and plot (notebook 11), from the real factories."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.models.summary import count_flops, count_parameters  # noqa: E402
from yolo_teach.models.yolov5 import yolov5n, yolov5s  # noqa: E402
from yolo_teach.viz.scaling_view import (  # noqa: E402
    YOLOV5_FACTORIES,
    format_scaling_table,
    plot_scaling,
    scaling_table,
)


@pytest.fixture(scope="module")
def rows():
    return scaling_table()


def test_the_table_has_the_official_multipliers_and_counts(rows):
    assert [r.name for r in rows] == list(YOLOV5_FACTORIES) == [f"yolov5{s}" for s in "nsmlx"]
    assert [(r.depth_multiple, r.width_multiple) for r in rows] == [
        (0.33, 0.25), (0.33, 0.5), (0.67, 0.75), (1.0, 1.0), (1.33, 1.25)]  # the yamls
    # the unfused counts of the factories' docstrings (tests/test_models_yolov5.py)
    assert [r.params for r in rows] == [1_872_157, 7_235_389, 21_190_557, 46_563_709, 86_749_405]
    assert [round(r.gflops, 2) for r in rows] == [4.47, 16.43, 48.87, 108.99, 205.45]
    assert all(r.img_size == 640 for r in rows)


def test_the_table_measures_what_it_is_given():
    small = scaling_table({"n": yolov5n, "s": yolov5s}, img_size=64, num_classes=3)
    model = yolov5s(3)
    assert small[1].params == count_parameters(model)
    assert small[1].flops == count_flops(model, 64)
    assert small[0].params < small[1].params


def test_width_acts_about_quadratically_depth_less_than_linearly(rows):
    n, s = rows[0], rows[1]  # same depth 0.33, width doubled
    assert 3.7 < s.params / n.params < 4.0  # 4 = 2^2, less the unscaled stem and head biases
    ref = rows[3]  # yolov5l: w = d = 1
    for r in rows:  # params / w^2 lies between 1 and d: not every layer repeats with depth
        per_w2 = r.params / ref.params / r.width_multiple**2  # 0.64, 0.62, 0.81, 1.0, 1.19
        assert min(r.depth_multiple, 1) - 1e-3 < per_w2 < max(r.depth_multiple, 1) + 1e-3


def test_format_lists_every_row_relative_to_the_reference(rows):
    text = format_scaling_table(rows, reference="yolov5l")
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows) and "params/yolov5l" in lines[0]
    assert lines[4].split()[0] == "yolov5l" and lines[4].split()[-2:] == ["1.000", "1.000"]
    assert "1,872,157" in lines[1] and lines[1].split()[-1] == "0.062"  # (0.25 / 1)^2
    assert format_scaling_table(rows).splitlines()[0].endswith("(w/w_ref)^2")


def test_plot_draws_two_series_and_the_w2_guides(rows):
    fig = Figure(figsize=(4, 3), dpi=50)
    ax = plot_scaling(rows, fig.subplots(), reference="yolov5l")
    lines = ax.get_lines()
    measured = [line for line in lines if line.get_marker() == "o"]
    assert len(measured) == 2 and all(len(line.get_xdata()) == 5 for line in measured)
    assert [pytest.approx(y) for y in measured[0].get_ydata()] == [r.params / 1e6 for r in rows]
    guide = lines[1]  # parameters ∝ w², through yolov5l (w = 1)
    x, y = guide.get_xdata(), guide.get_ydata()
    assert y[10] == pytest.approx(rows[3].params / 1e6 * x[10] ** 2)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.texts[:5]] == list("nsmlx")  # less the prefix "yolov5"
    assert len(ax.texts) == 10  # on both series
