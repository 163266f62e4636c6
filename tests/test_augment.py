from collections import Counter
from functools import partial

import numpy as np
import pytest

from yolo_teach.data.augment import (
    Augment,
    blur,
    brightness_exposure,
    compose,
    cutmix,
    filter_boxes,
    hflip,
    hsv_jitter,
    letterbox,
    mixup,
    mosaic,
    mosaic_layout,
    random_affine,
    transform_boxes,
    unletterbox_boxes,
)


def random_sample(rng, label_offset=0, min_side=64, max_side=96, max_boxes=6):
    """A random image of 64-96 px with random boxes (some tiny, some touching the border)."""
    h, w = rng.integers(min_side, max_side + 1, size=2)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    n = int(rng.integers(0, max_boxes + 1))
    x = np.sort(rng.uniform(0, w, size=(n, 2)), 1)
    y = np.sort(rng.uniform(0, h, size=(n, 2)), 1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1).astype(np.float32)
    labels = rng.integers(0, 10, size=n).astype(np.int64) + label_offset
    return image, boxes, labels


def assert_valid(sample, size, in_labels):
    image, boxes, labels = sample
    h, w = size
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
    assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4)
    assert labels.dtype == np.int64
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert Counter(labels.tolist()) <= Counter(np.asarray(in_labels).tolist())  # sub-multiset


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------- filter_boxes
def test_filter_boxes_clips_and_drops_with_labels():
    boxes = np.array(
        [
            [10, 10, 20, 20],  # inside: kept
            [-5, 0, 5, 10],  # half outside: clipped to [0, 0, 5, 10], kept (50% >= 10%)
            [-9.5, 0, 0.5, 10],  # 95% outside: clipped to width 0.5 < 2 px, dropped
            [90, 90, 150, 150],  # clipped to [90, 90, 100, 100]: 100/3600 = 2.8% < 10%, dropped
            [30, 30, 30, 40],  # zero width, dropped
            [40, 40, 41, 80],  # 1 px wide, dropped by min_size=2
        ],
        np.float32,
    )
    labels = np.arange(6)
    out_boxes, out_labels = filter_boxes(boxes, labels, 100, 100)
    assert out_labels.tolist() == [0, 1]
    np.testing.assert_array_equal(out_boxes, [[10, 10, 20, 20], [0, 0, 5, 10]])
    # reference area: a 10x10 box that the transform blew up from 1000 px^2 kept only 10%
    _, kept = filter_boxes(boxes[:1], labels[:1], 100, 100, reference_area=np.array([1001.0]))
    assert len(kept) == 0


def test_filter_boxes_empty():
    boxes, labels = filter_boxes(np.zeros((0, 4)), np.zeros(0), 10, 10)
    assert boxes.shape == (0, 4) and labels.shape == (0,)


# ------------------------------------------------------------------------- mosaic
def test_mosaic_invariants_over_1000_draws():
    rng = np.random.default_rng(0)
    for _ in range(1000):
        # sample k gets labels in [10k, 10k + 9], so the per-sample multisets can be checked
        samples = [random_sample(rng, 10 * k) for k in range(4)]
        out = mosaic(samples, 128, rng)
        all_labels = np.concatenate([s[2] for s in samples])
        assert_valid(out, (128, 128), all_labels)
        for k in range(4):
            from_k = out[2][(out[2] >= 10 * k) & (out[2] < 10 * k + 10)]
            assert Counter(from_k.tolist()) <= Counter(samples[k][2].tolist())


def test_mosaic_is_deterministic_and_boxes_follow_pixels():
    rng = np.random.default_rng(1)
    samples = [random_sample(rng, 10 * k) for k in range(4)]
    copies = [tuple(x.copy() for x in s) for s in samples]
    a = mosaic(samples, 128, np.random.default_rng(7))
    b = mosaic(samples, 128, np.random.default_rng(7))
    assert same(a, b) and all(same(s, c) for s, c in zip(samples, copies))
    # one flat-coloured object per image on black: after the mosaic each box holds its colour
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    flat = []
    for colour in colours:
        image = np.zeros((80, 80, 3), np.uint8)
        image[20:60, 30:70] = colour
        flat.append((image, np.array([[30, 20, 70, 60]], np.float32), np.array([0])))
    for seed in range(20):
        image, boxes, _ = mosaic(flat, 128, np.random.default_rng(seed), resize=False)
        for x1, y1, x2, y2 in boxes.astype(int):
            patch = image[y1:y2, x1:x2].reshape(-1, 3)
            assert (patch == patch[0]).all() and patch[0].tolist() in [list(c) for c in colours]


def test_mosaic_with_a_given_centre():
    # four flat 100 x 100 images, not resized, centre (40, 90) on a 128 canvas:
    # TL covers x in [-60, 40), y in [-10, 90) -> visible [0, 40) x [0, 90); TR [40, 128) x
    # [0, 90); BL [0, 40) x [90, 128); BR [40, 128) x [90, 128): the canvas is tiled exactly
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    flat = [(np.full((100, 100, 3), c, np.uint8), np.array([[0, 0, 100, 100]], np.float32),
             np.array([k])) for k, c in enumerate(colours)]  # fmt: skip
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    image, boxes, labels = mosaic(flat, 128, rng, resize=False, centre=(40.7, 90.2))
    assert rng.bit_generator.state == state  # a given centre draws nothing
    quadrants = [image[:90, :40], image[:90, 40:], image[90:, :40], image[90:, 40:]]
    for quadrant, colour in zip(quadrants, colours):
        assert (quadrant == colour).all()  # the four boundaries meet at (40, 90)
    assert labels.tolist() == [0, 1, 2, 3]
    # each full-image box is cut to its quadrant (areas 3600, 7920, 1520, 3344 >= 10 % of 10^4)
    np.testing.assert_array_equal(
        boxes, [[0, 0, 40, 90], [40, 0, 128, 90], [0, 90, 40, 128], [40, 90, 128, 128]]
    )
    # mosaic_layout says the same: TL shifted by (40 - 100, 90 - 100) = (-60, -10)
    assert mosaic_layout(0, (40, 90), 100, 100, 128) == ((0, 0, 40, 90), (-60, -10))
    assert mosaic_layout(3, (40, 90), 100, 100, 128) == ((40, 90, 128, 128), (40, 90))


def test_mosaic_drawn_centre_is_the_given_one_with_the_same_draws():
    rng = np.random.default_rng(3)
    samples = [random_sample(rng, 10 * k) for k in range(4)]
    for seed in range(10):
        draws = np.random.default_rng(seed)
        centre = (draws.uniform(0.2 * 128, 0.8 * 128), draws.uniform(0.2 * 128, 0.8 * 128))
        rng = np.random.default_rng(seed)
        drawn = mosaic(samples, 128, rng)
        assert same(drawn, mosaic(samples, 128, np.random.default_rng(), centre=centre))
        assert rng.random() == draws.random()  # the stream continues where it did before


# ------------------------------------------------------------------------- random_affine
def test_random_affine_invariants_over_1000_draws():
    rng = np.random.default_rng(2)
    for _ in range(1000):
        image, boxes, labels = random_sample(rng)
        border = int(rng.integers(-16, 17))
        out = random_affine(
            image,
            boxes,
            labels,
            rng,
            degrees=30,
            translate=0.2,
            scale=0.5,
            shear=10,
            border=border,
        )
        h, w = image.shape[:2]
        assert_valid(out, (h + 2 * border, w + 2 * border), labels)


def test_random_affine_deterministic_and_does_not_touch_inputs():
    image, boxes, labels = random_sample(np.random.default_rng(3), max_boxes=6)
    copies = (image.copy(), boxes.copy(), labels.copy())
    kwargs = dict(degrees=45, translate=0.1, scale=0.3, shear=5)
    a = random_affine(image, boxes, labels, np.random.default_rng(5), **kwargs)
    b = random_affine(image, boxes, labels, np.random.default_rng(5), **kwargs)
    assert same(a, b) and same((image, boxes, labels), copies)


def test_random_affine_box_encloses_the_warped_object():
    for seed in range(30):
        image = np.zeros((96, 96, 3), np.uint8)
        image[30:60, 20:50] = 255
        box = np.array([[20, 30, 50, 60]], np.float32)
        out, boxes, _ = random_affine(
            image,
            box,
            np.array([1]),
            np.random.default_rng(seed),
            degrees=40,
            scale=0.3,
            shear=5,
            translate=0.05,
            fill=0,
        )
        ys, xs = np.nonzero(out[..., 0] > 127)  # pixels of the object after the warp
        assert len(boxes) == 1
        x1, y1, x2, y2 = boxes[0]
        assert xs.min() >= x1 - 1 and xs.max() <= x2 and ys.min() >= y1 - 1 and ys.max() <= y2


def test_transform_boxes_hand_computed():
    # rotate 90 degrees about the origin, x' = -y, y' = x, then shift by (100, 0):
    # corners of [10, 20, 30, 60] -> x' in {100-20, 100-60} = {80, 40}, y' in {10, 30}
    M = np.array([[0, -1, 100], [1, 0, 0], [0, 0, 1]], np.float64)
    np.testing.assert_allclose(transform_boxes(np.array([[10, 20, 30, 60]]), M), [[40, 10, 80, 30]])


def test_random_affine_identity_when_everything_is_zero():
    image, boxes, labels = random_sample(np.random.default_rng(4))
    out = random_affine(
        image, boxes, labels, np.random.default_rng(0), degrees=0, translate=0, scale=0
    )
    np.testing.assert_array_equal(out[0], image)
    expected = filter_boxes(boxes, labels, image.shape[1], image.shape[0])
    assert same(out[1:], expected)


# ------------------------------------------------------------------------- flips, photometric
def test_hflip_twice_is_identity_and_hand_computed():
    image, boxes, labels = random_sample(np.random.default_rng(5))
    twice = hflip(*hflip(image, boxes, labels))
    np.testing.assert_array_equal(twice[0], image)
    np.testing.assert_allclose(twice[1], boxes, atol=1e-4)
    np.testing.assert_array_equal(twice[2], labels)
    # W = 100: [10, 5, 30, 25] -> [100 - 30, 5, 100 - 10, 25] = [70, 5, 90, 25]
    img = np.zeros((50, 100, 3), np.uint8)
    img[:, 0] = 255
    out_img, out_box, _ = hflip(img, np.array([[10, 5, 30, 25]], np.float32), np.array([0]))
    np.testing.assert_array_equal(out_box, [[70, 5, 90, 25]])
    assert (out_img[:, -1] == 255).all() and (out_img[:, 0] == 0).all()


def test_hflip_with_probability():
    image, boxes, labels = random_sample(np.random.default_rng(6))
    flips = [
        not np.array_equal(hflip(image, boxes, labels, np.random.default_rng(s), p=0.5)[0], image)
        for s in range(200)
    ]
    assert 60 < sum(flips) < 140


@pytest.mark.parametrize(
    "transform",
    [
        partial(hsv_jitter, hgain=0.1, sgain=0.5, vgain=0.5),
        partial(brightness_exposure, brightness=0.4, exposure=0.5),
        partial(blur, max_sigma=2.0),
    ],
)
def test_photometric_keeps_boxes_and_is_deterministic(transform):
    image, boxes, labels = random_sample(np.random.default_rng(7))
    copies = (image.copy(), boxes.copy(), labels.copy())
    a = transform(image, boxes, labels, np.random.default_rng(1))
    b = transform(image, boxes, labels, np.random.default_rng(1))
    assert same(a, b) and same((image, boxes, labels), copies)
    assert a[0].shape == image.shape and a[0].dtype == np.uint8
    assert same(a[1:], (boxes, labels))
    assert not np.array_equal(a[0], image)


def test_hsv_jitter_zero_gains_is_identity_up_to_colour_conversion():
    image = np.random.default_rng(8).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = hsv_jitter(image, np.zeros((0, 4)), np.zeros(0), np.random.default_rng(0), 0, 0, 0)[0]
    assert np.abs(out.astype(int) - image).max() <= 4  # RGB -> HSV -> RGB in uint8 rounds


def test_brightness_exposure_matches_the_formula():
    # I' = clip(round(g I + 255 b)) with g = 1 + U(-0.5, 0.5), b = U(-0.4, 0.4), drawn in that order
    image = np.array([[[0, 100, 255]]], np.uint8)
    out = brightness_exposure(image, np.zeros((0, 4)), np.zeros(0), np.random.default_rng(3))[0]
    draws = np.random.default_rng(3)
    g, b = 1 + draws.uniform(-0.5, 0.5), draws.uniform(-0.4, 0.4)
    expected = np.clip(np.round(g * image.astype(float) + 255 * b), 0, 255)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


# ------------------------------------------------------------------------- letterbox
def test_letterbox_round_trip_and_hand_computed():
    rng = np.random.default_rng(9)
    for _ in range(50):
        image, boxes, labels = random_sample(rng, min_side=20, max_side=300)
        out, lb_boxes, r, pad = letterbox(image, boxes, 128)
        assert out.shape == (128, 128, 3)
        assert_valid((out, lb_boxes, labels), (128, 128), labels)  # valid input stays valid
        back = unletterbox_boxes(lb_boxes, r, pad)
        np.testing.assert_allclose(back, boxes, atol=1e-3)
    # 200 x 100 (W x H) into 128: r = 0.64, image 128 x 64, pad_y = (128 - 64) / 2 = 32
    image = np.zeros((100, 200, 3), np.uint8)
    out, lb, r, pad = letterbox(image, np.array([[50, 50, 100, 100]], np.float32), 128)
    assert r == pytest.approx(0.64) and pad == (0.0, 32.0)
    np.testing.assert_allclose(lb, [[32, 64, 64, 96]])  # [50 r, 50 r + 32, 100 r, 100 r + 32]
    assert (out[:32] == 114).all() and (out[32:96] == 0).all() and (out[96:] == 114).all()


# ------------------------------------------------------------------------- mixup, cutmix
def test_mixup_keeps_all_boxes_and_blends():
    rng = np.random.default_rng(10)
    for _ in range(100):
        a, b = random_sample(rng), random_sample(rng, label_offset=10)
        out = mixup(a, b, rng)
        assert out[0].shape == a[0].shape
        assert len(out[2]) == len(a[2]) + sum(1 for _ in out[2][out[2] >= 10])
        np.testing.assert_array_equal(out[1][: len(a[1])], a[1])
        assert_valid(out, a[0].shape[:2], np.concatenate([a[2], b[2]]))
    black, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    lam_image = mixup((black, *empty), (white, *empty), np.random.default_rng(0))[0]
    assert (lam_image == lam_image[0, 0]).all() and 64 < lam_image[0, 0, 0] < 192  # lambda ~ 0.5


def test_cutmix_invariants():
    rng = np.random.default_rng(11)
    for _ in range(300):
        a = random_sample(rng)
        b = random_sample(rng, label_offset=10)
        b_same = (rng.integers(0, 256, a[0].shape, dtype=np.uint8), b[1], b[2])
        for other in (b, b_same):  # b of another size is stretched to a's size
            out = cutmix(a, other, rng)
            assert_valid(out, a[0].shape[:2], np.concatenate([a[2], b[2]]))
            assert Counter(out[2][out[2] < 10].tolist()) <= Counter(a[2].tolist())
        # every pixel comes from a or from b at the same place
        assert ((out[0] == a[0]) | (out[0] == b_same[0])).all()


def test_cutmix_boxes_of_b_lie_in_the_patch():
    black = np.zeros((64, 64, 3), np.uint8)
    white = np.full((64, 64, 3), 255, np.uint8)
    box_b = np.array([[0, 0, 64, 64]], np.float32)  # the whole of b: clipped to the patch
    for seed in range(20):
        out, boxes, labels = cutmix(
            (black, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)),
            (white, box_b, np.array([3])),
            np.random.default_rng(seed),
            min_visible=0.0,
        )
        ys, xs = np.nonzero(out[..., 0])
        if len(boxes):
            assert labels.tolist() == [3]
            np.testing.assert_array_equal(
                boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            )


# ------------------------------------------------------------------------- pipelines
def test_compose_and_augment_pipeline():
    rng = np.random.default_rng(12)
    pipeline = compose(partial(random_affine, degrees=10), hsv_jitter, partial(hflip, p=0.5))
    image, boxes, labels = random_sample(rng)
    a = pipeline(image, boxes, labels, np.random.default_rng(0))
    b = pipeline(image, boxes, labels, np.random.default_rng(0))
    assert same(a, b)
    assert_valid(a, image.shape[:2], labels)

    data = [random_sample(rng, label_offset=10 * i) for i in range(6)]
    augment = Augment(mixup=0.3, cutmix=0.3, degrees=10, shear=2, brightness=0.2, blur=0.3)
    # mosaic and mixup draw images with replacement, so a label may come twice: compare sets
    all_labels = set(np.concatenate([d[2] for d in data]).tolist())
    for seed in range(100):
        out = augment(data.__getitem__, seed % 6, len(data), 96, np.random.default_rng(seed))
        assert_valid(out, (96, 96), out[2])
        assert set(out[2].tolist()) <= all_labels
        again = augment(data.__getitem__, seed % 6, len(data), 96, np.random.default_rng(seed))
        assert same(out, again)
