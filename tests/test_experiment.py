import pytest
import torch

from yolo_teach.checkpoint import load_checkpoint
from yolo_teach.data.augment import Augment
from yolo_teach.experiment import (
    AUGMENT_PRESETS,
    augmentation,
    export_weights,
    load_detector,
    make_experiment,
    short_run,
)


def test_export_weights_is_small_and_loads_like_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    exp = make_experiment("yolov3-nano", "shapes", img_size=64, n_train=8, n_val=4, epochs=1,
                          batch_size=4, out_dir=tmp_path / "run", progress=False)
    exp.trainer.fit()
    best = tmp_path / "run" / "best.pt"
    path = export_weights(best, tmp_path / "w.pt", made_by="test")
    assert path.stat().st_size < best.stat().st_size / 4  # no optimizer state, float16
    saved = load_checkpoint(path)
    assert saved["meta"]["made_by"] == "test" and saved["meta"]["model"] == "yolov3-nano"
    assert all(v.dtype == torch.float16 for v in saved["model"].values()
               if v.is_floating_point())
    assert saved["history"] == load_checkpoint(best)["history"]

    small, meta = load_detector(path)
    full, _ = load_detector(best)
    assert meta["class_names"] == exp.class_names
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(small.model(images), full.model(images)):
            assert a.dtype == torch.float32
            torch.testing.assert_close(a, b, atol=0.05, rtol=0.01)  # float16 rounding only


def test_augmentation_presets():
    assert augmentation("full") is True and augmentation("none") is False
    light = augmentation("light")
    assert light.mosaic == 0 and light.scale == 0 and light.translate == 0 and light.fliplr > 0
    custom = Augment(mosaic=0.5)
    assert augmentation(custom) is custom and augmentation(False) is False
    assert set(AUGMENT_PRESETS) == {"full", "light", "none"}
    with pytest.raises(ValueError, match="augment must be one of"):
        augmentation("heavy")


def test_class_gain_scale_is_applied_and_saved(tmp_path):
    base = make_experiment("yolov3-nano", "shapes", img_size=64, n_train=4, n_val=2, epochs=1,
                           batch_size=2, progress=False)
    scaled = make_experiment("yolov3-nano", "shapes", img_size=64, n_train=4, n_val=2, epochs=1,
                             batch_size=2, progress=False, class_gain_scale=4.0,
                             out_dir=tmp_path)
    assert scaled.detector.criterion.cls_gain == pytest.approx(4 * base.detector.criterion.cls_gain)
    scaled.trainer.fit()
    detector, _ = load_detector(tmp_path / "last.pt")
    assert detector.criterion.cls_gain == pytest.approx(scaled.detector.criterion.cls_gain)


def test_class_gain_scale_scales_yolov1s_class_weight_and_short_run_per_model():
    exp = make_experiment("yolov1-nano", "shapes", n_train=2, n_val=2, epochs=1, batch_size=2,
                          progress=False, class_gain_scale=2.0)
    assert exp.detector.criterion.lambda_class == 2.0
    assert exp.trainer.meta["loss_options"] == {"lambda_class": 2.0}
    assert short_run("yolov3-nano")["lr"] == 0.005 and short_run("yolov1-nano")["lr"] == 0.0005
    assert short_run("yolov1-nano")["class_gain_scale"] == 1.0
