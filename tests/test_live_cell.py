"""benchmarks/live_cell.py (the live cells' short runs): one row per seed, overrides and a
starting checkpoint recorded as given."""

import json

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("live_cell")


def test_one_row_per_seed_with_the_overrides(bench, capsys):
    rows = bench.main(["--model", "yolox-cpu-nano", "--steps", "2", "--seeds", "0", "1",
                       "--options", '{"lr": 0.001, "warmup_iters": 1}'])
    assert [(r["seed"], r["steps"]) for r in rows] == [(0, 2), (1, 2)]
    assert all(r["options"] == {"lr": 0.001, "warmup_iters": 1} and r["weights"] is None
               for r in rows)
    assert all(0.0 <= r["map_50"] <= 1.0 for r in rows)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows


def test_a_shipped_checkpoint_is_found_by_its_file_name(bench):
    row = bench.live_run("yolov5-cpu-nano", 1, weights="yolov5-cpu-nano-shapes.pt")
    assert row["weights"] == "yolov5-cpu-nano-shapes.pt" and row["steps"] == 1


def test_weights_file_takes_a_path_as_given_and_a_name_from_the_shipped_weights(tmp_path):
    from yolo_teach import paths

    own = tmp_path / "mine.pt"
    own.write_bytes(b"")
    assert paths.weights_file(own) == own
    assert paths.weights_file("yolov5-cpu-nano-shapes.pt") == paths.weights(
        "yolov5-cpu-nano-shapes.pt")
