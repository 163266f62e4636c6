"""Transfer learning: weights by name and shape, re-heading, freezing, the grayscale stem."""

import pytest
import torch

from yolo_teach.checkpoint import CheckpointError, atomic_save
from yolo_teach.data.errors import UserError
from yolo_teach.detectors import build_detector
from yolo_teach.experiment import make_experiment
from yolo_teach.layers.attention import SE
from yolo_teach.optim import build_optimizer
from yolo_teach.train import TrainConfig
from yolo_teach.transfer import (
    first_conv,
    freeze,
    grayscale_first_conv,
    rehead,
    stages,
    trainable_table,
    transfer_weights,
    unfreeze,
)


def fake_run(path, name, num_classes=3, img_size=64, seed=0):
    """A checkpoint of a freshly initialised ``name``, as a run would save it."""
    torch.manual_seed(seed)
    det = build_detector(name, num_classes, img_size)
    meta = {"model": name, "assign": det.rule, "img_size": img_size,
            "class_names": [f"c{k}" for k in range(num_classes)],
            "anchors": [a.tolist() for a in det.anchors] if det.anchors else None,
            "loss_options": {}}
    atomic_save({"model": det.model.state_dict(), "meta": meta}, path)
    return det


def test_weights_of_a_related_model_load_by_name_and_shape(tmp_path):
    source = fake_run(tmp_path / "v5n.pt", "yolov5n")
    torch.manual_seed(1)
    target = build_detector("yolov5n-se-mish", 3, 64).model
    report = transfer_weights(target, tmp_path / "v5n.pt", name="yolov5n-se-mish")
    own = source.model.state_dict()
    assert report.loaded and not report.skipped
    se_blocks = [n for n, m in target.named_modules() if isinstance(m, SE)]
    assert se_blocks and all(any(n.startswith(b + ".") for b in se_blocks) for n in report.new)
    for name, value in target.state_dict().items():
        if name in report.loaded:
            assert torch.equal(value, own[name]), name
    assert report.total == len(target.state_dict())
    text = str(report)
    assert text.startswith(f"loaded {len(report.loaded)}/{report.total} tensors from ")
    assert "(yolov5n)" in text and f"new {len(report.new)}" in text


def test_weights_that_fit_nothing_are_an_error_naming_the_file(tmp_path):
    fake_run(tmp_path / "v3.pt", "yolov3-nano")
    model = build_detector("refinedet-lite-nano", 3, 64).model
    with pytest.raises(CheckpointError, match="holds a yolov3-nano; none of its tensors fits"):
        transfer_weights(model, tmp_path / "v3.pt", name="refinedet-lite-nano")
    with pytest.raises(ValueError, match="a state_dict: none of its tensors"):
        transfer_weights(model, {"x": torch.zeros(1)})


def test_rehead_keeps_everything_but_the_class_outputs():
    torch.manual_seed(0)
    det = build_detector("yolov3-nano", 3, 64)
    new, report = rehead(det, 5)
    assert new.num_classes == 5 and new.name == det.name and new.rule == det.rule
    # the three output convolutions predict A (5 + K) channels: weight and bias of each
    assert len(report.skipped) == 6 and not report.new
    for name, (theirs, ours) in report.skipped.items():
        assert theirs[0] == 3 * (5 + 3) and ours[0] == 3 * (5 + 5), name
    old = det.model.state_dict()
    for name, value in new.model.state_dict().items():
        if name not in report.skipped:
            assert torch.equal(value, old[name]), name
    assert all(torch.allclose(a, b) for a, b in zip(det.anchors, new.anchors))
    assert "yolov3-nano (3 classes)" in str(report)


def test_freeze_leaves_frozen_stages_out_of_training_and_unfreeze_restores():
    torch.manual_seed(0)
    det = build_detector("yolov3-nano", 3, 64)
    model = det.model
    assert stages(model) == ["backbone", "neck", "head"]
    total = sum(p.numel() for p in model.backbone.parameters())
    assert freeze(model, "backbone") == total
    assert freeze(model, "backbone") == 0  # already frozen
    table = {row["stage"]: row for row in trainable_table(model)}
    assert table["backbone"]["trainable"] == 0 and table["head"]["trainable"] == \
        table["head"]["params"]
    optimizer = build_optimizer(model, TrainConfig(lr=0.01))
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in in_optimizer for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.3], [1, 0, 0.3, 0.6, 0.2, 0.4]])
    loss, _ = det.criterion(model(images), targets)
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for name, _ in model.backbone.named_parameters():
        assert torch.equal(after[f"backbone.{name}"], before[f"backbone.{name}"]), name
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("head."))
    assert unfreeze(model, ["backbone"]) == total and unfreeze(model) == 0
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_names_a_missing_stage():
    model = build_detector("yolov3-nano", 3, 64).model
    with pytest.raises(UserError, match=r"has no stage 'trunk'; its stages are \['backbone'"):
        freeze(model, ["backbone", "trunk"])
    inner = next(iter(model.backbone.named_children()))[0]
    assert freeze(model, f"backbone.{inner}") > 0  # a dotted path reaches inside a stage


@pytest.mark.parametrize("name", ["yolov3-nano", "yolov5n", "yolox-cpu-nano"])
def test_grayscale_stem_on_grey_equals_rgb_on_three_copies(name):
    torch.manual_seed(0)
    model = build_detector(name, 3, 64).model.eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = model(grey.expand(-1, 3, -1, -1))
    rgb_channels = first_conv(model)[1].in_channels  # 12 for YOLOX's Focus stem: 4 patches
    conv_name = grayscale_first_conv(model)
    assert first_conv(model)[0] == conv_name
    assert first_conv(model)[1].in_channels == rgb_channels // 3
    with torch.no_grad():
        got = model(grey)
    def flat(o):
        return (list(o.values()) if isinstance(o, dict) else
                list(o) if isinstance(o, (list, tuple)) else [o])
    for a, b in zip(flat(expected), flat(got)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_grayscale_refuses_a_model_that_normalises_its_rgb_input():
    model = build_detector("refinedet-lite-nano", 3, 64).model
    with pytest.raises(ValueError, match="normalises the 3 input channels"):
        grayscale_first_conv(model)


def test_experiment_starts_from_a_related_model_and_freezes(tmp_path):
    fake_run(tmp_path / "v5n.pt", "yolov5n", num_classes=7)
    exp = make_experiment("yolov5n-se-mish", "shapes", n_train=4, n_val=2, img_size=64,
                          weights=tmp_path / "v5n.pt", freeze="backbone", progress=False,
                          out_dir=tmp_path / "run")
    assert exp.transfer is not None and exp.transfer.new
    assert exp.skipped_weights == exp.transfer.fresh
    assert exp.frozen == sum(p.numel() for p in exp.detector.model.backbone.parameters())
    assert exp.trainer.meta["freeze"] == ["backbone"]
    assert exp.trainer.meta["weights"] == str(tmp_path / "v5n.pt")
    with pytest.raises(CheckpointError, match="none of its tensors fits refinedet-lite-nano"):
        make_experiment("refinedet-lite-nano", "shapes", n_train=4, n_val=2, img_size=64,
                        weights=tmp_path / "v5n.pt", anchors="weights", progress=False)
    with pytest.raises(CheckpointError, match=r"anchors \(\[3, 3, 3\] per scale\) do not fit"):
        make_experiment("yolov4-tiny-nano", "shapes", n_train=4, n_val=2, img_size=64,
                        weights=tmp_path / "v5n.pt", anchors="weights", progress=False)
