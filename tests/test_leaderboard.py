"""The evolution leaderboard's rows, table, Pareto front and plot (benchmarks/leaderboard.py)."""

import json

import matplotlib
import pytest

from yolo_teach.leaderboard import (
    NANOS,
    append_row,
    leaderboard,
    leaderboard_rule,
    markdown_table,
    plot_leaderboard,
    read_rows,
    row_key,
    speed_row,
)
from yolo_teach.registry import detector_names

matplotlib.use("Agg")


def train(model, seed, map_50, budget="1000 steps", assign="neighbours"):
    return {"kind": "train", "model": model, "assign": assign, "seed": seed, "img_size": 128,
            "budget": budget, "map_50": map_50, "map": map_50 / 2, "images_per_second": 100.0}


def speed(model, ms):
    return {"kind": "speed", "model": model, "img_size": 128, "params": 1000, "gflops": 0.1,
            "train_images_per_second": 90.0, "latency_ms_torch": ms,
            "latency_ms_onnxruntime": ms / 3}


def test_every_nano_is_registered_and_gets_one_rule():
    assert set(NANOS) <= set(detector_names())
    assert [leaderboard_rule(m) for m in ("yolov1-nano", "yolov3-nano", "yolox-cpu-nano",
                                          "refinedet-lite-nano")] == ["single", "neighbours",
                                                                      "simota", "basic"]


def test_table_joins_rows_averages_seeds_and_marks_the_pareto_front():
    rows = [train("a", 0, 0.5), train("a", 1, 0.7), train("b", 0, 0.4), train("b", 1, 0.4),
            train("c", 0, 0.9), train("c", 0, 0.1, budget="50 steps"),
            speed("a", 10.0), speed("b", 5.0), speed("c", 30.0), speed("d", 1.0)]
    table = leaderboard(rows, order=("c", "b", "a", "d"))
    assert [t["model"] for t in table] == ["c", "b", "a", "d"]
    by = {t["model"]: t for t in table}
    assert by["a"]["map_50"] == pytest.approx(0.6) and by["a"]["seeds"] == [0, 1]
    assert by["a"]["map_50_std"] == pytest.approx(0.1414, abs=1e-4)
    assert by["c"]["map_50"] == 0.9 and by["c"]["map_50_std"] == 0.0  # one seed, the budget's
    assert by["d"]["map_50"] is None and by["d"]["seeds"] == []  # timed, never trained
    # a (0.6, 10 ms) beats nothing faster and more accurate; b is fastest; c most accurate
    assert [by[m]["pareto"] for m in "abcd"] == [True, True, True, False]
    rows.append(train("e", 0, 0.3))
    rows.append(speed("e", 20.0))  # slower than a and less accurate: dominated
    assert not {t["model"]: t for t in leaderboard(rows)}["e"]["pareto"]


def test_markdown_and_plot():
    table = leaderboard([train("a", 0, 0.5), speed("a", 10.0), speed("b", 2.0)])
    text = markdown_table(table)
    assert text.splitlines()[2].startswith("| a | neighbours | 1,000 | 0.100 | 90 | 10.0 / 3.3 "
                                           "| 0.500 ± 0.000 | 0.250 ± 0.000 | 1 | yes |")
    assert "| b | - |" in text
    ax = plot_leaderboard(table)
    assert len(ax.texts) == 1 and "1000 steps" in ax.get_ylabel()


def test_rows_append_and_survive_a_line_cut_short(tmp_path):
    path = tmp_path / "sub" / "rows.jsonl"
    assert read_rows(path) == []
    append_row(path, train("a", 0, 0.5))
    with path.open("a") as f:
        f.write('{"kind": "train", "mod')  # a write interrupted half-way
    assert read_rows(path) == [train("a", 0, 0.5)]
    assert row_key(read_rows(path)[0]) == ("train", "a", "neighbours", "1000 steps", 0, 128)
    assert row_key(speed("a", 1.0)) == ("speed", "a", 128)
    json.dumps(read_rows(path))


def test_speed_row_times_a_nano():
    row = speed_row("yolov1-nano", img_size=64, repeats=1)
    assert row["kind"] == "speed" and row["params"] > 0 and row["gflops"] > 0
    assert {"latency_ms_torch", "latency_ms_torch_fused", "latency_ms_onnxruntime"} <= set(row)
    assert row["train_images_per_second"] > 0
