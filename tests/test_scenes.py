"""Tests of the offline scene generators: shapes, face masks, CT lesions and their backgrounds."""

import numpy as np
import pytest

from yolo_teach.data import BoxDataset, build_dataset
from yolo_teach.data.backgrounds import (
    BACKGROUND_KINDS,
    color_jitter,
    image_rng,
    load_photos,
    random_background,
)
from yolo_teach.data.ct_lesions import (
    LESION_CLASSES,
    LEVEL_LESIONS,
    WINDOWS,
    load_example_ct,
    make_ct_lesions,
    window,
    window_rgb,
)
from yolo_teach.data.face_masks import FACE_CLASSES, make_face_masks
from yolo_teach.data.shapes import (
    SHAPE_CLASSES,
    OcclusionMap,
    make_shapes,
    mask_box,
    render_shapes_scene,
)

GENERATORS = {
    "shapes": lambda n, size, seed: make_shapes(n, size, seed),
    "faces": lambda n, size, seed: make_face_masks(n, size, seed, crowd_prob=0.5),
    "ct": lambda n, size, seed: make_ct_lesions(n, size, seed),
}


def assert_valid(ds: BoxDataset, height: int, width: int) -> None:
    """The BoxDataset contract: RGB uint8 images, boxes inside with positive area, labels ok."""
    assert len(ds.images) == len(ds.boxes) == len(ds.labels)
    for image, boxes, labels in ds:
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4)
        assert labels.dtype == np.int64
        assert np.all((labels >= 0) & (labels < ds.num_classes))
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
        assert np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def assert_same(a: BoxDataset, b: BoxDataset, indices) -> None:
    for i in indices:
        np.testing.assert_array_equal(a.images[i], b.images[i])
        np.testing.assert_array_equal(a.boxes[i], b.boxes[i])
        np.testing.assert_array_equal(a.labels[i], b.labels[i])


# ---------------------------------------------------------------- determinism and the contract
@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_data_and_batch_size_does_not_matter(name):
    make = GENERATORS[name]
    small, size = (2, 6) if name == "ct" else (5, 50) if name == "shapes" else (3, 12)
    a = make(small, 64, 7)
    b = make(size, 64, 7)
    assert_same(a, b, range(small))  # image i depends only on (seed, i)
    assert_same(a, make(small, 64, 7), range(small))
    c = make(small, 64, 8)
    assert any(not np.array_equal(a.images[i], c.images[i]) for i in range(small))


def test_build_dataset_in_chunks_equals_one_shot():
    def render(rng):
        return render_shapes_scene(rng, 48)

    whole = build_dataset(render, 5, 3, SHAPE_CLASSES)
    chunks = [build_dataset(render, 2, 3, SHAPE_CLASSES),
              build_dataset(render, 3, 3, SHAPE_CLASSES, start=2)]  # fmt: skip
    assert whole.names == ["0000", "0001", "0002", "0003", "0004"]
    assert [name for c in chunks for name in c.names] == whole.names
    joined = BoxDataset([x for c in chunks for x in c.images], [x for c in chunks for x in c.boxes],
                        [x for c in chunks for x in c.labels], list(SHAPE_CLASSES))  # fmt: skip
    assert_same(whole, joined, range(5))
    assert build_dataset(render, 1, 3, SHAPE_CLASSES, start=12345).names == ["12345"]
    # the generators take the offset too; CT's per-image meta (HU, level, spacing) follow
    ct, tail = make_ct_lesions(3, 64, 1), make_ct_lesions(2, 64, 1, start=1)
    assert tail.names == ["0001", "0002"]
    assert_same(ct.subset([1, 2]), tail, range(2))
    assert tail.meta["level"] == ct.meta["level"][1:]
    assert tail.meta["pixel_spacing_mm"] == ct.meta["pixel_spacing_mm"][1:]
    for a, b in zip(ct.meta["hu"][1:], tail.meta["hu"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same(make_face_masks(4, 48, 2).subset([3]), make_face_masks(1, 48, 2, start=3), [0])


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("hw", [(64, 64), (72, 120)])
def test_contract_any_size(name, hw):
    ds = GENERATORS[name](6, hw, 1)
    assert_valid(ds, *hw)
    assert sum(len(b) for b in ds.boxes) > 0


def test_image_rng_is_per_image():
    a = image_rng(3, 10).random(4)
    np.testing.assert_array_equal(a, image_rng(3, 10).random(4))
    assert not np.array_equal(a, image_rng(3, 11).random(4))
    assert not np.array_equal(a, image_rng(4, 10).random(4))


# ---------------------------------------------------------------- backgrounds
def test_offline_photos_load():
    photos = load_photos()
    assert len(photos) >= 5  # astronaut, coffee, chelsea, rocket, camera ship with skimage
    for p in photos:
        assert p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3
        assert max(p.shape[:2]) <= 320 and not p.flags.writeable
    assert load_photos() is photos  # cached once


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_every_background_kind(kind):
    image = random_background(image_rng(0, 1), (40, 56), kinds=(kind,))
    assert image.shape == (40, 56, 3) and image.dtype == np.uint8
    assert image.std() > 0  # not a flat colour after jitter/texture


def test_color_jitter_identity_and_range():
    image = random_background(image_rng(0, 2), 32, jitter=False)
    same = color_jitter(image, image_rng(0, 3), 0, 0, 0, 0)
    np.testing.assert_array_equal(same, image)
    out = color_jitter(image, image_rng(0, 4))
    assert out.shape == image.shape and out.dtype == np.uint8


# ---------------------------------------------------------------- shapes
def test_mask_box_is_tight_in_pixel_edges():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True  # rows 2..4, cols 3..6, patch placed at (y0, x0) = (10, 20)
    # x1 = 20 + 3 = 23, y1 = 10 + 2 = 12, x2 = 20 + 6 + 1 = 27, y2 = 10 + 4 + 1 = 15
    np.testing.assert_array_equal(mask_box(mask, 10, 20), [23, 12, 27, 15])
    assert mask_box(np.zeros((3, 3), bool), 0, 0) is None


def test_occlusion_map_rejects_hiding_too_much():
    occ = OcclusionMap(10, 10)
    square = np.ones((4, 4), bool)  # 16 px at rows/cols 0..3
    assert occ.try_paint(0, 0, square, square, 0.6)
    band = np.ones((2, 4), bool)  # hides rows 0..1 of the square: 8 of 16 px, 50 % left
    assert not occ.try_paint(0, 0, band, None, 0.6)
    np.testing.assert_allclose(occ.visible_fraction(), [1.0])
    assert occ.try_paint(0, 0, band, None, 0.5)  # 50 % >= 50 %: accepted
    np.testing.assert_allclose(occ.visible_fraction(), [0.5])
    small = np.ones((1, 1), bool)
    assert occ.try_paint(5, 5, small, small, 0.6) and len(occ) == 2


def test_shape_sizes_cover_coco_small_medium_large():
    ds = make_shapes(200, size=256, seed=0)
    boxes = np.concatenate(ds.boxes)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    small, large = area < 32**2, area >= 96**2
    medium = ~small & ~large
    for bucket in (small, medium, large):
        assert bucket.mean() > 0.05, (small.mean(), medium.mean(), large.mean())
    counts = np.array([len(b) for b in ds.boxes])
    assert counts.min() >= 1 and counts.max() <= 10 and counts.mean() > 3
    labels = np.concatenate(ds.labels)
    assert set(np.unique(labels)) == set(range(len(SHAPE_CLASSES)))


def test_shape_classes_and_weights():
    ds = make_shapes(10, 64, 0, classes=("star", "ring"), class_weights=[0, 1])
    assert ds.class_names == ["star", "ring"]
    assert np.all(np.concatenate(ds.labels) == 1)
    with pytest.raises(ValueError):
        make_shapes(1, 64, 0, classes=("blob",))


# ---------------------------------------------------------------- face masks
def test_face_mask_classes_are_imbalanced_like_the_kaggle_set():
    ds = make_face_masks(300, size=96, seed=0)
    assert ds.class_names == list(FACE_CLASSES)
    counts = np.bincount(np.concatenate(ds.labels), minlength=3)
    assert counts[0] > counts[1] > counts[2] > 0  # mask > no_mask > mask_incorrect
    assert 0.7 < counts[0] / counts.sum() < 0.88  # 3232 / 4072 = 0.79


def test_face_masks_crowds_have_many_small_faces():
    crowd = make_face_masks(6, 128, 0, crowd_prob=1.0)
    single = make_face_masks(6, 128, 0, crowd_prob=0.0)
    n_crowd = np.mean([len(b) for b in crowd.boxes])
    n_single = np.mean([len(b) for b in single.boxes])
    assert n_crowd > 4 > n_single
    side = lambda ds: np.median(np.concatenate([b[:, 3] - b[:, 1] for b in ds.boxes]))  # noqa: E731
    assert side(crowd) < side(single)


# ---------------------------------------------------------------- CT lesions
def test_window_arithmetic():
    # soft-tissue window c = 40, w = 400: y = clip((x - 39.5) / 399 + 0.5, 0, 1) * 255
    hu = np.array([-1000, -160, 0, 40, 239, 240, 3000])
    # -160: (-199.5 / 399 + 0.5) = 0 -> 0;   0: (-39.5 / 399 + 0.5) * 255 = 102.26 -> 102
    # 40: (0.5 / 399 + 0.5) * 255 = 127.82 -> 128;   239: (199.5 / 399 + 0.5) * 255 = 255
    np.testing.assert_array_equal(window(hu, 40, 400), [0, 0, 102, 128, 255, 255, 255])
    # lung window c = -600, w = 1500: -1000 -> (-399.5 / 1499 + 0.5) * 255 = 59.54 -> 60
    assert window(np.array([-1000]), *WINDOWS["lung"])[0] == 60
    assert window(np.zeros((2, 3), np.int16), 0, 100).shape == (2, 3)
    rgb = window_rgb(np.array([[-800, 40, 1000]]), ("lung", "soft_tissue", "bone"))
    # lung: (-800+600.5)/1499+.5 -> 93.56 -> 94; soft: 128; bone c=400 w=1800: 1000 -> 212.6
    np.testing.assert_array_equal(rgb[0, :, 0], window(np.array([-800, 40, 1000]), -600, 1500))
    assert rgb.shape == (1, 3, 3) and rgb[0, 0, 0] == 94 and rgb[0, 1, 1] == 128
    assert rgb[0, 2, 2] == 213


def test_ct_slices_are_hu_and_images_are_windowed():
    ds = make_ct_lesions(3, size=512, seed=0)
    assert_valid(ds, 512, 512)
    assert ds.class_names == list(LESION_CLASSES)
    for i, hu in enumerate(ds.meta["hu"]):
        assert hu.dtype == np.int16 and hu.shape == (512, 512)
        assert -1024 <= hu.min() and hu.max() <= 3071
        assert abs(float(hu[:20, :20].mean()) + 1000) < 15  # air in the corner
        assert (hu > 500).sum() > 100  # bone
        assert ((hu > -150) & (hu < -50)).sum() > 1000  # fat
        level = ds.meta["level"][i]
        allowed = {LESION_CLASSES.index(k) for k in LEVEL_LESIONS[level]}
        assert set(ds.labels[i].tolist()) <= allowed
        np.testing.assert_array_equal(ds.images[i][:, :, 0], window(hu, *WINDOWS["soft_tissue"]))
        if level == "thorax":
            assert (hu < -700)[100:400, 100:400].sum() > 5000  # lungs inside the body
    assert all(0.6 < s < 0.9 for s in ds.meta["pixel_spacing_mm"])


def test_lesions_stand_out_from_their_organ():
    ds = make_ct_lesions(12, size=256, seed=3)
    for hu, boxes, labels in zip(ds.meta["hu"], ds.boxes, ds.labels):
        for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
            patch = hu[y1:y2, x1:x2]
            if LESION_CLASSES[label] == "lung":  # nodules (> -400 HU) in lung (about -850 HU)
                assert patch.max() > -650
            if LESION_CLASSES[label] == "bone":  # lytic (< 120) or sclerotic (> 700) vs 220
                assert patch.min() < 150 or patch.max() > 600
    assert len(np.concatenate(ds.labels)) >= 12


def test_example_ct_loads_offline_in_hu():
    import pydicom
    from pydicom.data import get_testdata_file

    hu = load_example_ct()
    assert hu.shape == (128, 128) and hu.dtype == np.int16
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, expected.astype(np.int16))
    assert -1024 <= hu.min() < -500 and 0 < hu.max() < 3072  # air and tissue/bone present
