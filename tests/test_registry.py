"""The model zoo's registry: a detector defined outside the package trains through the same
wiring as the built-in ones, and nothing in the package branches on a model's name."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from yolo_teach.boxes import generalized_box_iou_loss
from yolo_teach.decode import GridSensitiveBoxCoder, YOLOv2BoxCoder
from yolo_teach.detectors import anchor_head, build_detector, official_anchors
from yolo_teach.experiment import (
    load_detector,
    make_experiment,
    options_from_meta,
    options_to_meta,
    short_run,
)
from yolo_teach.layers import AnchorHead, ConvBNAct
from yolo_teach.losses import BCEClassLoss, IoUBoxLoss, MultiAnchorAssigner, darknet_rules
from yolo_teach.protocols import DetectionModel
from yolo_teach.registry import (
    AnchorSet,
    DetectorSpec,
    detector_names,
    get_spec,
    register,
    unregister,
)

PACKAGE = Path(__file__).resolve().parents[1] / "yolo_teach"


class ToyDetector(nn.Module):
    """Two strided convs and an anchor head on one stride-16 map: the smallest detector."""

    strides = (16,)

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(ConvBNAct(3, 8, 3, stride=4), ConvBNAct(8, 16, 3, stride=4))
        self.head = AnchorHead((16,), num_anchors=2, num_classes=num_classes)
        self.init_bias()

    def forward(self, images):
        return self.head([self.body(images)])  # [(B, 2 (5 + K), H/16, W/16)]

    def init_bias(self, prior: float = 0.01) -> None:
        self.head.init_bias(prior)


TOY = DetectorSpec(
    name="toy-test",
    make_model=lambda num_classes, img_size: ToyDetector(num_classes),
    make_head=anchor_head,
    img_size=64,
    anchors=AnchorSet(sizes=((16, 16), (32, 24)), masks=((0, 1),), reference_size=64),
    rules=darknet_rules(),
    short_run={"lr": 0.001},
)


@pytest.fixture
def toy():
    register(TOY)
    yield TOY
    unregister(TOY.name)


def test_a_detector_registered_outside_the_package_trains_one_step(toy, tmp_path):
    assert "toy-test" in detector_names()
    assert short_run("toy-test")["lr"] == 0.001  # its own recipe change
    exp = make_experiment("toy-test", "shapes", img_size=64, n_train=4, n_val=2, epochs=1,
                          batch_size=4, out_dir=tmp_path, progress=False, val_every=0)
    assert isinstance(exp.detector.model, ToyDetector)
    assert [len(a) for a in exp.detector.anchors] == [2]  # k-means fitted 2 anchors
    history = exp.trainer.fit()
    assert len(history) == 1 and history[0]["iteration"] == 1
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
    detector, meta = load_detector(tmp_path / "last.pt")
    assert meta["model"] == "toy-test" and isinstance(detector.model, ToyDetector)


def test_registering_a_taken_name_from_elsewhere_is_an_error(toy):
    with pytest.raises(ValueError, match="already registered"):
        register(DetectorSpec(name="yolov3-nano", make_model=lambda k, s: None,
                              make_head=anchor_head, img_size=128))
    with pytest.raises(ValueError, match="unknown detector"):
        get_spec("yolov9")
    with pytest.raises(ValueError, match="default rule"):
        DetectorSpec(name="x", make_model=None, make_head=None, img_size=1,
                     rules={"a": None}, default_rule="b")


def test_built_models_are_ready_and_follow_the_protocol():
    for name in ("yolov1-nano", "yolov2-nano", "yolov3-nano"):
        det = build_detector(name, 3)
        assert isinstance(det.model, DetectionModel)
        assert det.rule == get_spec(name).default_rule
    # bias initialisation is part of building: sigmoid(t_o) starts at 0.01 without a trainer
    head = build_detector("yolov3-nano", 3).model.head.branches[0][-1]
    assert torch.sigmoid(head.bias.view(3, 8)[:, 4]).allclose(torch.tensor(0.01))


def test_anchor_units_are_stated_and_rescaled():
    # YOLOv2: cells of stride 32 -> 1.3221 * 32 = 42.31 px at 416, half at 208
    assert official_anchors("yolov2", 208)[0][0, 0].item() == pytest.approx(1.3221 * 16)
    cells = AnchorSet(sizes=((1, 2),), masks=((0,),), unit="cells", cell_stride=32)
    assert cells.pixels(416)[0].tolist() == [[32.0, 64.0]]
    with pytest.raises(ValueError, match="unit"):
        AnchorSet(sizes=((1, 2),), masks=((0,),), unit="inches")
    with pytest.raises(ValueError, match="same number"):
        AnchorSet(sizes=((1, 2), (3, 4), (5, 6)), masks=((0,), (1, 2)))


def test_loss_options_survive_the_checkpoint_meta():
    options = {"box_loss": IoUBoxLoss(generalized_box_iou_loss), "cls_gain": 0.5,
               "class_loss": BCEClassLoss(label_smoothing=0.1),
               "assigner": MultiAnchorAssigner(0.3),
               "coder": [GridSensitiveBoxCoder(1.2), YOLOv2BoxCoder()]}
    plain = options_to_meta(options)
    assert plain["box_loss"] == {"object": "yolo_teach.losses.terms:IoUBoxLoss", "args": {
        "loss": {"function": "yolo_teach.boxes:generalized_box_iou_loss"}}}
    back = options_from_meta(plain)
    assert back["box_loss"] == options["box_loss"] and back["class_loss"] == options["class_loss"]
    assert back["assigner"].iou_threshold == 0.3 and back["coder"] == options["coder"]
    with pytest.raises(ValueError, match="cannot be saved"):
        options_to_meta({"box_loss": lambda m: m.t.sum(1)})
    with pytest.raises(ValueError, match="refusing"):
        options_from_meta({"x": {"function": "os:system"}})


def test_grid_sensitive_coder_reaches_the_cell_borders():
    coder = GridSensitiveBoxCoder(scale_xy=1.2)
    assert coder.centre_range == pytest.approx((-0.1, 1.1))
    # t_x = 0: 1.2 * 0.5 - 0.1 = 0.5, the cell centre; t_w = 0: the anchor
    box = coder.decode(torch.zeros(4), torch.tensor([3.0, 4.0]), torch.tensor([2.0, 1.0]))
    assert box.tolist() == pytest.approx([3.5, 4.5, 2.0, 1.0])
    # a centre exactly on the border is reached by a finite t: sigma(t) = 1.1 / 1.2
    border = torch.tensor([4.0, 4.0, 1.0, 1.0])
    t = coder.encode(border, torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0]))
    assert torch.isfinite(t).all()
    assert coder.decode(t, torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0])).tolist() == (
        pytest.approx(border.tolist(), abs=1e-5))


def test_no_dispatch_on_model_names_in_the_package():
    # e.g. name.startswith("yolov2"), model.removesuffix("-nano"), family == "yolov2"
    pattern = re.compile(r"""(startswith|removesuffix|removeprefix)\(\s*["'](yolo[vx]|-nano)"""
                         r"""|==\s*["']yolo[vx]""")
    offenders = [f"{path.relative_to(PACKAGE)}:{i}" for path in PACKAGE.rglob("*.py")
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
