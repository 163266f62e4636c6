"""deploy.fuse on every registered detector, the fused ONNX export, and the latency benchmark.

Every detector of the registry is covered without naming it here: the small ones (under
``SMALL`` parameters, counted on the meta device) are built on the CPU with random BatchNorm
statistics and compared fused against unfused; every one, the full-size models included, is
fused on the meta device, where the parameter count and the output shapes are checked without
allocating a weight.
"""

import json
from functools import cache

import pytest
import torch
from torch import nn

from yolo_teach.deploy import fuse
from yolo_teach.detectors import build_detector
from yolo_teach.layers.conv import ConvBNAct
from yolo_teach.models.summary import count_parameters
from yolo_teach.models.timing import compare_latency
from yolo_teach.protocols import Fusable
from yolo_teach.registry import detector_names, get_spec

SMALL = 6_500_000  # parameters: the nanos and tiny models (yolov7-tiny: 6.23 M), quick on a CPU
TOLERANCE = 1e-4  # of the output's scale, max |a - b| / max |a|
ONNX_MODELS = ["yolov7-tiny", "yolov5n", "yolov4-tiny", "yolox-nano"]  # skipped if unregistered


@pytest.fixture(autouse=True)
def one_thread():
    # Two torch threads on a machine shared with other jobs made these forwards ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def parameters_on_meta(name: str) -> int:
    spec = get_spec(name)
    with torch.device("meta"):
        return count_parameters(spec.make_model(3, spec.img_size))


def small_or_skip(name: str) -> None:
    n = parameters_on_meta(name)
    if n >= SMALL:
        pytest.skip(f"{name}: {n:,} parameters, too slow for the CPU suite; its fused "
                    f"parameter count and output shapes are checked on the meta device")


@torch.no_grad()
def randomise_batch_norm_(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial mu, sigma^2, gamma, beta in every BatchNorm (fresh ones fold to identities)."""
    generator = torch.Generator().manual_seed(seed)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(0.5 * torch.randn(c, generator=generator))
            bn.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=generator))
            bn.weight.copy_(0.5 + torch.rand(c, generator=generator))
            bn.bias.copy_(0.2 * torch.randn(c, generator=generator))


def as_list(outputs) -> list[torch.Tensor]:
    return [outputs] if torch.is_tensor(outputs) else list(outputs)


def relative_error(expected, got) -> float:
    """max |a - b| over all outputs, divided by max |a|: the error relative to the output scale."""
    expected, got = as_list(expected), as_list(got)
    assert [e.shape for e in expected] == [g.shape for g in got]
    scale = max(float(e.abs().max()) for e in expected)
    return max(float((e - g).abs().max()) for e, g in zip(expected, got)) / scale


def batch_norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def fusable_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks deploy.fuse replaces: Fusable ones, top-down, not descending into them."""
    if isinstance(module, Fusable):
        return [module]
    return [block for child in module.children() for block in fusable_blocks(child)]


def check_parameter_count(model: nn.Module, fused: nn.Module) -> None:
    # A Conv+BN fold removes gamma and beta (2 C) and gives the bias-less conv a bias (C): C fewer
    # per BatchNorm of C channels. A block that collapses branches (RepConv) or folds implicit
    # knowledge removes more, so in general the fused model has at most this many. (The
    # full-size YOLOv1 has no BatchNorm, as in the paper: nothing to fold.) A BatchNorm with no
    # conv before it, fused on its own (RefineDetLite's normalisation of the input image),
    # becomes a per-channel affine with the same 2 C parameters: nothing is removed.
    folded = sum(bn.num_features for bn in batch_norms(model) if not isinstance(bn, Fusable))
    expected = count_parameters(model) - folded
    if all(isinstance(block, ConvBNAct) for block in fusable_blocks(model)):
        assert count_parameters(fused) == expected
    else:
        assert count_parameters(fused) <= expected


# --------------------------------------------------------------------- fused equals unfused
@pytest.mark.parametrize("name", detector_names())
def test_fused_detector_equals_unfused_and_leaves_the_original_alone(name):
    small_or_skip(name)
    torch.manual_seed(0)
    size = get_spec(name).img_size  # the reference size: 128 for the nanos, 416-640 otherwise
    model = build_detector(name, num_classes=3).model
    randomise_batch_norm_(model)
    model.eval()
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    norms = len(batch_norms(model))
    with torch.no_grad():
        expected = as_list(model(images))
        fused = fuse(model)
        got = as_list(fused(images))
        after = as_list(model(images))

    assert relative_error(expected, got) < TOLERANCE
    assert not batch_norms(fused)
    check_parameter_count(model, fused)
    assert count_parameters(fused) < count_parameters(model)
    # the original is untouched: same modules, same weights and statistics, same outputs
    assert norms > 0 and len(batch_norms(model)) == norms
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(a, e) for a, e in zip(after, expected))
    # fusing twice is harmless: the second fold of an nn.Identity norm copies the weights
    again = fuse(fused)
    assert again.state_dict().keys() == fused.state_dict().keys()
    assert all(torch.equal(v, fused.state_dict()[k]) for k, v in again.state_dict().items())


@pytest.mark.parametrize("name", detector_names())
def test_full_size_detector_fused_equals_unfused_at_a_small_input(name):
    # the large models at 64 px (2 x 2 cells at stride 32): the fold does not depend on the
    # input size, so this checks every full-size network of the zoo in a few seconds each
    if parameters_on_meta(name) < SMALL:
        pytest.skip(f"{name}: checked at its reference size above")
    spec = get_spec(name)
    with torch.device("meta"):
        if not batch_norms(spec.make_model(3, spec.img_size)):
            pytest.skip(f"{name}: no BatchNorm to fold, as in its paper (YOLOv1, RefineDet)")
    model = spec.make_model(3, spec.img_size)
    size = 64 if spec.img_size % 32 == 0 else spec.img_size
    torch.manual_seed(0)
    randomise_batch_norm_(model)
    model.eval()
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = as_list(model(images))
        fused = fuse(model)
        got = as_list(fused(images))
    assert relative_error(expected, got) < TOLERANCE
    assert not batch_norms(fused)
    assert count_parameters(fused) < count_parameters(model)


def test_fuse_keeps_the_callers_training_mode():
    model = build_detector("yolov3-nano", num_classes=3, img_size=64).model.train()
    fused = fuse(model)
    assert model.training and not fused.training
    assert not any(m.training for m in fused.modules())


@pytest.mark.parametrize("name", detector_names())
def test_fused_parameter_count_and_shapes_on_meta(name):
    # Every model, the full-size ones too: on the meta device nothing is allocated or computed.
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.make_model(3, spec.img_size).eval()
        fused = fuse(model)
        images = torch.empty(1, 3, spec.img_size, spec.img_size)
        with torch.no_grad():
            shapes = [t.shape for t in as_list(model(images))]
            fused_shapes = [t.shape for t in as_list(fused(images))]
    assert not batch_norms(fused)
    check_parameter_count(model, fused)
    assert fused_shapes == shapes


# --------------------------------------------------------------------------- fused ONNX
@pytest.mark.parametrize("name", ONNX_MODELS)
def test_fused_onnx_equals_the_unfused_torch_model(name, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from yolo_teach.export import check_onnx, export_onnx

    if name not in detector_names():
        pytest.skip(f"{name} is not registered")
    torch.manual_seed(0)
    detector = build_detector(name, num_classes=3, img_size=128)
    randomise_batch_norm_(detector.model)
    path = export_onnx(detector, tmp_path / f"{name}.onnx", fuse=True)
    assert detector.model.training and batch_norms(detector.model)  # the detector is unchanged

    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    model = detector.model.eval()
    with torch.no_grad():
        expected = as_list(model(images))
    scale = max(float(e.abs().max()) for e in expected)
    # ONNX Runtime on the fused file against PyTorch on the unfused model: fold and export
    assert check_onnx(path, model, images) / scale < TOLERANCE
    # the graph is the fused network's: one Conv node per convolution, no BatchNormalization
    nodes = [node.op_type for node in onnx.load(str(path)).graph.node]
    convs = sum(isinstance(m, nn.Conv2d) for m in fuse(model).modules())
    assert "BatchNormalization" not in nodes and nodes.count("Conv") == convs


def test_fused_onnx_collapses_the_branches_the_exporter_keeps(tmp_path):
    # The exporter folds Conv+BN by itself, but not RepConv's three parallel branches.
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from yolo_teach.export import check_onnx, export_onnx

    rep_conv = pytest.importorskip("yolo_teach.layers.rep").RepConv
    torch.manual_seed(0)
    network = nn.Sequential(rep_conv(3, 3)).eval()  # 3x3, 1x1 and identity branches
    randomise_batch_norm_(network)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    nodes = {}
    for fused in (False, True):
        path = export_onnx(network, tmp_path / f"rep-{fused}.onnx", img_size=16, fuse=fused)
        nodes[fused] = [node.op_type for node in onnx.load(str(path)).graph.node]
        assert check_onnx(path, network, images) < TOLERANCE  # outputs are O(1) here
    assert nodes[False].count("Conv") == 2 and "BatchNormalization" in nodes[False]
    assert nodes[True].count("Conv") == 1 and "BatchNormalization" not in nodes[True]


# ------------------------------------------------------------------------------- latency
def test_compare_latency_interleaves_the_calls_after_the_warmup():
    calls = []
    result = compare_latency({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             warmup=1, repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up of each, then A, B rounds
    for r in result.values():
        assert len(r["times_ms"]) == 3 and (r["repeats"], r["warmup"]) == (3, 1)
        assert r["min_ms"] <= r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] <= r["max_ms"]
    with pytest.raises(ValueError, match="repeats"):
        compare_latency({"a": lambda: None}, repeats=0)


def test_latency_benchmark_smoke(tmp_path, benchmark_script):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    latency = benchmark_script("latency")
    out = tmp_path / "latency.jsonl"
    records = latency.main(["--models", "yolov5n", "--sizes", "64", "--threads", "1",
                            "--repeats", "2", "--warmup", "0", "--out", str(out)])
    assert [r["backend"] for r in records] == ["torch", "torch-fused", "onnxruntime"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    keys = {"model", "backend", "threads", "img_size", "params", "median_ms", "q1_ms", "q3_ms",
            "min_ms", "max_ms", "repeats", "warmup", "torch", "onnxruntime", "cpu"}
    assert all(keys <= r.keys() and r["median_ms"] > 0 for r in records)
    unfused, fused, runtime = (r["params"] for r in records)
    assert unfused > fused == runtime
    assert torch.get_num_threads() == 1  # the caller's thread count is restored
