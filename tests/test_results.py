import math

import pytest

from yolo_teach.results import read_jsonl, summarize


def test_read_jsonl_skips_blank_lines_and_names_a_bad_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"runs.jsonl:2"):
        read_jsonl(path)


def test_summarize_groups_in_first_seen_order():
    rows = [{"model": "b", "seed": 0, "map_50": 0.5}, {"model": "a", "seed": 0, "map_50": 0.2},
            {"model": "b", "seed": 1, "map_50": 0.7}]
    b, a = summarize(rows, by=("model",), metrics=("map_50",))
    # b: mean (0.5 + 0.7) / 2 = 0.6, sample std sqrt(((-0.1)^2 + 0.1^2) / 1) = 0.1414
    assert b["model"] == "b" and b["n"] == 2 and b["map_50"] == pytest.approx(0.6)
    assert b["map_50_std"] == pytest.approx(math.sqrt(0.02))
    assert (b["map_50_min"], b["map_50_max"]) == (0.5, 0.7)
    assert a["n"] == 1 and a["map_50_std"] == 0 and a["map_50"] == 0.2


def test_by_setting_groups_the_live_cell_rows_of_one_model_by_start_steps_and_overrides():
    from yolo_teach.results import by_setting

    rows = [{"model": "a", "steps": 100, "seed": 0, "options": {}, "weights": "w.pt"},
            {"model": "b", "steps": 100, "seed": 0, "options": {}, "weights": None},
            {"model": "a", "steps": 200, "seed": 0, "options": {"lr": 0.01, "warmup_iters": 15},
             "weights": None},
            {"model": "a", "steps": 100, "seed": 1, "options": {}, "weights": "w.pt"}]
    groups = by_setting(rows, "a")
    assert list(groups) == [("w.pt", 100, ""), ("from scratch", 200, "lr 0.01, warmup_iters 15")]
    assert [r["seed"] for r in groups["w.pt", 100, ""]] == [0, 1]
