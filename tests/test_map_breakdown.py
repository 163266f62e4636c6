"""benchmarks/map_breakdown.py: the split of mAP50 into class-agnostic, per class and by size."""


import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("map_breakdown")


def _scene():
    # whole-pixel boxes of sides 8, 10, 16 and 40: 10 and 16 sit on the edges of the ranges
    boxes = np.array([[0, 0, 8, 8], [20, 0, 30, 10], [40, 0, 56, 16], [60, 0, 100, 40]], float)
    return {"boxes": boxes, "labels": np.array([0, 1, 0, 1])}


def test_each_whole_pixel_box_counts_in_one_size_range(bench):
    target = _scene()
    perfect = {**target, "scores": np.ones(4)}
    out = bench.breakdown([perfect], [target], ["a", "b"])
    assert [out[f"n_{name}"] for name in bench.AREA_RANGES] == [1, 1, 1, 1]
    assert out["map50"] == out["agnostic_map50"] == 1.0
    assert all(out[f"ap50_{name}"] == 1.0 for name in bench.AREA_RANGES)


def test_right_boxes_with_swapped_classes_score_only_class_agnostic(bench):
    target = _scene()
    swapped = {"boxes": target["boxes"], "labels": 1 - target["labels"], "scores": np.ones(4)}
    out = bench.breakdown([swapped], [target], ["a", "b"])
    assert out["map50"] == 0.0 and out["agnostic_map50"] == 1.0
    assert out["ap50_side_ge32"] == 0.0 and out["agnostic_ap50_side_ge32"] == 1.0
    assert out["per_class_ap"] == {"a": 0.0, "b": 0.0}
