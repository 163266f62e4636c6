"""Synthetic shape scenes: the course's default detection data set, made offline in milliseconds.

Each scene is a cluttered background (``backgrounds.py``) with 1-10 labelled shapes (circle,
square, triangle, star, ring, cross, hexagon) of random size, rotation and colour, plus unlabelled
distractors that look almost like a class (ellipses, rectangles, arcs, lines). Shapes may overlap
but every labelled one stays at least ``min_visible`` visible, checked pixel-exactly with an
ownership map (painter's algorithm), so the set teaches the same difficulties as VOC/COCO:
occlusion, clutter, hard negatives, and object sizes across the COCO size buckets (Lin et al.,
"Microsoft COCO", 2014: small < 32², medium < 96², large otherwise, in px² of box area).

Boxes are ``xyxy`` in pixel-edge coordinates: a pixel at column ``c`` spans ``[c, c + 1)``, so
a box is tight when ``x1`` is the first drawn column and ``x2`` the last drawn column + 1. Boxes
are tight around the *full* shape, occluded parts included (the VOC/COCO "amodal" convention).

Image ``i`` of ``make_shapes(n, seed=s)`` depends only on ``(s, i)`` (``image_rng``).
"""

from __future__ import annotations

import cv2
import numpy as np

from yolo_teach.data.backgrounds import (
    BACKGROUND_KINDS,
    add_noise,
    color_jitter,
    image_hw,
    random_background,
)
from yolo_teach.data.core import BoxDataset, build_dataset

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon")
DISTRACTORS = ("ellipse", "rectangle", "arc", "line")
# Options of make_shapes for an easy variant: 1-3 large shapes on smooth gradients, no
# distractors. For models that learn slowly from scratch (YOLOv1's fully connected head); the
# default scenes (1-10 shapes of 6-60 % of the side, distractors, photos) are the benchmark's.
EASY_SHAPES = {"max_objects": 3, "size_range": (0.2, 0.5), "max_distractors": 0,
               "background_kinds": ("gradient",)}
# Easier still, for the live training cells of notebooks 04 and 05 (a visible mAP in ~15 s on
# two cores): one large shape per image, of three classes.
ONE_SHAPE = {**EASY_SHAPES, "max_objects": 1, "classes": ("circle", "square", "triangle")}
# A small-object variant of the default scenes (the improved-YOLOX ablation, seed 004): 3-15
# shapes of 4-30 % of the side, distractors and photos kept. At 128 px, 93 % of the boxes are
# COCO-small (area < 32^2 px^2; box side median 14.5 px, 10th-90th percentile 7-31 px), against
# 66 % in the default scenes (measured on 200 images).
SMALL_SHAPES = {"min_objects": 3, "max_objects": 15, "size_range": (0.04, 0.3)}

_SHIFT = 2  # fixed-point bits for sub-pixel vertices in cv2.fillPoly / cv2.circle
_ONE = 1 << _SHIFT


class OcclusionMap:
    """Which labelled object each pixel shows, for scenes drawn back to front.

    ``owner[y, x]`` is the id of the labelled object painted last at that pixel (-1: none).
    ``full[k]`` counts the pixels of object ``k`` and ``visible[k]`` those still showing, so the
    visible fraction of ``k`` is ``visible[k] / full[k]``. A new sprite is accepted only if no
    earlier object drops below ``min_visible``; this is rejection sampling of occlusion.
    """

    def __init__(self, height: int, width: int) -> None:
        self.owner = np.full((height, width), -1, np.int16)  # (H, W)
        self.full = np.zeros(0, np.int64)
        self.visible = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.full)

    def try_paint(
        self,
        y0: int,
        x0: int,
        cover: np.ndarray,
        own: np.ndarray | None,
        min_visible: float,
    ) -> bool:
        """Paint a sprite whose patch starts at ``(y0, x0)`` unless it would leave an earlier
        object that it overlaps less than ``min_visible`` visible.

        Args:
            cover: ``(h, w)`` bool, the pixels the sprite hides (its whole opaque area).
            own: ``(h, w)`` bool, the pixels of the new labelled object (a subset of ``cover``),
                or None for an unlabelled occluder.
        Returns:
            True if painted (and, when ``own`` is given, the object gets the next id).
        """
        h, w = cover.shape
        window = self.owner[y0 : y0 + h, x0 : x0 + w]  # (h, w) view
        lost = np.bincount(window[cover].astype(np.int64) + 1, minlength=len(self.full) + 1)
        visible = self.visible - lost[1:]
        if np.any((lost[1:] > 0) & (visible < min_visible * self.full)):
            return False
        window[cover] = -1
        if own is not None:
            window[own] = len(self.full)
            area = np.count_nonzero(own)
            self.full = np.append(self.full, area)
            visible = np.append(visible, area)
        self.visible = visible
        return True

    def visible_fraction(self) -> np.ndarray:
        """``(N,)`` float64: the visible fraction of each labelled object."""
        return self.visible / np.maximum(self.full, 1).astype(np.float64)


def mask_box(mask: np.ndarray, y0: int, x0: int) -> np.ndarray | None:
    """The tight ``xyxy`` box (pixel edges) of the True pixels of a patch placed at ``(y0, x0)``;
    None if the patch is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)


def regular_polygon(k: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """``(k, 2)`` vertices of a regular ``k``-gon with circumradius ``radius``."""
    t = phase + 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def star_polygon(points: int = 5, inner: float = 0.45) -> np.ndarray:
    """``(2 points, 2)`` vertices of a star: outer radius 1, inner radius ``inner``."""
    radii = np.tile([1.0, inner], points)
    t = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    return radii[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)


def cross_polygon(half_width: float = 0.3) -> np.ndarray:
    """``(12, 2)`` vertices of a plus sign with arms of half-width ``half_width``, scaled so that
    its circumradius is 1."""
    a = half_width
    pts = np.array(
        [[a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1],
         [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a], [-a, -1]],
        np.float64,
    )  # fmt: skip
    return pts / np.hypot(1.0, a)


_REGULAR = {
    "square": regular_polygon(4, phase=np.pi / 4),
    "triangle": regular_polygon(3, phase=-np.pi / 2),
    "hexagon": regular_polygon(6),
}


def unit_outline(name: str, rng: np.random.Generator) -> np.ndarray | None:
    """The outline of a polygonal class with circumradius 1, randomly rotated; None for the round
    classes (circle, ring) that are drawn with ``cv2.circle``."""
    if name in _REGULAR:
        pts = _REGULAR[name]
    elif name == "star":
        pts = star_polygon(5, inner=rng.uniform(0.38, 0.5))
    elif name == "cross":
        pts = cross_polygon(rng.uniform(0.22, 0.36))
    elif name in ("circle", "ring"):
        return None
    else:
        raise ValueError(f"unknown shape class {name!r}; expected one of {SHAPE_CLASSES}")
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    return pts @ np.array([[c, s], [-s, c]])  # (k, 2) rotated by theta


def _fixed_point(xy: np.ndarray) -> np.ndarray:
    """Continuous pixel-edge coordinates -> OpenCV fixed-point (pixel centres at integers)."""
    return np.round((xy - 0.5) * _ONE).astype(np.int32)


def rasterize_shape(
    name: str, radius: float, rng: np.random.Generator, outline: int = 0
) -> np.ndarray:
    """Draw one shape centred in a ``(2r+2, 2r+2)`` uint8 patch.

    Pixel values: 0 outside, 1 fill, 2 an optional outline stroke of ``outline`` px drawn on the
    shape's edge (inside the patch, so the box stays tight around everything drawn).
    """
    side = int(np.ceil(2 * radius)) + 2
    patch = np.zeros((side, side), np.uint8)
    centre = np.array([side / 2, side / 2])
    outline_pts = unit_outline(name, rng)
    if outline_pts is None:
        c = tuple(int(v) for v in _fixed_point(centre))
        r = int(round(radius * _ONE))
        cv2.circle(patch, c, r, 1, -1, cv2.LINE_8, _SHIFT)
        if name == "ring":
            inner = int(round(radius * rng.uniform(0.45, 0.7) * _ONE))
            cv2.circle(patch, c, inner, 0, -1, cv2.LINE_8, _SHIFT)
            if outline:
                cv2.circle(patch, c, inner, 2, outline, cv2.LINE_8, _SHIFT)
        if outline:
            cv2.circle(patch, c, r - (outline * _ONE) // 2, 2, outline, cv2.LINE_8, _SHIFT)
        return patch
    pts = _fixed_point(centre + radius * outline_pts)[None]  # (1, k, 2)
    cv2.fillPoly(patch, pts, 1, cv2.LINE_8, _SHIFT)
    if outline:
        cv2.polylines(patch, pts, True, 2, outline, cv2.LINE_8, _SHIFT)
    return patch


def contrasting_color(
    rng: np.random.Generator, local: np.ndarray, min_distance: float, tries: int = 8
) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` (Euclidean, grey levels) from ``local``.

    Rejection sampling; after ``tries`` misses the farthest candidate is returned. The threshold
    is deliberately modest so that some shapes are hard to see, as in real photos.
    """
    best, best_d = None, -1.0
    for _ in range(tries):
        color = rng.integers(0, 256, 3).astype(np.float32)
        d = float(np.sqrt(np.dot(color - local, color - local)))
        if d >= min_distance:
            return color
        if d > best_d:
            best, best_d = color, d
    return best


def draw_distractor(image: np.ndarray, rng: np.random.Generator, size_range) -> None:
    """Draw one unlabelled hard negative in place: a thin ellipse, a long rectangle, an arc of a
    ring, or a line, sized like the objects."""
    h, w = image.shape[:2]
    side = min(h, w)
    kind = DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]
    r = 0.5 * side * np.exp(rng.uniform(np.log(size_range[0]), np.log(size_range[1])))
    cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    angle = float(rng.uniform(0, 180))
    if kind == "ellipse":
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.25, 0.6))))
        cv2.ellipse(image, (cx, cy), axes, angle, 0, 360, color, -1, cv2.LINE_8)
    elif kind == "rectangle":
        box = ((float(cx), float(cy)), (2 * r, 2 * r * rng.uniform(0.2, 0.5)), angle)
        cv2.fillPoly(image, [cv2.boxPoints(box).astype(np.int32)], color, cv2.LINE_8)
    elif kind == "arc":
        span = float(rng.uniform(60, 250))
        thickness = max(1, int(r * rng.uniform(0.15, 0.4)))
        cv2.ellipse(image, (cx, cy), (max(1, int(r)),) * 2, angle, 0, span, color, thickness)
    else:
        dx, dy = r * np.cos(np.radians(angle)), r * np.sin(np.radians(angle))
        p0, p1 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
        cv2.line(image, p0, p1, color, max(1, int(rng.uniform(0.01, 0.05) * side)), cv2.LINE_8)


def _class_probabilities(classes, class_weights) -> np.ndarray:
    """Normalised cumulative class probabilities (for ``searchsorted`` sampling)."""
    if class_weights is None:
        p = np.ones(len(classes))
    else:
        p = np.asarray(class_weights, np.float64)
        if p.shape != (len(classes),) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"class_weights must be {len(classes)} non-negative numbers")
    return np.cumsum(p / p.sum())


def _paint_shape(
    image: np.ndarray,
    patch: np.ndarray,
    y0: int,
    x0: int,
    rng: np.random.Generator,
    min_contrast: float,
) -> None:
    """Composite a rasterised shape into ``image`` in place: a colour that contrasts with what
    is underneath, sometimes semi-transparent (alpha 0.7-1), and the outline in a second colour."""
    h, w = patch.shape
    window = image[y0 : y0 + h, x0 : x0 + w]  # (h, w, 3) view
    fill = patch > 0
    local = np.array(cv2.mean(window, mask=fill.view(np.uint8))[:3], np.float32)
    color = contrasting_color(rng, local, min_contrast).astype(np.uint8)
    if rng.random() < 0.3:  # semi-transparent: the background shows through
        alpha = rng.uniform(0.7, 0.95)
        flat = np.empty_like(window)
        flat[:] = color
        color = cv2.addWeighted(flat, alpha, window, 1.0 - alpha, 0.0)  # (h, w, 3)
        window[fill] = color[fill]
    else:
        window[fill] = color
    stroke = patch == 2
    if stroke.any():
        window[stroke] = rng.integers(0, 256, 3).astype(np.uint8)


def render_shapes_scene(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 128,
    classes: tuple[str, ...] = SHAPE_CLASSES,
    class_weights=None,
    min_objects: int = 1,
    max_objects: int = 10,
    size_range: tuple[float, float] = (0.06, 0.6),
    min_visible: float = 0.6,
    max_distractors: int = 3,
    min_contrast: float = 60.0,
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one shape scene.

    Recipe: cluttered background → 0..``max_distractors`` unlabelled hard negatives → objects
    back to front, each a class drawn with ``class_weights``, a circumscribed diameter
    ``d = f · min(H, W)`` with ``f`` log-uniform in ``size_range`` (so small, medium and large
    boxes all occur), a random rotation and a contrasting colour, placed fully inside the image
    and accepted only if every object keeps ``min_visible`` of its pixels visible → mild blur,
    sensor noise and a final colour jitter over everything.

    Args:
        rng: the image's generator (``image_rng(seed, i)`` in ``make_shapes``).
        size: side length or ``(H, W)``.
        classes: class names (a subset/reordering of ``SHAPE_CLASSES``); labels index this.
    Returns:
        image ``(H, W, 3)`` uint8 RGB, boxes ``(N, 4)`` float32 xyxy, labels ``(N,)`` int64.
    """
    h, w = image_hw(size)
    cdf = _class_probabilities(classes, class_weights)
    image = random_background(rng, (h, w), background_kinds)
    for _ in range(int(rng.integers(0, max_distractors + 1))):
        draw_distractor(image, rng, size_range)

    occlusion = OcclusionMap(h, w)
    boxes, labels = [], []
    n_target = int(rng.integers(min_objects, max_objects + 1))
    log_lo, log_hi = np.log(size_range[0]), np.log(size_range[1])
    for _ in range(n_target):
        label = min(int(np.searchsorted(cdf, rng.random(), side="right")), len(classes) - 1)
        radius = max(1.5, 0.5 * min(h, w) * np.exp(rng.uniform(log_lo, log_hi)))
        placed = False
        tries = 24 if len(boxes) < min_objects else 8
        for attempt in range(tries):
            if attempt >= 4:
                radius = max(radius * 0.8, 0.5 * min(h, w) * size_range[0], 1.5)
            outline = int(rng.integers(1, 3)) if rng.random() < 0.25 and radius > 6 else 0
            patch = rasterize_shape(classes[label], radius, rng, outline)
            ph, pw = patch.shape
            if ph > h or pw > w:
                continue
            y0 = int(rng.integers(0, h - ph + 1))
            x0 = int(rng.integers(0, w - pw + 1))
            fill = patch > 0
            if fill.any() and occlusion.try_paint(y0, x0, fill, fill, min_visible):
                placed = True
                break
        if not placed:
            continue
        _paint_shape(image, patch, y0, x0, rng, min_contrast)
        boxes.append(mask_box(fill, y0, x0))
        labels.append(label)

    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    if rng.random() < 0.5:
        image = add_noise(image, rng, rng.uniform(2, 10))
    image = color_jitter(image, rng, brightness=0.15, contrast=0.15, saturation=0.2, hue=0.02)
    boxes_arr = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
    return image, boxes_arr, np.asarray(labels, np.int64)


def make_shapes(
    n: int,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    classes: tuple[str, ...] = SHAPE_CLASSES,
    class_weights=None,
    min_objects: int = 1,
    max_objects: int = 10,
    *,
    start: int = 0,
    progress: bool = False,
    **scene_kwargs,
) -> BoxDataset:
    """``n`` shape scenes as a ``BoxDataset`` (image ``i`` drawn with ``image_rng(seed, i)``).

    Args:
        n: number of images.
        size: side length or ``(H, W)``.
        seed: dataset seed.
        classes: class names, a subset or reordering of ``SHAPE_CLASSES``.
        class_weights: relative frequency of each class (None: balanced).
        min_objects, max_objects: objects per image, uniform in this range (fewer only if an
            object cannot be placed without hiding another one; never fewer than ``min_objects``
            in practice).
        start: index of the first image (see ``build_dataset``).
        progress: show a progress bar.
        scene_kwargs: passed to ``render_shapes_scene`` (``size_range``, ``min_visible``,
            ``max_distractors``, ``min_contrast``, ``background_kinds``).
    Returns:
        a ``BoxDataset`` with ``class_names = list(classes)``.
    """

    def render(rng: np.random.Generator):
        return render_shapes_scene(rng, size, classes, class_weights, min_objects, max_objects,
                                   **scene_kwargs)  # fmt: skip

    h, w = image_hw(size)
    meta = {"generator": "shapes", "seed": seed, "size": (h, w)}
    return build_dataset(render, n, seed, classes, start=start, progress=progress,
                         desc=f"shapes {w}x{h} px", meta=meta)  # fmt: skip
