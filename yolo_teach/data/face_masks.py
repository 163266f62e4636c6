"""Synthetic face-mask scenes: procedurally drawn people wearing a mask, none, or one worn wrong.

The course's face-mask study (SYS828 "Études expérimentales: Face Mask Detection", seed document
001) trains YOLOv4 on the Kaggle *Face Mask Detection* set: 853 photos of people "with or without
a mask", with a third class for masks worn incorrectly (renamed there ``mask``, ``no_mask`` and
``chin_diaper``). Its report stresses a "major class imbalance": in its validation report
(Fig. 12) the detector finds 499 ``mask``, 50 ``no_mask`` and 8 ``chin_diaper`` faces, and the
rare class has the lowest AP (61.9 % vs 90.1 % for ``mask``). The study does not print the
per-class totals; the annotation files of the Kaggle set it used contain 3232 ``with_mask``,
717 ``without_mask`` and 123 ``mask_weared_incorrect`` faces, the default class weights here
(79 % / 18 % / 3 %), so that class-imbalance remedies (focal loss, re-weighting) can be tried on
the same skew.

Classes: ``mask`` (nose and mouth covered), ``no_mask``, ``mask_incorrect`` (the mask sits below
the nose, or below the mouth on the chin: the study's "chin diaper"). The box of a face is the
tight ``xyxy`` box (pixel edges) of the head ellipse, forehead to chin, ears, hair and hat
excluded, as a face annotator would draw it.

Each person is a sprite drawn with OpenCV primitives in a head-centred frame (``u`` in units of
the head half-width ``a``, ``v`` in units of the half-height ``b``, tilted by the head roll):
shoulders, neck, hair, ears, head, eyes, brows, nose, mouth, an optional beard, then the mask,
glasses and hat. Scenes are painted back to front with ``OcclusionMap`` so that every labelled
head stays at least ``min_visible`` visible. Image ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolo_teach.data.backgrounds import (
    add_noise,
    color_jitter,
    image_hw,
    random_background,
)
from yolo_teach.data.core import BoxDataset, build_dataset
from yolo_teach.data.shapes import OcclusionMap, mask_box

FACE_CLASSES = ("mask", "no_mask", "mask_incorrect")
# Faces per class in the Kaggle "Face Mask Detection" annotations used by the seed study.
FACE_CLASS_COUNTS = (3232, 717, 123)

SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 125], [234, 192, 134], [224, 172, 105], [198, 134, 66],
     [170, 110, 70], [141, 85, 36], [110, 70, 45], [92, 58, 36], [255, 205, 148]],
    np.float32,
)  # fmt: skip
HAIR_COLORS = np.array(
    [[20, 15, 10], [60, 40, 25], [110, 75, 40], [200, 160, 90], [150, 60, 30], [170, 170, 170]],
    np.float32,
)  # fmt: skip
MASK_COLORS = np.array(
    [[160, 200, 230], [140, 190, 220], [245, 245, 245], [30, 30, 35], [120, 120, 130]],
    np.float32,
)  # fmt: skip

_SHIFT = 3
_ONE = 1 << _SHIFT


def _jittered(rng: np.random.Generator, palette: np.ndarray, spread: float = 12.0) -> tuple:
    """A palette colour plus a little uniform noise, as an OpenCV colour tuple."""
    color = palette[int(rng.integers(len(palette)))] + rng.uniform(-spread, spread, 3)
    return tuple(float(c) for c in np.clip(color, 0, 255))


def _shade(color: tuple, factor: float) -> tuple:
    """A darker (factor < 1) or lighter (factor > 1) version of a colour."""
    return tuple(float(min(255.0, c * factor)) for c in color)


class FacePen:
    """Draws in a head-centred frame: ``(u, v)`` maps to pixel ``centre + R (u a, v b)`` with
    ``R`` the rotation by the head roll. Silhouette primitives also go into the alpha mask."""

    def __init__(self, color: np.ndarray, alpha: np.ndarray, centre, a: float, b: float, roll):
        self.color, self.alpha = color, alpha
        self.centre = np.asarray(centre, np.float64)
        self.a, self.b, self.roll = a, b, roll
        c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        self.rotation = np.array([[c, -s], [s, c]])

    def points(self, uv) -> np.ndarray:
        """``(k, 2)`` head-frame points -> ``(k, 2)`` OpenCV fixed-point pixel coordinates."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2) * (self.a, self.b)
        xy = self.centre + uv @ self.rotation.T - 0.5  # pixel centres at integers
        return np.round(xy * _ONE).astype(np.int32)

    def ellipse(self, u, v, au, bv, color, start=0, end=360, thickness=-1, silhouette=False):
        """Ellipse centred at ``(u, v)`` with semi-axes ``(au a, bv b)`` (a sector if
        ``start``/``end`` given; degrees, clockwise from +u in image orientation)."""
        centre = tuple(int(c) for c in self.points((u, v))[0])
        axes = (max(1, int(round(au * self.a * _ONE))), max(1, int(round(bv * self.b * _ONE))))
        for canvas, value in self._canvases(color, silhouette):
            cv2.ellipse(canvas, centre, axes, self.roll, start, end, value, thickness,
                        cv2.LINE_8, _SHIFT)  # fmt: skip

    def polygon(self, uv, color, silhouette=False) -> None:
        """Filled polygon through head-frame points ``uv``."""
        pts = self.points(uv)[None]
        for canvas, value in self._canvases(color, silhouette):
            cv2.fillPoly(canvas, pts, value, cv2.LINE_8, _SHIFT)

    def line(self, uv0, uv1, color, width: float) -> None:
        """A line of ``width`` (in units of ``a``, at least 1 px) between two head-frame points."""
        p = self.points([uv0, uv1])
        thickness = max(1, int(round(width * self.a)))
        cv2.line(self.color, tuple(p[0]), tuple(p[1]), color, thickness, cv2.LINE_8, _SHIFT)

    def _canvases(self, color, silhouette):
        yield self.color, color
        if silhouette:
            yield self.alpha, 255


def _mask_outline(top: float, width: float = 1.05, steps: int = 12) -> np.ndarray:
    """Head-frame outline of a face mask whose upper edge is at ``v = top``: the lower part of
    the head ellipse (slightly widened) closed by an upper edge with a small bump for the nose."""
    theta0 = np.arcsin(np.clip(top, -0.95, 0.95))
    t = np.linspace(theta0, np.pi - theta0, steps)
    lower = np.stack([width * np.cos(t), np.sin(t)], axis=1)  # (steps, 2) right -> chin -> left
    bump = np.array([[-0.25, top - 0.02], [0.0, top - 0.08], [0.25, top - 0.02]])
    return np.concatenate([lower, bump])


def draw_person(
    pen: FacePen, rng: np.random.Generator, label: int, skin: tuple, yaw: float
) -> None:
    """Draw one person (shoulders up) with ``pen``; ``label`` indexes ``FACE_CLASSES``."""
    dark_skin = _shade(skin, 0.8)
    hair = _jittered(rng, HAIR_COLORS, 8)
    cloth = tuple(float(c) for c in rng.integers(0, 256, 3))
    hair_style = int(rng.integers(4))  # 0 bald/short, 1 short, 2 long, 3 bun

    pen.ellipse(0, 2.15, 2.1, 1.0, cloth, silhouette=True)  # shoulders
    pen.polygon([(-0.45, 0.6), (0.45, 0.6), (0.5, 1.35), (-0.5, 1.35)], dark_skin, True)  # neck
    if hair_style == 2:
        pen.polygon([(-1.1, -0.3), (1.1, -0.3), (1.2, 1.1), (-1.2, 1.1)], hair, True)
    if hair_style == 3:
        pen.ellipse(0, -1.05, 0.45, 0.25, hair, silhouette=True)
    for side in (-1, 1):  # ears, the one on the turned-away side smaller
        pen.ellipse(side * 0.98, 0.05, 0.17 * (1 - side * yaw), 0.26, skin, silhouette=True)
    pen.ellipse(0, 0, 1, 1, skin, silhouette=True)  # head
    if hair_style > 0:
        pen.ellipse(0, -0.42, 1.04, 0.64, hair, 180, 360, silhouette=True)  # hair on top

    for side in (-1, 1):  # eyes and brows, shifted by the yaw
        u = side * 0.38 + yaw
        pen.ellipse(u, -0.12, 0.17, 0.08, (245, 245, 240))
        pen.ellipse(u + 0.3 * yaw, -0.12, 0.08, 0.075, _jittered(rng, HAIR_COLORS[:3], 10))
        pen.line((u - 0.17, -0.3), (u + 0.17, -0.31), hair, 0.07)
    pen.polygon([(yaw, -0.06), (yaw - 0.13, 0.28), (yaw + 0.13, 0.28)], dark_skin)  # nose
    lips = _shade((190.0, 90.0, 90.0), rng.uniform(0.6, 1.1))
    pen.ellipse(yaw, 0.52, 0.3, 0.09, lips, 0, 180, max(1, int(0.08 * pen.a)))  # smile
    if rng.random() < 0.12:  # beard: a confuser for the mask classes
        pen.ellipse(yaw, 0.55, 0.92, 0.45, hair, 0, 180)

    if FACE_CLASSES[label] != "no_mask":
        if FACE_CLASSES[label] == "mask":
            top = rng.uniform(0.04, 0.1)  # covers the nose bridge
        elif rng.random() < 0.6:
            top = rng.uniform(0.32, 0.38)  # below the nose: nose exposed
        else:
            top = rng.uniform(0.68, 0.75)  # on the chin: nose and mouth exposed
        color = (
            _jittered(rng, MASK_COLORS, 15)
            if rng.random() < 0.8
            else tuple(float(c) for c in rng.integers(0, 256, 3))
        )
        pen.polygon(_mask_outline(top), color)
        for k in range(1, 3):  # pleats
            v = top + k * (1 - top) / 3
            pen.line((-0.7, v), (0.7, v), _shade(color, 0.85), 0.04)
        for side in (-1, 1):  # straps to the ears
            pen.line((side * 1.0, top + 0.08), (side * 0.98, -0.05), _shade(color, 0.9), 0.05)

    if rng.random() < 0.2:  # glasses (sometimes sunglasses)
        frame = _jittered(rng, HAIR_COLORS[:2], 10)
        sun = rng.random() < 0.35
        for side in (-1, 1):
            u = side * 0.38 + yaw
            if sun:
                pen.ellipse(u, -0.1, 0.26, 0.15, (25.0, 25.0, 30.0))
            pen.ellipse(u, -0.1, 0.26, 0.15, frame, thickness=max(1, int(0.06 * pen.a)))
        pen.line((yaw - 0.12, -0.12), (yaw + 0.12, -0.12), frame, 0.05)

    if rng.random() < 0.15:  # hat: a cap or a beanie, an occluder of the forehead
        hat = tuple(float(c) for c in rng.integers(0, 256, 3))
        pen.ellipse(0, -0.45, 1.08, 0.75, hat, 180, 360, silhouette=True)
        if rng.random() < 0.5:
            pen.polygon([(-1.1, -0.5), (1.35, -0.5), (1.35, -0.4), (-1.1, -0.4)], hat, True)


# Head-frame extent of a person sprite: shoulders reach u = ±2.1, v = 3.15; a bun or hat v = -1.35.
_SPRITE_UV = np.array([[-2.15, -1.4], [2.15, -1.4], [2.15, 3.2], [-2.15, 3.2]])


def sprite_window(cx, cy, a, b, roll, h, w) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the pixels a person sprite can touch, clipped to the image."""
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    xy = (_SPRITE_UV * (a, b)) @ np.array([[c, -s], [s, c]]).T  # (4, 2) rotated corners
    x0, y0 = np.floor(xy.min(axis=0) + (cx, cy)).astype(int)
    x1, y1 = np.ceil(xy.max(axis=0) + (cx, cy)).astype(int)
    return max(0, y0), max(0, x0), min(h, y1), min(w, x1)


def _face_layout(rng, h: int, w: int, crowd: bool):
    """Head half-heights ``b`` and centres for one scene, ordered far to near (back to front).

    Single scenes: 1-4 faces with head heights 15-55 % of the image. Crowds: 6-25 faces with head
    heights 5-14 %, larger lower down the image (a ground-plane perspective).
    """
    side = min(h, w)
    if crowd:
        n = int(rng.integers(6, 26))
        rel_y = np.sort(rng.uniform(0.1, 0.95, n))
        heights = (0.05 + 0.09 * rel_y) * side * rng.uniform(0.85, 1.15, n)
        b = np.maximum(heights / 2, 3.0)
        cy = rel_y * h
    else:
        n = int(rng.integers(1, 5))
        b = np.sort(rng.uniform(0.075, 0.275, n)) * side
        cy = rng.uniform(0, 1, n) * h
    cx = rng.uniform(0, 1, n) * w
    cx = np.clip(cx, b + 1, w - b - 1)  # keep each head (its circumscribed circle) inside
    cy = np.clip(cy, b + 1, h - b - 1)
    return b, cx, cy


def render_face_scene(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 256,
    crowd_prob: float = 0.25,
    class_weights=FACE_CLASS_COUNTS,
    min_visible: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one face-mask scene.

    Recipe: cluttered background → a layout of heads (a crowd with probability ``crowd_prob``)
    → each person, far to near, drawn as a sprite and accepted only if every earlier head keeps
    ``min_visible`` of its pixels → blur (crowds are often out of focus), noise, colour jitter.

    Args:
        rng: the image's generator.
        size: side length or ``(H, W)``.
        crowd_prob: probability of a crowd of 6-25 small faces.
        class_weights: relative frequency of ``mask``, ``no_mask``, ``mask_incorrect``.
    Returns:
        image ``(H, W, 3)`` uint8 RGB, boxes ``(N, 4)`` float32 xyxy (head boxes),
        labels ``(N,)`` int64 indexing ``FACE_CLASSES``.
    """
    h, w = image_hw(size)
    p = np.asarray(class_weights, np.float64)
    cdf = np.cumsum(p / p.sum())
    image = random_background(rng, (h, w))
    crowd = rng.random() < crowd_prob
    occlusion = OcclusionMap(h, w)
    boxes, labels = [], []
    for b, cx, cy in zip(*_face_layout(rng, h, w, crowd)):
        a = b / rng.uniform(1.2, 1.4)
        roll = rng.uniform(-25, 25)
        yaw = rng.uniform(-0.2, 0.2)
        label = min(int(np.searchsorted(cdf, rng.random(), side="right")), len(p) - 1)
        y0, x0, y1, x1 = sprite_window(cx, cy, a, b, roll, h, w)
        patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
        head = np.zeros((y1 - y0, x1 - x0), np.uint8)
        centre = (cx - x0, cy - y0)
        draw_person(FacePen(patch, alpha, centre, a, b, roll), rng, label,
                    _jittered(rng, SKIN_TONES), yaw)  # fmt: skip
        FacePen(head, head, centre, a, b, roll).ellipse(0, 0, 1, 1, 1)
        cover, own = alpha > 0, head > 0
        if not own.any() or not occlusion.try_paint(y0, x0, cover, own, min_visible):
            continue
        window = image[y0:y1, x0:x1]  # (h', w', 3) view
        window[cover] = patch[cover]
        boxes.append(mask_box(own, y0, x0))
        labels.append(label)

    if (crowd and rng.random() < 0.5) or rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    if rng.random() < 0.5:
        image = add_noise(image, rng, rng.uniform(2, 8))
    image = color_jitter(image, rng, brightness=0.25, contrast=0.2, saturation=0.2, hue=0.02)
    boxes_arr = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
    return image, boxes_arr, np.asarray(labels, np.int64)


def make_face_masks(
    n: int,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    crowd_prob: float = 0.25,
    class_weights=None,
    min_visible: float = 0.6,
    *,
    start: int = 0,
    progress: bool = False,
) -> BoxDataset:
    """``n`` face-mask scenes as a ``BoxDataset`` (image ``i`` drawn with ``image_rng(seed, i)``).

    Args:
        n: number of images.
        size: side length or ``(H, W)``.
        seed: dataset seed.
        crowd_prob: probability that an image is a crowd of small faces.
        class_weights: relative frequency of ``mask``, ``no_mask``, ``mask_incorrect``; None uses
            the Kaggle set's counts ``FACE_CLASS_COUNTS`` (3232 : 717 : 123).
        min_visible: the smallest visible fraction of a labelled head.
        start: index of the first image (see ``build_dataset``).
        progress: show a progress bar.
    Returns:
        a ``BoxDataset`` with ``class_names = ["mask", "no_mask", "mask_incorrect"]``.
    """
    weights = FACE_CLASS_COUNTS if class_weights is None else class_weights
    if len(weights) != len(FACE_CLASSES) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"class_weights must be {len(FACE_CLASSES)} non-negative numbers")

    def render(rng: np.random.Generator):
        return render_face_scene(rng, size, crowd_prob, weights, min_visible)

    h, w = image_hw(size)
    meta = {"generator": "face_masks", "seed": seed, "size": (h, w)}
    return build_dataset(render, n, seed, FACE_CLASSES, start=start, progress=progress,
                         desc=f"face_masks {w}x{h} px", meta=meta)  # fmt: skip
