"""benchmarks/yolox_nano_variants.py: every run names a registered network, and the variants
are the nano with one field changed (the parameter counts of benchmarks/README.md)."""

import pytest
import torch

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
