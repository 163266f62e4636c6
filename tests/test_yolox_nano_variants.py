"""benchmarks/yolox_nano_variants.py: every run names a registered network, and the variants
are the nano with one field changed (the parameter counts of benchmarks/README.md)."""

import pytest
import torch

from yolo_teach.experiment import short_run
from yolo_teach.models.summary import count_parameters
from yolo_teach.registry import detector_names, get_spec


@pytest.fixture
def variants(benchmark_script):
    module = benchmark_script("yolox_nano_variants")
    module.register_networks()
    return module


@pytest.mark.parametrize("network, params", [
    ("yolox-cpu-nano", 897_924), ("yolox-cpu-nano:plain", 2_242_820),
    ("yolox-cpu-nano:tiny-widths", 5_034_612), ("yolox-cpu-nano:width0.375", 1_992_756),
    ("yolox-cpu-nano:width0.5", 3_518_180)])
def test_variant_parameter_counts(variants, network, params):
    with torch.device("meta"):
        model = get_spec(network).make_model(7, 256)  # the shapes data's 7 classes
    assert count_parameters(model) == params


def test_every_run_names_a_registered_network(variants):
    assert {model for model, _, _ in variants.RUNS.values()} <= set(detector_names())


def test_the_registered_wide_nano_is_the_width_0375_variant_with_its_recipe(variants):
    # the rows img256/img320+width0.375 of yolox_nano_variants.jsonl train this very network
    with torch.device("meta"):
        wide = get_spec("yolox-cpu-nano-wide").make_model(7, 320)
        variant = get_spec("yolox-cpu-nano:width0.375").make_model(7, 320)
    assert count_parameters(wide) == 1_992_756
    assert {k: v.shape for k, v in wide.state_dict().items()} == {
        k: v.shape for k, v in variant.state_dict().items()}
    assert get_spec("yolox-cpu-nano-wide").img_size == 320
    assert short_run("yolox-cpu-nano-wide")["loss_options"] == {"topk": 20}
    assert "loss_options" not in short_run("yolox-cpu-nano")  # the nano keeps the official top 10
