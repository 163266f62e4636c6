import json

from yolo_teach.checkpoint import load_checkpoint
from yolo_teach.cli import main

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
