import numpy as np
import pytest

from yolo_teach.data import EASY_SHAPES, make_shapes, write_yolo
from yolo_teach.data.sources import load_dataset


def test_builtin_train_and_val_splits_differ_and_repeat():
    train = load_dataset("shapes", "train", n=3, size=64, seed=5)
    val = load_dataset("shapes", "val", n=3, size=64, seed=5)
    again = load_dataset("shapes", "train", n=3, size=64, seed=5)
    assert train.images[0].shape == (64, 64, 3)
    assert np.array_equal(train.images[0], again.images[0])
    assert not np.array_equal(train.images[0], val.images[0])


def test_yolo_folder_with_split(tmp_path):
    write_yolo(make_shapes(4, size=64, seed=0), tmp_path, split="train")
    write_yolo(make_shapes(2, size=64, seed=1), tmp_path, split="val")
    assert len(load_dataset(tmp_path / "data.yaml", "val")) == 2
    assert len(load_dataset(tmp_path / "data.yaml", "train", n=3)) == 3


def test_unknown_data_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="neither a built-in dataset"):
        load_dataset("coco128")
    with pytest.raises(ValueError, match="split"):
        load_dataset("shapes", "test")


def test_generator_options_reach_the_generator():
    easy = load_dataset("shapes", "train", n=6, size=64, seed=0, options=EASY_SHAPES)
    assert all(1 <= len(b) <= EASY_SHAPES["max_objects"] for b in easy.boxes)
    sides = np.concatenate([b[:, 2:] - b[:, :2] for b in easy.boxes]).max(1)  # (N,) longer side
    assert sides.min() >= 0.2 * 64 * 0.5  # no small shapes (rotation and outline aside)
    with pytest.raises(ValueError, match="need a built-in dataset"):
        load_dataset(".", options={"max_objects": 3})
