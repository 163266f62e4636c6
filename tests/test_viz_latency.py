"""The latency bars of notebook 15: one bar per (group, backend), heights the medians."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from yolo_teach.viz.latency_view import draw_latency, latency_groups  # noqa: E402


def record(model, backend, median, size=640, threads=1):
    return {"model": model, "backend": backend, "img_size": size, "threads": threads,
            "median_ms": median, "q1_ms": median - 1, "q3_ms": median + 2}


RECORDS = [record("yolov5n", "torch", 120.0), record("yolov5n", "torch-fused", 100.0),
           record("yolov5n", "onnxruntime", 60.0), record("yolox-nano", "torch", 40.0, 416),
           record("yolox-nano", "onnxruntime", 5.5, 416), record("yolov5n", "tvm", 1.0)]


def bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_groups_keep_the_first_seen_order_and_leave_other_backends_out():
    groups = latency_groups(RECORDS)
    assert list(groups) == [("yolov5n", 640, 1), ("yolox-nano", 416, 1)]
    assert list(groups[("yolov5n", 640, 1)]) == ["torch", "torch-fused", "onnxruntime"]
    assert "tvm" not in groups[("yolov5n", 640, 1)]


def test_one_bar_per_record_drawn_its_height_the_median():
    ax = Figure().add_subplot()
    draw_latency(ax, RECORDS)
    heights = sorted(round(b.get_height(), 3) for b in bars(ax))
    assert heights == [5.5, 40.0, 60.0, 100.0, 120.0]  # yolox-nano has no fused record
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["yolov5n\n640 px, 1 thr", "yolox-nano\n416 px, 1 thr"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["torch", "torch-fused",
                                                                   "onnxruntime"]
    values = sorted(t.get_text() for t in ax.texts)
    assert values == sorted(["120", "100", "60", "40", "5.5"])


def test_bars_of_a_group_sit_side_by_side_around_its_tick():
    ax = Figure().add_subplot()
    draw_latency(ax, RECORDS[:3], values=False)
    centres = [b.get_x() + b.get_width() / 2 for b in bars(ax)]
    width = bars(ax)[0].get_width()
    # three backends share 0.8 of a unit: centres at -w, 0, +w around the tick at 0
    assert centres == pytest.approx([-width, 0.0, width])
    assert not ax.texts


def test_the_whiskers_span_the_interquartile_range():
    ax = Figure().add_subplot()
    draw_latency(ax, [record("m", "torch", 10.0)], backends=["torch"], values=False)
    (segments,) = [c.get_segments() for c in ax.collections]
    (low, high) = segments[0][:, 1]
    assert (low, high) == (9.0, 12.0)  # q1 = median - 1, q3 = median + 2


def test_no_record_of_the_backends_is_an_error():
    with pytest.raises(ValueError, match="no latency record"):
        draw_latency(Figure().add_subplot(), RECORDS, backends=["openvino"])
