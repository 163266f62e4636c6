"""The detector doctor names each classic label mistake, planted one at a time in a copy of the
sample dataset (8 shape images, 256 px, 45 boxes), and stays quiet on the clean copy."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_teach import paths
from yolo_teach.cli import main
from yolo_teach.data import BoxDataset, make_shapes, write_yolo
from yolo_teach.data.face_masks import make_face_masks
from yolo_teach.doctor import (
    CONF_THRESHOLDS,
    LabelRow,
    boxes_of,
    check_corner_format,
    check_overfit,
    check_swapped_wh,
    diagnose,
    edge_alignment,
    overfit_batch,
    scan_labels,
)

SIZE = 256  # the sample images' side


def problems(report) -> set[str]:
    """Codes of the error and warning findings."""
    return {f.code for f in report.findings if f.severity in ("error", "warning")}


def finding(report, code):
    return next(f for f in report.findings if f.code == code)


@pytest.fixture
def sample(tmp_path):
    """A copy of the sample dataset; returns its data.yaml."""
    root = shutil.copytree(paths.samples("shapes_yolo"), tmp_path / "shapes")
    return root / "data.yaml"


def edit(data_yaml, name, change):
    """Replace the lines of labels/NAME.txt by ``change(lines)``."""
    path = data_yaml.parent / "labels" / name
    path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))


def edit_all(data_yaml, change_row):
    """Apply ``change_row([cls, cx, cy, w, h]) -> values`` to every label line."""
    for path in sorted((data_yaml.parent / "labels").glob("*.txt")):
        rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines()]
        path.write_text("".join(f"{int(r[0])} {' '.join(f'{v:.6g}' for v in change_row(r)[1:])}\n"
                                for r in rows))


# --------------------------------------------------------------------- one mistake at a time
def pixels(r):
    return [r[0], r[1] * SIZE, r[2] * SIZE, r[3] * SIZE, r[4] * SIZE]


def corners(r):
    return [r[0], r[1] - r[3] / 2, r[2] - r[4] / 2, r[1] + r[3] / 2, r[2] + r[4] / 2]


MISTAKES = {  # mutation -> (the code it must raise, an example file:line it must name)
    "pixels": (lambda y: edit_all(y, pixels), "pixel-coordinates", ("0000.txt", 1)),
    "corners": (lambda y: edit_all(y, corners), "corner-format", None),
    "class 9": (lambda y: edit(y, "0003.txt", lambda ls: [ls[0], "9" + ls[1][1:], *ls[2:]]),
                "class-out-of-range", ("0003.txt", 2)),
    "empty file": (lambda y: edit(y, "0005.txt", lambda ls: []), "empty-labels",
                   ("0005.txt", None)),
    "duplicated line": (lambda y: edit(y, "0001.txt", lambda ls: [*ls, ls[2]]),
                        "duplicate-labels", ("0001.txt", 9)),
    "malformed line": (lambda y: edit(y, "0002.txt", lambda ls: [*ls, "3 0.5 0.5 0.1"]),
                       "malformed-line", ("0002.txt", 3)),
    "zero width": (lambda y: edit(y, "0004.txt", lambda ls: ["5 0.3 0.5 0 0.1", *ls[1:]]),
                   "degenerate-boxes", ("0004.txt", 1)),
}


def test_the_clean_sample_has_no_errors_or_warnings(sample):
    report = diagnose(sample, overfit_steps=0)
    assert problems(report) == set()
    assert report.stats["boxes"] == 45 and sum(report.stats["class_counts"]) == 45
    assert report.stats["anchor_recall"]["official"] >= 0.98


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_planted_mistake_is_named_alone(sample, mistake):
    mutate, code, where = MISTAKES[mistake]
    mutate(sample)
    report = diagnose(sample, overfit_steps=0)
    assert problems(report) == {code}
    if where is not None:
        name, line = where
        assert (sample.parent / "labels" / name, line) in finding(report, code).files


def test_the_report_text_names_file_and_line_most_severe_first(sample):
    MISTAKES["class 9"][0](sample)
    MISTAKES["empty file"][0](sample)
    text = str(diagnose(sample, overfit_steps=0))
    assert text.index("ERROR") < text.index("WARNING")
    assert "0003.txt:2" in text and "class-out-of-range" in text


def test_a_broken_file_is_diagnosed_not_raised(sample):
    (sample.parent / "labels" / "0006.txt").write_bytes(b"1 0.5\x00 0.5 0.1 0.1\n")
    (sample.parent / "images" / "0007.png").write_bytes(b"not a png")
    report = diagnose(sample, overfit_steps=0)
    assert {"malformed-line", "unreadable-image"} <= problems(report)


# --------------------------------------------------------------------- the heuristics
def row(cx, cy, w, h, line=1):
    return LabelRow(Path("a.txt"), line, 0.0, (cx, cy, w, h), Path("a.png"), (100, 100))


def test_corner_format_needs_boxes_out_of_the_image_that_are_valid_corners():
    # x1 y1 x2 y2 = 0.6 0.6 0.9 0.8 read as a centre box: 0.6 + 0.9 / 2 = 1.05 > 1, out
    wrong = [row(0.6, 0.6, 0.9, 0.8, k) for k in range(3)]
    assert check_corner_format(wrong).code == "corner-format"
    assert check_corner_format([row(0.5, 0.5, 0.2, 0.2)] * 3) is None  # inside: fine
    # out of the image but not valid as corners (x2 = 0.3 < x1 = 0.9): another mistake
    assert check_corner_format([row(0.9, 0.5, 0.3, 0.6, k) for k in range(3)]) is None


def test_swapped_wh_from_geometry_alone():
    # tall boxes at the top edge: cy - h / 2 = 0.1 - 0.25 < 0 sticks out; swapped (w 0.5, h 0.1)
    # they fit: 0.5 - 0.25 >= 0 and 0.1 - 0.05 >= 0. No image to read: no edge votes.
    rows = [row(0.5, 0.1, 0.1, 0.5, k) for k in range(3)]
    assert check_swapped_wh(rows).code == "swapped-wh"
    assert check_corner_format(rows) is None  # as corners x2 = 0.1 < x1 = 0.5: not corners
    assert check_swapped_wh(rows[:2]) is None  # two boxes are not enough evidence


def test_edge_alignment_prefers_the_box_on_the_object_edges():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 20:80] = 255  # a 60 x 20 bar, box xyxy (20, 40, 80, 60)
    grey = image[..., 0].astype(np.float32)
    gx = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3))
    gy = np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))
    # on the box the edges run along the border: (parallel - crossing) / (parallel + crossing)
    # is 1 but for the corners, where the 3 x 3 Sobel also sees the other edge: 0.95
    assert edge_alignment(gx, gy, (20, 40, 80, 60)) > 0.9
    # w and h swapped, (40, 20, 60, 80): its sides cut through the bar's top and bottom edges
    assert edge_alignment(gx, gy, (40, 20, 60, 80)) < -0.9


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Generated face-mask scenes on disk: faces are taller than wide (aspect ~1.25)."""
    root = tmp_path_factory.mktemp("faces")
    return write_yolo(make_face_masks(16, size=192, seed=1), root)


def test_swapped_wh_is_found_on_elongated_boxes_and_not_on_correct_ones(faces, tmp_path):
    assert problems(diagnose(faces, overfit_steps=0)) == set()
    swapped = shutil.copytree(faces.parent, tmp_path / "swapped") / "data.yaml"
    edit_all(swapped, lambda r: [r[0], r[1], r[2], r[4], r[3]])
    report = diagnose(swapped, overfit_steps=0)
    assert problems(report) == {"swapped-wh"}
    # the near-square sample boxes carry no evidence either way
    scan = scan_labels(paths.samples("shapes_yolo") / "data.yaml")
    assert check_swapped_wh(scan.rows) is None


def test_boxes_of_other_images_are_off_the_objects(sample):
    labels = sorted((sample.parent / "labels").glob("*.txt"))
    texts = [p.read_text() for p in labels]
    for path, text in zip(labels, texts[1:] + texts[:1]):  # each image gets the next one's
        path.write_text(text)
    assert "boxes-off-objects" in problems(diagnose(sample, overfit_steps=0))


# --------------------------------------------------------------------- overfit one batch
class NormalisedBoxes(BoxDataset):
    """A planted pipeline bug: a dataset class that hands out boxes divided by the image size
    (YOLO's 0-1 numbers) where the loader wants pixels."""

    def __getitem__(self, i):
        image, boxes, labels = super().__getitem__(i)
        height, width = image.shape[:2]
        return image, boxes / np.array([width, height, width, height], np.float32), labels


def test_overfit_memorises_a_correct_batch_and_not_one_with_a_planted_bug(sample):
    scan = scan_labels(sample)
    source = boxes_of(scan, scan.images, 7)
    good = overfit_batch(source, img_size=64, steps=40)  # measured: mAP50 0.69, loss / 23
    assert check_overfit(good) is None, good
    assert good["images"] == 8 and good["boxes"] == 45 and len(good["losses"]) == 40
    bug = NormalisedBoxes(source.images, source.boxes, source.labels, source.class_names)
    bad = overfit_batch(bug, img_size=64, steps=40)  # measured: mAP50 0.0 (the loss falls)
    assert check_overfit(bad).code == "cannot-overfit"


# --------------------------------------------------------------------- weights and the CLI
def five_classes(root):
    shapes = make_shapes(6, size=128, seed=3)
    labels = [lab % 5 for lab in shapes.labels]
    return write_yolo(BoxDataset(shapes.images, shapes.boxes, labels, list("abcde")), root)


def test_weights_sweep_the_confidence_and_check_the_classes(sample, tmp_path):
    weights = paths.weights("yolov3-nano-neighbours.pt")  # 7 shape classes, like the sample
    report = diagnose(sample, weights=weights, overfit_steps=0)
    assert [r["conf"] for r in report.sweep] == list(CONF_THRESHOLDS)
    recalls = [r["recall"] for r in report.sweep]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold keeps fewer boxes
    assert report.sweep[0]["map50"] > 0.3 and "class-mismatch" not in report.codes
    other = diagnose(five_classes(tmp_path / "five"), weights=weights, overfit_steps=0)
    assert finding(other, "class-mismatch").severity == "error"


def test_cli_writes_html_and_png_and_exits_1_on_errors(sample, tmp_path, capsys):
    out = tmp_path / "doctor"
    args = ["doctor", "--data", str(sample), "--out", str(out), "--overfit-steps", "0",
            "--threads", "1"]
    assert main(args) == 0
    html = (out / "doctor.html").read_text()
    assert "data:image/png;base64," in html and (out / "doctor.png").stat().st_size > 1000
    MISTAKES["pixels"][0](sample)
    assert main(args) == 1
    assert "pixel-coordinates" in capsys.readouterr().out
    assert "pixel-coordinates" in (out / "doctor.html").read_text()
    assert main(["doctor", "--data", str(tmp_path / "nothing.yaml")]) == 2
