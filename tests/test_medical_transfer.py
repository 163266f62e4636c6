"""benchmarks/medical_transfer.py (notebook 17): the plan of runs, resuming, one tiny run."""

import json

import pytest
import torch

from yolo_teach.detectors import build_detector


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("medical_transfer")


def test_plan_runs_the_first_seed_then_table1_then_the_other_seeds(bench):
    jobs = bench.plan(None, (32, 512), (0, 1), 600)
    assert [(j["experiment"], j["start"], j["n_train"], j["seed"]) for j in jobs] == [
        ("curve", "pretrained", 32, 0), ("curve", "scratch", 32, 0),
        ("curve", "pretrained", 512, 0), ("curve", "scratch", 512, 0),
        ("table1", "pretrained", 512, 0), ("table1", "pretrained", 512, 0),
        ("curve", "pretrained", 32, 1), ("curve", "scratch", 32, 1),
        ("curve", "pretrained", 512, 1), ("curve", "scratch", 512, 1)]
    assert [j["model"] for j in bench.plan("table1", (32, 512), (0, 1), 600)] == [
        "yolov5-cpu-nano-se", "yolov5-cpu-nano-se-mish"]
    assert all(j["steps"] == 600 for j in jobs)


def test_a_tiny_pretrained_run_records_its_transfer_and_resumes(bench, tmp_path, monkeypatch):
    # a 64 px stand-in for the shapes checkpoint: the benchmark only needs a loadable run
    torch.manual_seed(0)
    weights = tmp_path / "start.pt"
    detector = build_detector("yolov5-cpu-nano", 7, 64)
    torch.save({"model": detector.model.state_dict(),
                "meta": {"model": "yolov5-cpu-nano", "assign": "neighbours", "img_size": 64,
                         "class_names": [str(k) for k in range(7)]}}, weights)
    for name, value in (("IMG_SIZE", 64), ("DATA_SIZE", 64), ("N_VAL", 4), ("BOOTSTRAP", 5),
                        ("SIZES", (8,))):
        monkeypatch.setattr(bench, name, value)
    out = tmp_path / "rows.jsonl"
    args = ["--only", "table1", "--sizes", "8", "--seeds", "0", "--steps", "1", "--out", str(out),
            "--weights", str(weights)]
    monkeypatch.setattr(bench, "VARIANTS", (bench.BASE, "yolov5-cpu-nano-se"))
    records = bench.main(args)
    assert len(records) == 1 and records[0]["model"] == "yolov5-cpu-nano-se"
    row = json.loads(out.read_text())
    assert row["iterations"] == 1 and row["n_train"] == 8 and row["n_val"] == 4
    assert row["new"] == 16 and row["skipped"] == 6 and row["loaded"] > 300  # SE new, head 7->6
    assert row["class_table"][-1]["class"] == "all" and len(row["examples"]) <= bench.EXAMPLES
    assert bench.main(args) == []  # resumed: nothing left to do
