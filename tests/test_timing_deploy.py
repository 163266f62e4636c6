"""deploy_latency: three backends timed side by side on one network (notebook 15)."""

import pytest
import torch
from torch import nn

from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.models.timing import DEPLOY_BACKENDS, cpu_name, deploy_latency

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FIELDS = {"model", "backend", "threads", "img_size", "batch", "params", "median_ms", "q1_ms",
          "q3_ms", "min_ms", "max_ms", "times_ms", "repeats", "warmup"}


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(ConvBNAct(3, 4, 3, stride=2), ConvBNAct(4, 4, 3))


def test_one_record_per_backend_with_the_benchmark_fields():
    network = tiny().train()
    state = {k: v.clone() for k, v in network.state_dict().items()}
    threads = torch.get_num_threads()
    records = deploy_latency(network, 32, threads=1, warmup=1, repeats=3, name="tiny")
    assert [r["backend"] for r in records] == list(DEPLOY_BACKENDS)
    for r in records:
        assert set(r) == FIELDS
        assert (r["model"], r["threads"], r["img_size"], r["batch"]) == ("tiny", 1, 32, 1)
        assert (r["repeats"], r["warmup"], len(r["times_ms"])) == (3, 1, 3)
        assert 0 < r["min_ms"] <= r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] <= r["max_ms"]
    # two BatchNorms of 4 channels: gamma, beta (8) out and a conv bias (4) in, per BatchNorm
    params = [r["params"] for r in records]
    assert params == [params[0], params[0] - 8, params[0] - 8]
    assert torch.get_num_threads() == threads  # the caller's setting is back
    assert network.training  # and the network as it was, weights and statistics included
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_cpu_name_names_something():
    assert isinstance(cpu_name(), str) and cpu_name()
