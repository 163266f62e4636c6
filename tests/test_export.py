import sys

import pytest
import torch

from yolo_teach.cli import main
from yolo_teach.detectors import build_detector
from yolo_teach.experiment import make_experiment

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from yolo_teach.export import INSTALL_HINT, ExportError, check_onnx, export_onnx  # noqa: E402


@pytest.mark.parametrize("name", ["yolov3-nano", "yolov1-nano", "yolov4-nano"])
def test_onnx_runtime_gives_the_raw_outputs_of_torch(name, tmp_path):
    torch.manual_seed(0)
    detector = build_detector(name, num_classes=3, img_size=64)
    path = export_onnx(detector, tmp_path / f"{name}.onnx")
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    # exported with one image, run with 3: the batch axis is dynamic
    assert check_onnx(path, detector, batch=3) < 1e-4
    assert detector.model.training  # the model's mode is restored


def test_the_dynamo_exporter_gives_the_same_outputs(tmp_path):
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    detector = build_detector("yolov1-nano", num_classes=3, img_size=64)
    path = export_onnx(detector, tmp_path / "v1.onnx", dynamo=True)
    assert check_onnx(path, detector) < 1e-4


def test_export_command_prints_the_difference(tmp_path, capsys):
    exp = make_experiment("yolov3-nano", "shapes", img_size=64, n_train=4, n_val=2,
                          batch_size=4, epochs=1, progress=False, out_dir=tmp_path / "run")
    exp.trainer.fit()
    out = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(tmp_path / "run" / "last.pt"), "--format", "onnx",
                 "--out", str(out), "--threads", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "max abs diff to PyTorch" in printed
    assert float(printed.split()[-1]) < 1e-4


def test_missing_onnx_runtime_names_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ExportError, match="yolo-teach\\[export\\]"):
        check_onnx(tmp_path / "x.onnx", build_detector("yolov1-nano", 3, 64))
    assert main(["export", "--weights", str(tmp_path / "w.pt")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"yolo-teach: error: ONNX export needs the onnxruntime "
                                f"package: {INSTALL_HINT}"]
