"""Label formats: hand-computed files, lossless round trips, determinism, malformed files, fuzz."""

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from yolo_teach.data import BoxDataset
from yolo_teach.data.formats import (
    ImageError,
    LabelError,
    LabelWarning,
    convert,
    read_coco,
    read_voc,
    read_yolo,
    write_coco,
    write_voc,
    write_yolo,
)

CLASSES = ["cat", "dog", "bird"]
READ = {"yolo": read_yolo, "voc": read_voc, "coco": read_coco}
WRITE = {"yolo": write_yolo, "voc": write_voc, "coco": write_coco}


def random_dataset(seed: int = 0) -> BoxDataset:
    """Small random images, square and not, one without boxes, boxes anywhere inside."""
    rng = np.random.default_rng(seed)
    sizes = [(32, 48), (40, 40), (17, 29), (24, 64), (50, 21)]  # (H, W)
    counts = [3, 0, 2, 5, 1]
    images, boxes, labels = [], [], []
    for (h, w), n in zip(sizes, counts):
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        x = np.sort(rng.uniform(0, w, (n, 2)), axis=1)
        y = np.sort(rng.uniform(0, h, (n, 2)), axis=1)
        boxes.append(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1))
        labels.append(rng.integers(0, len(CLASSES), n))
    boxes[0][0] = [0, 0, 48, 32]  # the whole image, edges included
    return BoxDataset(images, boxes, labels, list(CLASSES))


def tiny_dataset() -> BoxDataset:
    """Image 0000 is 40 wide, 30 high with two boxes; image 0001 is 20x20 and empty."""
    images = [np.full((30, 40, 3), 90, np.uint8), np.full((20, 20, 3), 200, np.uint8)]
    boxes = [np.array([[4, 3, 20, 15], [10, 10, 30, 27]]), np.zeros((0, 4))]
    return BoxDataset(images, boxes, [np.array([0, 1]), np.array([], np.int64)], list(CLASSES))


def normalised(dataset: BoxDataset) -> list[np.ndarray]:
    """Boxes divided by their image's width and height."""
    return [b / ([i.shape[1], i.shape[0]] * 2) for i, b in zip(dataset.images, dataset.boxes)]


def assert_same(a: BoxDataset, b: BoxDataset, atol: float = 1e-6) -> None:
    assert a.names == b.names and a.class_names == b.class_names
    for image_a, image_b in zip(a.images, b.images):
        np.testing.assert_array_equal(image_a, image_b)
    for boxes_a, boxes_b in zip(normalised(a), normalised(b)):
        np.testing.assert_allclose(boxes_a, boxes_b, rtol=0, atol=atol)
    for labels_a, labels_b in zip(a.labels, b.labels):
        np.testing.assert_array_equal(labels_a, labels_b)


# ------------------------------------------------------------------------ hand-computed files
def test_yolo_line_is_hand_computed(tmp_path):
    # box (10, 5, 30, 25) in a 100 x 50 image: cx = 20/100, cy = 15/50, w = 20/100, h = 20/50
    ds = BoxDataset([np.zeros((50, 100, 3), np.uint8)], [[[10, 5, 30, 25]]], [[1]], ["a", "b"])
    config = write_yolo(ds, tmp_path)
    assert (tmp_path / "labels" / "0000.txt").read_text() == "1 0.2 0.3 0.2 0.4\n"
    back = read_yolo(config)
    assert back.class_names == ["a", "b"] and back.boxes[0].tolist() == [[10, 5, 30, 25]]


def test_yolo_without_names_infers_classes_and_reads_images_without_labels(tmp_path):
    write_yolo(tiny_dataset(), tmp_path)
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "labels" / "0001.txt").unlink()  # no label file: no objects
    ds = read_yolo(tmp_path)
    assert ds.class_names == ["class_0", "class_1"] and len(ds.boxes[1]) == 0
    # without names the ids are still checked: integers, not negative, not absurdly large
    for line, message in [("-2 .5 .5 .2 .2", "negative"), ("1e6 .5 .5 .2 .2", "no class names")]:
        (tmp_path / "labels" / "0001.txt").write_text(f"0 .5 .5 .2 .2\n{line}\n")
        with pytest.raises(LabelError, match=rf"0001.txt:2: .*{message}"):
            read_yolo(tmp_path)


def test_yolo_splits_share_one_data_yaml(tmp_path):
    ds = tiny_dataset()
    write_yolo(ds.subset([0]), tmp_path, split="train")
    config = write_yolo(ds.subset([1]), tmp_path, split="val")
    assert "train: images/train\nval: images/val\n" in config.read_text()
    assert read_yolo(config).names == ["0000"]
    assert read_yolo(tmp_path, split="val").names == ["0001"]


def test_yolo_data_yaml_with_path_and_list_names(tmp_path):
    write_yolo(tiny_dataset(), tmp_path / "ds")
    config = tmp_path / "custom.yaml"
    config.write_text("path: ds\ntrain: images\nnames: [cat, dog, bird]\n")
    ds = read_yolo(config)
    assert ds.class_names == CLASSES and ds.labels[0].tolist() == [0, 1]


def test_voc_is_one_based_and_reads_integer_files(tmp_path):
    write_voc(tiny_dataset(), tmp_path)
    xml = (tmp_path / "Annotations" / "0000.xml").read_text()
    # x1 = 4 (0-based) is written as xmin = 5 (1-based), x2 = 20 as xmax = 21
    assert "<xmin>5</xmin>" in xml and "<xmax>21</xmax>" in xml
    # an integer file from the wild: xmin 1 is the first pixel column, so x1 = 0
    xml = xml.replace("<xmin>5</xmin>", "<xmin>1</xmin>")
    (tmp_path / "Annotations" / "0000.xml").write_text(xml)
    ds = read_voc(tmp_path)
    assert ds.boxes[0][0].tolist() == [0, 3, 20, 15] and ds.class_names == CLASSES


def test_voc_difficult_round_trips_or_is_dropped(tmp_path):
    ds = tiny_dataset()
    ds.meta["difficult"] = {"0000": np.array([False, True])}
    write_voc(ds, tmp_path)
    assert read_voc(tmp_path).meta["difficult"]["0000"].tolist() == [False, True]
    assert read_voc(tmp_path, difficult=False).labels[0].tolist() == [0]


def test_coco_categories_become_contiguous_classes(tmp_path):
    path = write_coco(tiny_dataset(), tmp_path)
    doc = json.loads(path.read_text())
    assert [c["id"] for c in doc["categories"]] == [1, 2, 3]  # class id + 1
    # box (4, 3, 20, 15) -> bbox [x, y, w, h] = [4, 3, 16, 12], area 192
    first = doc["annotations"][0]
    assert first["bbox"] == [4, 3, 16, 12] and first["area"] == 192 and first["category_id"] == 1
    # COCO-style gaps: categories 90 and 7 become classes 1 and 0 (sorted ids), names kept
    doc["categories"] = [{"id": 90, "name": "toothbrush"}, {"id": 7, "name": "train"}]
    for ann, category in zip(doc["annotations"], [90, 7]):
        ann["category_id"] = category
    path.write_text(json.dumps(doc))
    ds = read_coco(path)
    assert ds.class_names == ["train", "toothbrush"] and ds.labels[0].tolist() == [1, 0]


def test_convert_and_the_error_contract(tmp_path):
    write_yolo(tiny_dataset(), tmp_path / "yolo")
    ds = convert(tmp_path / "yolo", "yolo", tmp_path / "coco", "coco")
    assert_same(ds, read_coco(tmp_path / "coco"), atol=0)
    error = LabelError("class id 7 out of range [0, 3)", "labels/x.txt", 3)
    assert str(error) == "labels/x.txt:3: class id 7 out of range [0, 3)"
    assert isinstance(error, ValueError) and issubclass(ImageError, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.line == 3 and again.path == Path("labels/x.txt")


def test_writers_refuse_what_they_could_not_read_back(tmp_path):
    ds = tiny_dataset()
    ds.boxes[0][1] = [10, 10, 45, 27]  # x2 = 45 in a 40-wide image
    with pytest.raises(LabelError, match=r"image 0 \('0000'\): box 1 .* 40x30 image"):
        write_yolo(ds, tmp_path)
    ds = tiny_dataset()
    ds.names = ["same", "same"]
    with pytest.raises(LabelError, match="appears twice"):
        write_coco(ds, tmp_path)


# ------------------------------------------------------------------------ round trips
def test_round_trip_yolo_voc_coco_yolo_is_lossless(tmp_path):
    ds = random_dataset()
    read_back = read_yolo(write_yolo(ds, tmp_path / "yolo"))
    write_voc(read_back, tmp_path / "voc")
    via_voc = read_voc(tmp_path / "voc")
    via_coco = read_coco(write_coco(via_voc, tmp_path / "coco"))
    final = read_yolo(write_yolo(via_coco, tmp_path / "yolo2"))
    for step in (read_back, via_voc, via_coco, final):
        assert_same(ds, step, atol=1e-6)
    # in fact the float32 boxes come back bit for bit
    assert all(np.array_equal(a, b) for a, b in zip(ds.boxes, final.boxes))


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_writing_is_deterministic(tmp_path, fmt):
    for folder in ("a", "b"):
        WRITE[fmt](random_dataset(), tmp_path / folder)
    files = [sorted(p.relative_to(tmp_path / d) for p in (tmp_path / d).rglob("*") if p.is_file())
             for d in ("a", "b")]
    assert files[0] == files[1] and len(files[0]) >= 6
    for rel in files[0]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


# ------------------------------------------------------------------------ malformed files
GOOD_YOLO = "0 0.3 0.3 0.4 0.4\n"
ANN = 3  # COCO: line 1 "{", line 2 '"annotations": [', line 3 the first annotation


def replace(old: str, new: str):
    """A corruption that edits the valid file's text."""
    return lambda text: text.replace(old, new, 1)


# (format, file, new content or edit of the valid text, error, file named, line, message)
MALFORMED = [
    ("yolo", "labels/0000.txt", "0 0.5 0.5 0.2\n", LabelError, "0000.txt", 1, "expected 5 columns"),
    ("yolo", "labels/0000.txt", GOOD_YOLO + "0 .5 .5 .2 .2 .9\n", LabelError, "0000.txt", 2,
     "got 6"),
    ("yolo", "labels/0000.txt", "0 .1 .1 .2 .1 .3 .3 .1 .4\n", LabelError, "0000.txt", 1,
     "segmentation polygon"),
    ("yolo", "labels/0000.txt", "\n0 0.5 abc 0.2 0.2\n", LabelError, "0000.txt", 2,
     "cy 'abc' is not a number"),
    ("yolo", "labels/0000.txt", "0 nan 0.5 0.2 0.2\n", LabelError, "0000.txt", 1, "finite"),
    ("yolo", "labels/0000.txt", "0 0.5 0.5 inf 0.2\n", LabelError, "0000.txt", 1, "finite"),
    ("yolo", "labels/0000.txt", "1.5 0.5 0.5 0.2 0.2\n", LabelError, "0000.txt", 1,
     "not an integer"),
    ("yolo", "labels/0000.txt", "-1 0.5 0.5 0.2 0.2\n", LabelError, "0000.txt", 1, "negative"),
    ("yolo", "labels/0000.txt", GOOD_YOLO + "7 0.5 0.5 0.2 0.2\n", LabelError, "0000.txt", 2,
     r"class id 7 out of range \[0, 3\)"),
    ("yolo", "labels/0000.txt", "0 0.5 0.5 0 0.2\n", LabelError, "0000.txt", 1,
     "expected both > 0"),
    ("yolo", "labels/0000.txt", "0 0.95 0.5 0.2 0.2\n", LabelError, "0000.txt", 1,
     r"outside \[0, 1\]"),
    ("yolo", "labels/0000.txt", "0 20 15 10 10\n", LabelError, "0000.txt", 1, "look like pixels"),
    ("yolo", "labels/0000.txt", b"0 0.5\x00\x01\x02", LabelError, "0000.txt", 1, "binary"),
    ("yolo", "labels/0000.txt", GOOD_YOLO.encode() + b"0 0.5 \xff 0.2 0.2\n", LabelError,
     "0000.txt", 2, "not UTF-8"),
    ("yolo", "labels/ghost.txt", GOOD_YOLO, LabelError, "ghost.txt", None, "without its image"),
    ("yolo", "images/0000.png", b"\x89PNG not really", ImageError, "0000.png", None,
     "not a readable image"),
    ("yolo", "images/0001.png", b"", ImageError, "0001.png", None, "not a readable image"),
    ("yolo", "data.yaml", "names: [a, b\ntrain: images\n", LabelError, "data.yaml", 2,
     "malformed YAML"),
    ("yolo", "data.yaml", "train: images\nnc: 2\nnames: [a, b, c]\n", LabelError, "data.yaml",
     None, "nc: 2 but names: lists 3"),
    ("voc", "Annotations/0000.xml", replace("</bndbox>", "</bndbox"), LabelError, "0000.xml", 21,
     "malformed XML"),
    ("voc", "Annotations/0000.xml", replace("<name>dog</name>", ""), LabelError, "0000.xml", 22,
     "<object> has no <name>"),
    ("voc", "Annotations/0000.xml", replace("<ymin>4</ymin>", "<ymin>four</ymin>"), LabelError,
     "0000.xml", 17, "<ymin> 'four' is not a number"),
    ("voc", "Annotations/0000.xml", replace("<xmax>21</xmax>", "<xmax>3</xmax>"), LabelError,
     "0000.xml", 15, "expected xmin < xmax"),
    ("voc", "Annotations/0000.xml", replace("<xmax>21</xmax>", "<xmax>60</xmax>"), LabelError,
     "0000.xml", 15, r"outside the 40x30 image; expected 1-based pixels within \[1, 41\]"),
    ("voc", "Annotations/0000.xml", replace("<width>40</width>", "<width>80</width>"), LabelError,
     "0000.xml", 4, "<size> says 80x30 but the image is 40x30"),
    ("voc", "Annotations/0000.xml", replace("<difficult>0</difficult>", "<difficult>2</difficult>"),
     LabelError, "0000.xml", 14, "expected 0 or 1"),
    ("voc", "Annotations/0000.xml", replace("<name>dog</name>", "<name>dgo</name>"), LabelError,
     "0000.xml", 23, "unknown class 'dgo'"),
    ("voc", "Annotations/ghost.xml", "<annotation/>", LabelError, "ghost.xml", None,
     "annotation without its image"),
    ("voc", "JPEGImages/0000.png", b"garbage", ImageError, "0000.png", None, "not a readable"),
    ("coco", "annotations.json", replace('"images": [', '"images": [,'), LabelError,
     "annotations.json", 11, "malformed JSON"),
    ("coco", "annotations.json", replace("[4.0, 3.0, 16.0, 12.0]", "[4, 3, 16]"), LabelError,
     "annotations.json", ANN, r"annotation 0 \(id 1\): bbox \[4, 3, 16\]"),
    ("coco", "annotations.json", replace('"image_id": 1', '"image_id": 5'), LabelError,
     "annotations.json", ANN, "unknown image_id 5"),
    ("coco", "annotations.json", replace('"category_id": 2', '"category_id": 9'), LabelError,
     "annotations.json", ANN + 1, r"annotation 1 \(id 2\): unknown category_id 9"),
    ("coco", "annotations.json", replace("16.0, 12.0]", "-16.0, 12.0]"), LabelError,
     "annotations.json", ANN, "expected both > 0"),
    ("coco", "annotations.json", replace("16.0, 12.0]", "160.0, 12.0]"), LabelError,
     "annotations.json", ANN, "outside the 40x30 image"),
    ("coco", "annotations.json", replace('"width": 40', '"width": 41'), LabelError,
     "annotations.json", 12, "but the file is 40x30"),
    ("coco", "annotations.json", "[]", LabelError, "annotations.json", None,
     "expected a JSON object"),
    ("coco", "images/0001.png", b"\x00" * 10, ImageError, "0001.png", None, "not a readable"),
]


def write_valid(fmt: str, root: Path) -> Path:
    """The tiny dataset in ``fmt``; returns what the reader takes."""
    written = WRITE[fmt](tiny_dataset(), root)
    return written if fmt != "voc" else root


def corrupt(root: Path, rel: str, content) -> None:
    path = root / rel
    if callable(content):
        before = path.read_text()
        content = content(before)
        assert content != before, "the corruption did not apply"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("fmt, rel, content, error, file, line, message", MALFORMED)
def test_malformed_files_name_file_and_line(tmp_path, fmt, rel, content, error, file, line,
                                            message):
    source = write_valid(fmt, tmp_path)
    corrupt(tmp_path, rel, content)
    with pytest.raises(error, match=message) as info:
        READ[fmt](source)
    assert info.type is error and info.value.path.name == file and info.value.line == line
    where = f"{info.value.path}:{line}: " if line is not None else f"{info.value.path}: "
    assert str(info.value).startswith(where) and file in str(info.value)


def test_malformed_table_is_large():
    assert len(MALFORMED) >= 20


# ------------------------------------------------------------------------ skip and clip
YOLO_MIXED = (
    "0 0.3 0.3 0.4 0.4\n"  # line 1: fine -> (4, 3, 20, 15) in the 40 x 30 image
    "1 0.9 0.5 0.4 0.2\n"  # line 2: x from 0.7 to 1.1 -> clipped to (28, 12, 40, 18)
    "2 1.5 0.5 0.2 0.2\n"  # line 3: x from 1.4 to 1.6, wholly outside -> dropped
    "0 0.5 0.5 0 0.2\n"  # line 4: no width -> dropped
)


def test_yolo_clip_mode_clips_and_drops_with_warnings(tmp_path):
    write_yolo(tiny_dataset(), tmp_path)
    (tmp_path / "labels" / "0000.txt").write_text(YOLO_MIXED)
    with pytest.warns(LabelWarning) as caught:
        ds = read_yolo(tmp_path, on_error="clip")
    np.testing.assert_allclose(ds.boxes[0], [[4, 3, 20, 15], [28, 12, 40, 18]], atol=1e-5)
    assert ds.labels[0].tolist() == [0, 1]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and "0000.txt:2:" in messages[0] and "clipped" in messages[0]
    assert "0000.txt:3:" in messages[1] and "0000.txt:4:" in messages[2]
    (tmp_path / "labels" / "0000.txt").write_text(YOLO_MIXED + "0 0.5 oops 0.2 0.2\n")
    with pytest.raises(LabelError, match=r"0000.txt:5: cy 'oops'"), warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        read_yolo(tmp_path, on_error="clip")  # clip repairs geometry, not syntax


def test_yolo_skip_mode_skips_lines_and_broken_images(tmp_path):
    write_yolo(tiny_dataset(), tmp_path)
    (tmp_path / "labels" / "0000.txt").write_text(YOLO_MIXED + "0 0.5 oops 0.2 0.2\n")
    (tmp_path / "images" / "0001.png").write_bytes(b"not a png")
    with pytest.warns(LabelWarning) as caught:
        ds = read_yolo(tmp_path, on_error="skip")
    assert ds.names == ["0000"] and ds.boxes[0].tolist() == [[4, 3, 20, 15]]
    messages = " | ".join(str(w.message) for w in caught)
    for where in ("0000.txt:2:", "0000.txt:3:", "0000.txt:4:", "0000.txt:5:", "0001.png:"):
        assert where in messages
    assert len(caught) == 5


def test_voc_skip_and_clip_keep_the_good_objects(tmp_path):
    write_voc(tiny_dataset(), tmp_path)
    path = tmp_path / "Annotations" / "0000.xml"
    path.write_text(path.read_text().replace("<xmax>31</xmax>", "<xmax>45</xmax>"))
    with pytest.warns(LabelWarning, match=r"0000.xml:\d+: .* outside .*; skipped"):
        assert read_voc(tmp_path, on_error="skip").boxes[0].tolist() == [[4, 3, 20, 15]]
    with pytest.warns(LabelWarning, match="clipped into the image"):
        clipped = read_voc(tmp_path, on_error="clip").boxes[0].tolist()
    assert clipped == [[4, 3, 20, 15], [10, 10, 40, 27]]


def test_coco_skip_drops_one_annotation(tmp_path):
    path = write_coco(tiny_dataset(), tmp_path)
    path.write_text(path.read_text().replace('"category_id": 2', '"category_id": 9'))
    with pytest.warns(LabelWarning, match=rf"annotations.json:{ANN + 1}: annotation 1"):
        ds = read_coco(path, on_error="skip")
    assert ds.boxes[0].tolist() == [[4, 3, 20, 15]] and len(ds) == 2


# ------------------------------------------------------------------------ fuzz
def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random byte edits: flip, insert, delete, truncate or duplicate a chunk."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, max(len(data), 1)))
        kind = int(rng.integers(0, 5))
        if kind == 0 and data:
            data[i] = int(rng.integers(0, 256))
        elif kind == 1:
            data[i:i] = bytes([int(rng.choice([0, 10, 32, 45, 46, 48, 57, 60, 62, 123, 255]))])
        elif kind == 2:
            del data[i : i + int(rng.integers(1, 8))]
        elif kind == 3:
            del data[i:]
        else:
            data[i:i] = data[i : i + int(rng.integers(1, 16))]
    return bytes(data)


@pytest.mark.parametrize(
    "fmt, rel",
    [("yolo", "labels/0000.txt"), ("voc", "Annotations/0000.xml"), ("coco", "annotations.json")],
)
def test_fuzzed_label_files_raise_only_label_or_image_errors(tmp_path, fmt, rel):
    rng = np.random.default_rng(7)
    source = write_valid(fmt, tmp_path)
    valid = (tmp_path / rel).read_bytes()
    outcomes = {"ok": 0, "error": 0}
    for trial in range(300):
        (tmp_path / rel).write_bytes(mutate(valid, rng))
        on_error = ("raise", "clip", "skip")[trial % 3]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelWarning)
            try:
                READ[fmt](source, on_error=on_error)
                outcomes["ok"] += 1
            except (LabelError, ImageError):
                outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0  # the fuzz reached both outcomes
