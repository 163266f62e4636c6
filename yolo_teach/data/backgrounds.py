"""Cluttered backgrounds for the synthetic scenes, made offline.

A detector that only ever sees objects on a flat colour learns "anything that is not the
background is an object". Real detection data (VOC, COCO, the face-mask photos of the course's
YOLOv4 study) put objects on clutter, so every synthetic scene starts from one of:

* a random crop of a real photograph that ships *inside* scikit-image (``skimage.data``: the
  astronaut, coffee, Chelsea the cat, a rocket launch, textures of brick/grass/gravel, ...), so
  nothing is downloaded;
* a procedural texture (value noise, stripes, checks, gradients, blobs), all vectorised NumPy or
  OpenCV calls, no per-pixel Python loops;
* a blend of the two, followed by colour jitter (brightness, contrast, saturation, hue), the
  photometric part of the "bag of freebies" of YOLOv4 (Bochkovskiy et al., 2020, Sec. 2.2).

Determinism: every function takes a ``numpy.random.Generator`` and draws from nothing else. The
generators of this package give image ``i`` the generator ``image_rng(seed, i)`` so that an image
depends only on ``(seed, i)``: a subset, a different batch size or another order reproduces it.
The photos and the noise bank are cached once per process and are identical on every call.
"""

from __future__ import annotations

from functools import cache, lru_cache

import cv2
import numpy as np

# Loaders of ``skimage.data`` that read a file shipped inside the wheel (checked with
# scikit-image 0.21-0.26; loaders that need pooch/network are left out, a missing one is skipped).
PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
    "cell",
)
PHOTO_MAX_SIDE = 320  # photos are downscaled once so that a crop + resize costs microseconds
TEXTURE_KINDS = ("noise", "stripes", "checks", "gradient", "blobs")
BACKGROUND_KINDS = ("photo", *TEXTURE_KINDS)

_NOISE_BANK_SIDE = 640


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of a dataset made with ``seed``.

    ``default_rng([seed, index])`` hashes both numbers into independent streams, so image ``i`` is
    the same whether it was made alone, in a batch of 5 or in a batch of 50.
    """
    return np.random.default_rng([seed, index])


def image_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` from a side length ``size`` or an ``(H, W)`` pair."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


@cache
def load_photos(max_side: int = PHOTO_MAX_SIDE) -> tuple[np.ndarray, ...]:
    """The offline photos of ``skimage.data`` as read-only ``(h, w, 3)`` uint8 RGB arrays.

    Grey images are repeated to three channels and RGBA images lose alpha; each photo is shrunk
    with area interpolation so that its longer side is at most ``max_side`` px. Loaded once per
    process (``lru_cache``); a loader that fails (missing file, needs a download) is skipped.
    """
    from skimage import data as skdata  # lazy: importing skimage costs ~0.5 s

    photos = []
    for name in PHOTO_NAMES:
        try:
            img = np.asarray(getattr(skdata, name)())
        except Exception:  # noqa: BLE001 - any failure means "not available offline here"
            continue
        if img.dtype != np.uint8:
            img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)  # (h, w) -> (h, w, 3)
        img = np.ascontiguousarray(img[:, :, :3])
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            new_wh = (round(img.shape[1] * scale), round(img.shape[0] * scale))
            img = cv2.resize(img, new_wh, interpolation=cv2.INTER_AREA)
        img.setflags(write=False)
        photos.append(img)
    return tuple(photos)


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed ``(640, 640, 3)`` int16 bank of Gaussian noise (σ = 16); crops of it are "sensor
    noise" that costs one slice instead of a fresh ``rng.normal`` per pixel."""
    bank = np.random.default_rng(12345).normal(0.0, 16.0, (_NOISE_BANK_SIDE,) * 2 + (3,))
    bank = bank.round().astype(np.int16)
    bank.setflags(write=False)
    return bank


def random_color(rng: np.random.Generator) -> np.ndarray:
    """One RGB colour, uniform in the cube, as float32 ``(3,)``."""
    return rng.uniform(0, 255, 3).astype(np.float32)


def _mix(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Per-pixel blend ``c0 + t (c1 - c0)`` of two colours with weights ``t`` in [0, 1].

    Done as a 256-entry colour look-up table indexed by ``t`` quantised to 8 bits, which is
    several times faster than the float expression and equal to it within one grey level.

    Args:
        t: ``(H, W)`` float32 weights.
        c0, c1: ``(3,)`` colours.
    Returns:
        ``(H, W, 3)`` uint8.
    """
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]  # (256, 1)
    lut = np.clip(c0 + ramp * (c1 - c0), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    index = cv2.convertScaleAbs(t, alpha=255.0)  # (H, W) uint8, saturated
    return cv2.LUT(cv2.cvtColor(index, cv2.COLOR_GRAY2RGB), lut)  # (H, W, 3)


def _rotated_coordinate(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """``u = x cos θ + y sin θ`` for a random angle θ, as an ``(H, W)`` float32 map."""
    theta = rng.uniform(0, np.pi)
    y = np.arange(h, dtype=np.float32)[:, None] * np.float32(np.sin(theta))  # (H, 1)
    x = np.arange(w, dtype=np.float32)[None, :] * np.float32(np.cos(theta))  # (1, W)
    return x + y  # (H, W)


def value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids of g, 2g, 4g... cells summed with halving
    amplitudes (the classic "Perlin-like" recipe without gradients).

    The octaves are summed on the finest small grid and upsampled to ``(h, w)`` once.
    """
    cells = int(rng.integers(2, 5))
    fine = cells * 2 ** (octaves - 1)
    total = np.zeros((fine, fine), np.float32)
    amplitude, weight = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.random((cells, cells), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (fine, fine), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
        cells *= 2
    total = cv2.resize(total, (w, h), interpolation=cv2.INTER_CUBIC)  # (H, W)
    return np.clip(total / weight, 0, 1)


def texture_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Two random colours blended by fractal value noise."""
    return _mix(value_noise(rng, h, w), random_color(rng), random_color(rng))


def texture_stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Soft or hard stripes at a random angle and period (4-40 % of the side)."""
    period = rng.uniform(0.04, 0.4) * max(h, w)
    t = 0.5 + 0.5 * np.sin(_rotated_coordinate(rng, h, w) * np.float32(2 * np.pi / period))
    if rng.random() < 0.5:
        t = (t > 0.5).astype(np.float32)
    return _mix(t, random_color(rng), random_color(rng))


def texture_checks(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A rotated checkerboard (the product of two perpendicular square waves)."""
    period = rng.uniform(0.05, 0.3) * max(h, w)
    u = _rotated_coordinate(rng, h, w)
    theta = rng.uniform(0, np.pi)
    v = np.arange(h, dtype=np.float32)[:, None] * np.float32(np.cos(theta)) - np.arange(
        w, dtype=np.float32
    )[None, :] * np.float32(np.sin(theta))  # (H, W)
    t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    return _mix(t, random_color(rng), random_color(rng))


def texture_gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear gradient between two colours at a random angle."""
    u = _rotated_coordinate(rng, h, w)
    t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    return _mix(t, random_color(rng), random_color(rng))


def texture_blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random filled ellipses and thick lines on a flat colour ("clutter"), softly blurred."""
    image = np.empty((h, w, 3), np.uint8)
    image[:] = random_color(rng).astype(np.uint8)
    side = max(h, w)
    for _ in range(int(rng.integers(4, 14))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.7:
            axes = (int(rng.uniform(0.03, 0.3) * side), int(rng.uniform(0.03, 0.3) * side))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, (cx, cy), axes, angle, 0, 360, color, -1, cv2.LINE_8)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            thickness = max(1, int(rng.uniform(0.005, 0.04) * side))
            cv2.line(image, (cx, cy), end, color, thickness, cv2.LINE_8)
    k = 2 * int(rng.integers(0, 3)) + 1  # 1, 3 or 5
    return cv2.GaussianBlur(image, (k, k), 0) if k > 1 else image


_TEXTURES = {
    "noise": texture_noise,
    "stripes": texture_stripes,
    "checks": texture_checks,
    "gradient": texture_gradient,
    "blobs": texture_blobs,
}


def photo_crop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random crop (random scale and aspect, random flip) of an offline photo, resized to
    ``(h, w)``. Falls back to value noise if no photo is available."""
    photos = load_photos()
    if not photos:
        return texture_noise(rng, h, w)
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ch = max(8, min(ph, round(ph * scale * rng.uniform(0.8, 1.25))))
    cw = max(8, min(pw, round(ch * w / h)))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = photo[y0 : y0 + ch, x0 : x0 + cw]  # a view; OpenCV reads it without a copy
    out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.flip(out, 1) if rng.random() < 0.5 else out


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.4,
    hue: float = 0.05,
) -> np.ndarray:
    r"""Random photometric distortion of an RGB uint8 image (YOLOv4 Sec. 2.2 "bag of freebies").

    Brightness ``b``, contrast ``c``, saturation ``s`` and a hue rotation by ``φ`` are all linear
    in RGB, so they are folded into one affine colour transform ``x' = M x + d`` applied by a
    single ``cv2.transform`` (which also saturates to [0, 255]):

    .. math::
        M = b\,c\,R_φ\,S_s,\quad S_s = s I + \tfrac{1-s}{3} J,\quad
        R_φ = \cos φ\, I + \tfrac{1-\cos φ}{3} J + \tfrac{\sin φ}{\sqrt 3} K,\quad
        d = b\,(1-c)\,\bar x

    with ``J`` the all-ones matrix, ``K`` the cross-product matrix of the grey axis (1, 1, 1) (a
    rotation of the colour cube about the grey axis is a hue shift), and ``x̄`` the image mean
    (contrast stretches around it). Factors: ``b ~ U(1±brightness)``, ``c ~ U(1±contrast)``,
    ``s ~ U(1±saturation)``, ``φ ~ U(±2π hue)``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
    Returns:
        ``(H, W, 3)`` uint8 RGB, a new array.
    """
    b = rng.uniform(1 - brightness, 1 + brightness)
    c = rng.uniform(1 - contrast, 1 + contrast)
    s = rng.uniform(1 - saturation, 1 + saturation)
    phi = rng.uniform(-hue, hue) * 2 * np.pi
    eye, ones = np.eye(3), np.ones((3, 3)) / 3
    cross = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / np.sqrt(3)
    sat = s * eye + (1 - s) * ones
    rot = np.cos(phi) * eye + (1 - np.cos(phi)) * ones + np.sin(phi) * cross
    mean = float(np.mean(cv2.mean(image)[:3]))
    affine = np.empty((3, 4))
    affine[:, :3] = b * c * rot @ sat
    affine[:, 3] = b * (1 - c) * mean
    return cv2.transform(image, affine)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add Gaussian pixel noise of standard deviation ``sigma`` (grey levels) to a uint8 image.

    The noise is a random crop of a fixed bank (see ``_noise_bank``), scaled to ``sigma``.
    """
    h, w = image.shape[:2]
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        reps = (-(-h // bank.shape[0]), -(-w // bank.shape[1]), 1)
        bank = np.tile(bank, reps)
    y0 = int(rng.integers(0, bank.shape[0] - h + 1))
    x0 = int(rng.integers(0, bank.shape[1] - w + 1))
    noise = bank[y0 : y0 + h, x0 : x0 + w]  # (H, W, 3)
    if sigma != 16.0:
        noise = noise * np.float32(sigma / 16.0)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def random_background(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    kinds: tuple[str, ...] = BACKGROUND_KINDS,
    photo_prob: float = 0.5,
    blend_prob: float = 0.3,
    jitter: bool = True,
) -> np.ndarray:
    """One cluttered background: a photo crop (probability ``photo_prob``) or a procedural
    texture, optionally alpha-blended with a second texture, then colour-jittered.

    Args:
        rng: the image's random generator.
        size: side length or ``(H, W)``.
        kinds: the allowed kinds, a subset of ``BACKGROUND_KINDS``.
    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    h, w = image_hw(size)
    textures = [k for k in kinds if k in _TEXTURES]
    use_photo = "photo" in kinds and (not textures or rng.random() < photo_prob)
    if use_photo:
        image = photo_crop(rng, h, w)
    else:
        image = _TEXTURES[textures[int(rng.integers(len(textures)))]](rng, h, w)
    if textures and rng.random() < blend_prob:
        other = _TEXTURES[textures[int(rng.integers(len(textures)))]](rng, h, w)
        alpha = rng.uniform(0.2, 0.5)
        image = cv2.addWeighted(image, 1 - alpha, other, alpha, 0.0)
    return color_jitter(image, rng) if jitter else image
