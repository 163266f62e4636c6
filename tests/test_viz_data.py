import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from yolo_teach.anchors import anchor_fitness  # noqa: E402
from yolo_teach.data import (  # noqa: E402
    BoxDataset,
    make_ct_lesions,
    make_face_masks,
    make_shapes,
    read_coco,
    read_voc,
    read_yolo,
)
from yolo_teach.data.augment import (  # noqa: E402
    Augment,
    affine_matrix,
    filter_boxes,
    transform_boxes,
)
from yolo_teach.viz.anchors_view import (  # noqa: E402
    box_sizes,
    draw_anchor_shapes,
    draw_fitness_curve,
    draw_wh_scatter,
    fitness_by_k,
    size_bucket_counts,
)
from yolo_teach.viz.augment_view import (  # noqa: E402
    AUGMENTATIONS,
    describe_dropped,
    draw_preview,
    draw_samples,
    mosaic_preview,
    preview_sample,
)

ROOT = Path(__file__).resolve().parents[1]
S = 96  # preview side in most tests


def new_ax():
    return Figure(figsize=(2, 2), dpi=50).add_subplot()


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(12, S, seed=0)


def flat_dataset(colors, boxes=None, side=64):
    """Solid-colour images, one per colour, with the given boxes (none by default)."""
    images = [np.full((side, side, 3), c, np.uint8) for c in colors]
    boxes = boxes or [np.zeros((0, 4))] * len(colors)
    labels = [np.zeros(len(b), np.int64) for b in boxes]
    return BoxDataset(images, boxes, labels, ["thing"])


# ----------------------------------------------------------------- box sizes and anchors
def test_box_sizes_and_coco_buckets():
    ds = BoxDataset([np.zeros((200, 200, 3), np.uint8)] * 2,
                    [[[0, 0, 31, 33], [0, 0, 32, 32]], [[10, 10, 106, 106], [5, 0, 100, 97]]],
                    [[0, 0], [0, 0]], ["a"])  # fmt: skip
    wh = box_sizes(ds)
    np.testing.assert_array_equal(wh, [[31, 33], [32, 32], [96, 96], [95, 97]])
    # areas: 31*33 = 1023 < 32² (small); 32² = 1024 (medium); 96² = 9216 (large);
    # 95*97 = 9215 < 96² (medium)
    assert size_bucket_counts(wh) == {"small": 1, "medium": 2, "large": 1}


def test_fitness_by_k_reaches_one_with_one_anchor_per_size():
    wh = np.repeat([[10.0, 20.0], [40.0, 40.0], [90.0, 30.0]], 5, axis=0)
    anchors, fitness = fitness_by_k(wh, ks=[1, 2, 3])
    assert [a.shape for a in anchors] == [(1, 2), (2, 2), (3, 2)]
    assert fitness[-1] == pytest.approx(1.0)
    assert fitness[0] == pytest.approx(anchor_fitness(wh, anchors[0]))
    assert np.all(np.diff(fitness) > 0)


def test_anchor_drawings():
    ax = draw_anchor_shapes(new_ax(), [[20, 40], [60, 30]], size=100)
    rects = ax.patches
    assert len(rects) == 2
    # (20, 40) centred at 50: x1 = 50 - 10 = 40, y1 = 50 - 20 = 30
    assert rects[0].get_xy() == (40, 30) and rects[0].get_width() == 20
    wh = np.random.default_rng(0).uniform(5, 100, (50, 2))
    ax = draw_wh_scatter(new_ax(), wh, anchors=[[30, 30]], labels=np.arange(50) % 3,
                         reference=[[10, 13], [16, 30]])  # fmt: skip
    assert len(ax.collections) == 3  # boxes, reference, anchors
    ax = draw_fitness_curve(new_ax(), [1, 2, 3], [0.4, 0.6, 0.7], {"YOLOv3": (9, 0.65)})
    assert len(ax.lines) == 2


# ----------------------------------------------------------------- the preview, pure part
def test_preview_without_augmentation_is_the_image(shapes):
    p = preview_sample(shapes, 3, toggles=(), size=S)
    image, boxes, labels = shapes[3]
    np.testing.assert_array_equal(p.image, image)  # letterbox of an S x S image to S: identity
    np.testing.assert_array_equal(p.boxes, boxes)
    np.testing.assert_array_equal(p.labels, labels)
    assert len(p.dropped) == 0 and p.sources == (3,) and p.steps == ("letterbox",)


@pytest.mark.parametrize("toggles", [("mosaic",), ("mosaic", "affine"), ("affine", "cutmix"),
                                     ("mosaic", "affine", "cutmix", "flip"), AUGMENTATIONS])
def test_preview_keeps_the_box_contract(shapes, toggles):
    for seed in range(4):
        p = preview_sample(shapes, seed, seed=seed, centre=(0.3, 0.6), toggles=toggles, size=S)
        assert p.image.shape == (S, S, 3) and p.image.dtype == np.uint8
        assert np.all(p.boxes >= 0) and np.all(p.boxes[:, 2:] <= S)
        assert np.all(p.boxes[:, 2:] > p.boxes[:, :2])
        assert np.all(p.dropped >= 0) and np.all(p.dropped[:, 2:] <= S)
        # every object loaded is either kept or dropped, never lost or invented
        assert len(p.boxes) + len(p.dropped) == sum(len(shapes.boxes[i]) for i in p.sources)
        loaded = np.concatenate([shapes.labels[i] for i in p.sources])
        assert sorted(np.concatenate([p.labels, p.dropped_labels])) == sorted(loaded)
        assert set(p.dropped_steps) <= {"mosaic", "letterbox", "affine", "cutmix"}


def test_preview_mosaic_centre_lands_where_asked():
    colors = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]
    ds = flat_dataset(colors)
    p = preview_sample(ds, 1, seed=3, centre=(0.25, 0.75), toggles=("mosaic",), size=64)
    assert p.centre == (16, 48)  # 0.25 * 64, 0.75 * 64
    xc, yc = p.centre
    # image k of the mosaic touches the centre with one corner: 0 TL, 1 TR, 2 BL, 3 BR
    around = [p.image[yc - 1, xc - 1], p.image[yc - 1, xc], p.image[yc, xc - 1], p.image[yc, xc]]
    for pixel, source in zip(around, p.sources):
        np.testing.assert_array_equal(pixel, colors[source])


def test_preview_mosaic_dropped_boxes_hand_computed():
    boxes = [np.array([[60, 45, 100, 51], [60, 60, 80, 90], [10, 10, 30, 30]], np.float32),
             np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4))]  # fmt: skip
    ds = flat_dataset([(90, 90, 90)] * 4, boxes, side=100)
    seed = next(s for s in range(50)
                if 0 not in preview_sample(ds, 0, seed=s, toggles="mosaic", size=100).sources[1:])
    p = preview_sample(ds, 0, seed=seed, centre=(0.5, 0.5), toggles="mosaic", size=100)
    # image 0 is top-left with its corner (100, 100) on the centre (50, 50): shift by -50.
    # (60, 60, 80, 90) -> (10, 10, 30, 40), inside: kept as is.
    np.testing.assert_array_equal(p.boxes, [[10, 10, 30, 40]])
    # (60, 45, 100, 51) -> (10, -5, 50, 1): clipped to (10, 0, 50, 1), 1 px < 2 px high: dropped.
    # (10, 10, 30, 30) -> (-40, -40, -20, -20): nothing of it on the canvas.
    np.testing.assert_array_equal(p.dropped, [[10, 0, 50, 1], [0, 0, 0, 0]])
    assert p.dropped_steps == ("mosaic", "mosaic")
    # a later warp moves what was left, but never brings back a box that was not on the canvas
    hyp = Augment(degrees=45.0, scale=0.9)
    warped = preview_sample(ds, 0, seed=seed, centre=(0.5, 0.5), toggles=("mosaic", "affine"),
                            size=100, hyp=hyp)  # fmt: skip
    assert warped.dropped_steps[0] == warped.dropped_steps[-1] == "mosaic"
    assert warped.dropped[0].any() and not warped.dropped[-1].any()
    assert describe_dropped(p, ds.class_names) == [
        "thing (image 0) dropped by mosaic: 40 x 1 px",
        "1 with nothing left on the canvas (mosaic 1)",
    ]


def test_preview_affine_follows_the_librarys_matrix(shapes):
    hyp = Augment(degrees=30.0, translate=0.4, scale=0.5, shear=10.0)
    drops = 0
    for seed in range(6):
        p = preview_sample(shapes, seed, seed=seed, toggles=("affine",), size=S, hyp=hyp)
        # without mosaic the affine matrix is the first thing drawn from default_rng(seed)
        M = affine_matrix(S, S, S, S, np.random.default_rng(seed), 30.0, 0.4, 0.5, 10.0)
        boxes, labels = shapes.boxes[seed], shapes.labels[seed]
        moved = transform_boxes(boxes, M)
        area = (boxes[:, 2:] - boxes[:, :2]).prod(1) * abs(np.linalg.det(M[:2, :2]))
        kept, _ = filter_boxes(moved, labels, S, S, reference_area=area)
        np.testing.assert_allclose(p.boxes, kept, atol=1e-4)
        clipped = np.concatenate([moved[:, :2].clip(0, S), moved[:, 2:].clip(0, S)], 1)
        for ghost in p.dropped:
            if ghost.any():  # what was left on the canvas, where the matrix put it
                assert np.abs(clipped - ghost).max(1).min() < 1e-3
            else:  # nothing left: some box has no area on the canvas
                assert ((clipped[:, 2:] <= clipped[:, :2]).any(1)).any()
        drops += len(p.dropped)
    assert drops > 0


def test_preview_cutmix_ghosts_stay_where_the_objects_were(shapes):
    drops = 0
    for seed in range(4):
        p = preview_sample(shapes, seed, seed=seed, toggles=("cutmix",), size=S)
        for ghost, source in zip(p.dropped, p.dropped_sources):
            assert np.abs(shapes.boxes[source] - ghost).max(1).min() == 0
        drops += len(p.dropped)
    assert drops > 0


def test_preview_flip_mirrors_the_dropped_boxes(shapes):
    plain = preview_sample(shapes, 2, seed=1, centre=(0.3, 0.3), toggles=("mosaic",), size=S)
    flipped = preview_sample(shapes, 2, seed=1, centre=(0.3, 0.3), toggles=("mosaic", "flip"),
                             size=S)  # fmt: skip
    visible = plain.dropped.any(1)
    assert visible.sum() > 0
    x1, y1, x2, y2 = plain.dropped[visible].T
    np.testing.assert_array_equal(flipped.dropped[visible], np.stack([S - x2, y1, S - x1, y2], 1))
    assert not flipped.dropped[~visible].any()
    np.testing.assert_array_equal(flipped.image, plain.image[:, ::-1])


def test_preview_rejects_unknown_toggles(shapes):
    with pytest.raises(ValueError, match="unknown augmentations"):
        preview_sample(shapes, 0, toggles=("mosaic", "rotate"))


def test_mixup_and_cutmix_together_follow_augment(shapes):
    p = preview_sample(shapes, 0, toggles=("mixup", "cutmix"), size=S)
    assert p.steps == ("letterbox", "mixup", "cutmix skipped (mixup is on)")
    assert len(p.dropped) == 0  # MixUp keeps every box of both images


# ----------------------------------------------------------------- drawing and the widget
def test_draw_samples_and_preview(shapes):
    fig = Figure()
    axes = fig.subplots(2, 3)
    flat = draw_samples(axes, [shapes[i] for i in range(4)], shapes.class_names,
                        titles=list("abcd"))  # fmt: skip
    assert len(flat) == 6 and not flat[-1].axison and flat[0].get_title() == "a"
    assert len(flat[0].patches) == len(shapes.boxes[0])
    p = preview_sample(shapes, 2, seed=1, centre=(0.3, 0.3), toggles=("mosaic",), size=S)
    ax = draw_preview(new_ax(), p, shapes.class_names)
    visible = np.count_nonzero((p.dropped[:, 2:] > p.dropped[:, :2]).all(1))
    assert len(ax.patches) == len(p.boxes) + visible


def test_mosaic_preview_widget_runs(shapes):
    ui = mosaic_preview(shapes, index=1, size=S)
    assert set(AUGMENTATIONS) <= set(ui.controls)
    ui.controls["affine"].value = True
    ui.controls["seed"].value = 7
    ui.controls["cx"].value = 0.8
    ui.controls["flip"].value = True
    ui.controls["cutmix"].value = True
    p = ui.update()
    assert p.steps == ("mosaic", "affine", "cutmix", "flip")
    assert f"<b>{len(p.boxes)}</b> boxes kept" in ui.texts[0].value
    ui.controls["mosaic"].value = False
    assert ui.update().steps[0] == "letterbox"


def test_mosaic_preview_shows_its_picture_and_redraws_it(shapes):
    import ipywidgets as widgets

    from yolo_teach.viz.panel import show_figure

    ui = mosaic_preview(shapes, index=1, size=S)
    picture = ui.children[-1]
    assert isinstance(picture, widgets.Image) and picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = bytes(picture.value)
    ui.controls["seed"].value = 11  # a slider move redraws the picture
    assert bytes(picture.value) != before
    with pytest.raises(TypeError, match="Image"):
        show_figure(widgets.Output(), Figure())


# ----------------------------------------------------------------- scripts/make_datasets.py
def load_script():
    spec = importlib.util.spec_from_file_location("make_datasets",
                                                  ROOT / "scripts" / "make_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parametrize("name, fmt, size", [("shapes", "yolo", 64), ("face_masks", "voc", 64),
                                             ("ct_lesions", "coco", 128)])
def test_make_datasets_is_byte_identical(tmp_path, name, fmt, size):
    script = load_script()
    args = [name, "--n", "3", "--size", str(size), "--seed", "4", "--format", fmt, "--quiet"]
    assert script.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert script.main([*args, "--out", str(tmp_path / "b")]) == 0
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first == second and len(first) >= 6
    # the files hold what the library's generator makes
    reference = {"shapes": make_shapes, "face_masks": make_face_masks,
                 "ct_lesions": make_ct_lesions}[name](3, size, seed=4)  # fmt: skip
    read = {"yolo": read_yolo, "voc": read_voc, "coco": read_coco}[fmt](tmp_path / "a")
    assert read.names == reference.names and read.class_names == reference.class_names
    for k in range(3):
        np.testing.assert_array_equal(read.images[k], reference.images[k])
        np.testing.assert_array_equal(read.boxes[k], reference.boxes[k])
        np.testing.assert_array_equal(read.labels[k], reference.labels[k])
    if name == "ct_lesions":  # HU in 16-bit PNGs, DeepLesion's offset of 32768
        stored = cv2.imread(str(tmp_path / "a" / "hu" / "0001.png"), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16
        np.testing.assert_array_equal(stored.astype(np.int32) - 32768, reference.meta["hu"][1])
    # a second run into a folder that is not empty is refused
    assert script.main([*args, "--out", str(tmp_path / "a")]) == 1


def test_make_datasets_needs_a_dataset_or_sample():
    script = load_script()
    with pytest.raises(SystemExit):
        script.parse_args([])
    with pytest.raises(SystemExit):
        script.parse_args(["shapes", "--sample"])
