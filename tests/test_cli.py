import json
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
import torch

import yolo_teach
import yolo_teach.cli as cli
from yolo_teach.checkpoint import load_checkpoint
from yolo_teach.cli import main
from yolo_teach.data import BoxDataset, make_shapes, write_yolo
from yolo_teach.experiment import load_detector, make_experiment
from yolo_teach.predict import detect_image, yolo_label_lines

TINY = ["--model", "yolov3-nano", "--data", "shapes", "--imgsz", "64", "--batch", "4",
        "--n-train", "8", "--n-val", "4", "--threads", "1"]


def test_train_resume_val_detect(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume"])
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["epoch"] == 2 and "map_50" in final

    main(["val", "--weights", str(out / "last.pt"), "--data", "shapes", "--n-val", "4",
          "--threads", "1"])
    printed = capsys.readouterr().out
    assert "mean average precision (mAP@0.50)" in printed
    assert set(json.loads(printed.strip().splitlines()[-1])) >= {"map", "map_50", "mar_100"}

    main(["detect", "--weights", str(out / "last.pt"), "--source", "shapes", "--n", "2",
          "--out", str(tmp_path / "det"), "--conf", "0.01", "--threads", "1"])
    assert len(list((tmp_path / "det").glob("*.png"))) == 2


# ----------------------------------------------------------------- shared tiny run
QUIET = ["--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A checkpoint of yolov3-nano on shapes (7 classes), trained for one tiny epoch."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 0
    return out / "last.pt"


def five_class_yaml(root, n=8):
    """A YOLO dataset on disk with 5 classes (shapes has 7)."""
    shapes = make_shapes(n, size=64, seed=3)
    labels = [(lab + i) % 5 for i, lab in enumerate(shapes.labels)]  # ids 0..4 all used
    write_yolo(BoxDataset(shapes.images, shapes.boxes, labels, ["a", "b", "c", "d", "e"]), root)
    return root / "data.yaml"


# ----------------------------------------------------------------- predict
def test_yolo_label_lines_are_normalised_with_the_confidence_last():
    # box (64, 128, 192, 256) in a 512 x 256 image: centre (128, 192) -> (0.25, 0.75),
    # size 128 x 128 -> (0.25, 0.5); confidence 0.875 is the 6th column
    lines = yolo_label_lines(np.array([[64.0, 128, 192, 256]]), np.array([2]),
                             np.array([0.875]), width=512, height=256)
    assert lines == ["2 0.25 0.75 0.25 0.5 0.875\n"]
    assert yolo_label_lines(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 5, 5) == []


def test_predict_writes_drawn_images_and_label_files(run, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    shapes = make_shapes(2, size=96, seed=7)
    for name, image in zip(["first", "second"], shapes.images):
        cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "pred"
    assert main(["predict", "--weights", str(run), "--source", str(folder), "--out", str(out),
                 "--conf", "0", *QUIET]) == 0  # the tiny run scores low
    assert sorted(p.name for p in out.glob("*.png")) == ["first.png", "second.png"]
    assert sorted(p.name for p in (out / "labels").glob("*.txt")) == ["first.txt", "second.txt"]
    detector, _ = load_detector(run)
    image = cv2.cvtColor(cv2.imread(str(folder / "first.jpg")), cv2.COLOR_BGR2RGB)
    det = detect_image(detector, image, 0.0, 0.45)
    rows = [line.split() for line in (out / "labels" / "first.txt").read_text().splitlines()]
    assert len(rows) == len(det["boxes"]) > 0 and all(len(row) == 6 for row in rows)
    values = np.array([[float(v) for v in row] for row in rows])  # (N, 6)
    assert np.array_equal(values[:, 0], det["labels"])
    assert (values[:, 1:5] >= 0).all() and (values[:, 1:5] <= 1).all()
    np.testing.assert_allclose(values[:, 5], det["scores"], rtol=1e-5)
    np.testing.assert_allclose(values[:, 1] * 96, (det["boxes"][:, 0] + det["boxes"][:, 2]) / 2,
                               atol=1e-3)
    assert "first.png: " in capsys.readouterr().out


# ----------------------------------------------------------------- export
def test_export_fuse_writes_the_fused_network_checked_against_the_unfused(run, tmp_path,
                                                                          capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "fused.onnx"
    assert main(["export", "--weights", str(run), "--fuse", "--out", str(out), *QUIET]) == 0
    fused_line, check_line = capsys.readouterr().out.strip().splitlines()
    label, before, _, after, _ = fused_line.split()  # fused: 1,234 -> 1,200 parameters
    assert label == "fused:" and int(after.replace(",", "")) < int(before.replace(",", ""))
    assert "max abs diff to PyTorch" in check_line and float(check_line.split()[-1]) < 1e-4
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(out)).graph.node}


# ----------------------------------------------------------------- train options
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"yolo-teach {yolo_teach.__version__}"


def capture_experiment(monkeypatch) -> dict:
    """Replace make_experiment in the CLI by a stub that records its arguments."""
    seen = {}

    def stub(model, data, **kwargs):
        seen.update(model=model, data=data, **kwargs)
        trainer = types.SimpleNamespace(fit=lambda: [], resume=lambda: None)
        return types.SimpleNamespace(trainer=trainer, skipped_weights=None, transfer=None,
                                     frozen=0)

    monkeypatch.setattr(cli, "make_experiment", stub)
    return seen


def test_recipe_short_applies_and_explicit_options_win(monkeypatch, tmp_path):
    seen = capture_experiment(monkeypatch)
    assert main(["train", "--out", str(tmp_path), *QUIET]) == 0
    assert (seen["batch_size"], seen["lr"], seen["augment"], seen["epochs"]) == (16, 0.002,
                                                                                 "full", 30)
    assert (seen["n_train"], seen["n_val"], seen["anchors"]) == (2000, 200, "kmeans")
    assert "class_gain_scale" not in seen

    main(["train", "--recipe", "short", "--out", str(tmp_path), *QUIET])
    assert (seen["batch_size"], seen["lr"], seen["augment"]) == (8, 0.005, "light")
    assert (seen["class_gain_scale"], seen["ema_decay"]) == (4.0, 0.995)

    main(["train", "--recipe", "short", "--batch", "4", "--lr", "0.01", "--out", str(tmp_path),
          *QUIET])
    assert (seen["batch_size"], seen["lr"], seen["augment"]) == (4, 0.01, "light")

    main(["train", "--model", "yolov1-nano", "--recipe", "short", "--out", str(tmp_path), *QUIET])
    assert seen["lr"] == 0.0005  # the model's own change to the recipe


def test_n_train_applies_to_generated_data_and_is_announced_for_a_data_yaml(
        monkeypatch, tmp_path, capsys):
    seen = capture_experiment(monkeypatch)
    yaml_path = five_class_yaml(tmp_path / "five")
    main(["train", "--data", str(yaml_path), "--out", str(tmp_path / "r"), *QUIET])
    assert seen["n_train"] is None and seen["n_val"] is None  # all images, silently fine
    assert "note" not in capsys.readouterr().err
    main(["train", "--data", str(yaml_path), "--n-train", "6", "--out", str(tmp_path / "r"),
          *QUIET])
    assert seen["n_train"] == 6 and seen["n_val"] is None
    assert "--n-train 6: using only the first 6 train images" in capsys.readouterr().err
    main(["train", "--n-train", "50", "--out", str(tmp_path / "r"), *QUIET])
    assert seen["n_train"] == 50 and capsys.readouterr().err == ""


def test_make_experiment_reads_every_image_of_a_data_yaml_by_default(tmp_path):
    exp = make_experiment("yolov3-nano", five_class_yaml(tmp_path, n=5), img_size=64,
                          progress=False)
    assert len(exp.train_set) == 5 and len(exp.val_set) == 5


def test_train_from_weights_with_another_class_count_is_re_headed(run, tmp_path, capsys):
    yaml_path = five_class_yaml(tmp_path / "five")
    exp = make_experiment("yolov3-nano", yaml_path, img_size=64, weights=run, anchors="weights",
                          progress=False)
    start = torch.load(run, weights_only=True)
    # yolov3-nano's three output convs (weight and bias) predict A (5 + K) channels: 7 -> 5 classes
    assert len(exp.skipped_weights) == 6
    assert all(".weight" in k or ".bias" in k for k in exp.skipped_weights)
    for name, value in exp.detector.model.state_dict().items():
        if name not in exp.skipped_weights:
            assert torch.equal(value, start["ema"][name]), name
    old = load_detector(run)[0].anchors
    assert all(torch.allclose(a, b) for a, b in zip(old, exp.detector.anchors))

    out = tmp_path / "fine"
    assert main(["train", "--weights", str(run), "--data", str(yaml_path), "--epochs", "1",
                 "--imgsz", "64", "--batch", "4", "--freeze", "backbone", "--out", str(out),
                 *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "frozen: backbone (" in printed
    assert "(re-headed: 7 -> 5 classes): loaded " in printed
    assert "skipped 6 whose shapes differ" in printed
    detector, meta = load_detector(out / "last.pt")
    assert meta["class_names"] == ["a", "b", "c", "d", "e"] and detector.num_classes == 5
    assert meta["weights"] == str(run) and meta["model"] == "yolov3-nano"
    assert meta["freeze"] == ["backbone"]


# ----------------------------------------------------------------- errors: one line, status 2
def bad_inputs(tmp_path, run):
    """(arguments, text the one error line must contain) for each mistake a user can make."""
    broken = tmp_path / "broken"
    write_yolo(make_shapes(3, size=64, seed=0), broken)
    label = sorted((broken / "labels").glob("*.txt"))[1]
    label.write_text("0 0.5 0.5 0.25\n")  # 4 columns
    bad_yaml = tmp_path / "bad" / "data.yaml"
    bad_yaml.parent.mkdir()
    bad_yaml.write_text("train: images\nnames: [a, b\n")  # unclosed list
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    evil = tmp_path / "evil.pt"
    torch.save({"model": types.SimpleNamespace(x=1), "meta": {}}, evil)
    bare = tmp_path / "bare.pt"
    torch.save({"conv.weight": torch.zeros(2)}, bare)
    train = ["train", "--imgsz", "64", "--out", str(tmp_path / "r"), *QUIET]
    return [
        (["val", "--weights", str(tmp_path / "missing.pt"), *QUIET], "missing.pt"),
        ([*train, "--data", str(tmp_path / "nowhere" / "data.yaml")], "nowhere/data.yaml"),
        ([*train, "--data", str(bad_yaml)], f"{bad_yaml}:3"),
        ([*train, "--data", str(broken / "data.yaml")], f"{label}:1: expected 5 columns"),
        (["val", "--weights", str(text), *QUIET], f"{text}: not a checkpoint"),
        (["predict", "--weights", str(evil), "--source", "shapes", *QUIET],
         f"{evil}: refused to load pickled code"),
        (["export", "--weights", str(bare), *QUIET], f"{bare}: not a yolo_teach checkpoint"),
        (["train", "--epochs", "zero", *QUIET], "--epochs"),
        (["train", "--imgsz", "100", "--out", str(tmp_path / "r"), *QUIET], "--imgsz 100"),
        (["val", "--weights", str(run), "--device", "tpu"], "--device 'tpu'"),
        (["predict", "--weights", str(run), "--source", str(tmp_path / "nope"), *QUIET],
         "--source"),
        (["train", "--weights", str(run), "--model", "yolov1-nano", *train[1:]],
         f"{run}: holds a yolov3-nano; none of its tensors fits yolov1-nano"),
        (["train", "--weights", str(run), "--freeze", "trunk", *train[1:]],
         "has no stage 'trunk'; its stages are ['backbone', 'neck', 'head']"),
    ]


def test_user_errors_print_one_line_and_exit_2(run, tmp_path, capsys):
    for argv, expected in bad_inputs(tmp_path, run):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("yolo-teach: error: "), (argv, err)
        assert expected in err, (argv, err)


def test_cuda_without_cuda_is_a_one_line_error(run, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["val", "--weights", str(run), "--device", "cuda", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolo-teach: error: --device cuda: CUDA is not available")
    assert len(err.splitlines()) == 1


def test_verbose_adds_the_traceback(tmp_path, capsys):
    assert main(["val", "--weights", str(tmp_path), "--verbose", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("yolo-teach: error: ")


def test_python_m_yolo_teach_cli_reports_an_error_in_one_line(tmp_path):
    missing = tmp_path / "missing.pt"
    done = subprocess.run([sys.executable, "-m", "yolo_teach.cli", "val", "--weights",
                           str(missing)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"yolo-teach: error: --weights {missing}: no such file"]


def test_an_unreadable_image_in_a_folder_is_skipped_with_one_note(tmp_path, capsys):
    from yolo_teach.predict import image_sources

    (tmp_path / "bad.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((32, 32, 3), np.uint8))
    main(["--version"])  # the command line routes the library's warnings to notes
    capsys.readouterr()
    assert [name for name, _ in image_sources(str(tmp_path))] == ["ok"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"yolo-teach: note: skipping {tmp_path / 'bad.png'}: not a readable image"]


def test_a_closed_pipe_ends_the_command_quietly():
    # `yolo-teach ... | head -1`: the reader leaves; no BrokenPipeError traceback, status 141
    code = (
        "import argparse\n"
        "from yolo_teach import cli\n"
        "def chatty(args):\n"
        "    for _ in range(100_000):\n"
        "        print('x' * 80)\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.set_defaults(func=chatty)\n"
        "cli._parser = lambda: parser\n"
        "raise SystemExit(cli.main([]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.read(81) == b"x" * 80 + b"\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
