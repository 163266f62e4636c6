"""The run's history files (yolo_teach.history), independent of a training loop."""

import csv
import math

from yolo_teach.history import history_columns, load_history, write_history


def test_history_round_trips_with_rows_of_different_keys(tmp_path):
    rows = [{"epoch": 1, "train_loss": 2.5}, {"epoch": 2, "train_loss": 1.5, "map_50": 0.25}]
    write_history(tmp_path, rows)
    assert load_history(tmp_path) == rows
    assert load_history(tmp_path / "history.json") == rows
    with open(tmp_path / "history.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["epoch", "train_loss", "map_50"]  # every key, in first-seen order
    assert table[0]["map_50"] == "" and table[1]["map_50"] == "0.25"
    columns = history_columns(rows)
    assert list(columns["epoch"]) == [1.0, 2.0]
    assert math.isnan(columns["map_50"][0]) and columns["map_50"][1] == 0.25
