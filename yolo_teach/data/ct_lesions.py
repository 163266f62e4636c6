"""Synthetic CT slices with lesions, in Hounsfield units, labelled the DeepLesion way.

DeepLesion (Yan et al., "DeepLesion: automated mining of large-scale lesion annotations and
universal lesion detection with deep learning", J. Med. Imaging 5(3), 2018) holds 32,735 lesions
on 32,120 axial CT slices of 512 × 512 px, each lesion boxed as ``(x1, y1, x2, y2)`` pixels and
typed bone, abdomen, mediastinum, liver, lung, kidney, soft tissue, pelvis or other. The seed
paper of the course ("Evaluating lightweight object detection models for lesion detection",
seed 000, Sec. 4.1-4.2) fine-tunes YOLOv5 on it after converting these boxes to normalised YOLO
``(xc, yc, w, h)`` at 512 px (``yolo_teach.boxes.xyxy_to_yolo`` does that conversion here).

Real DeepLesion slices cannot ship with a course, so each slice is a body phantom in HU
(``ct_phantom.py``: organs, tissue densities, the windowing) with lesions of six DeepLesion types
added, each told apart by where it sits, its density and its shape: ``lung`` nodules
(soft-tissue density in black lung), ``liver`` lesions (hypo- or hyperdense), ``kidney``
cysts/masses, ``bone`` lesions in the vertebral body (lytic or sclerotic), ``mediastinum`` lymph
nodes (oval, in mediastinal fat) and ``soft_tissue`` masses in the body wall; then a little blur
(partial volume) and correlated noise. Boxes are tight around the drawn lesion (pixel edges, as
everywhere in the package).

The images a detector sees are windowed (``window``) to uint8; the HU slices stay in
``meta["hu"]`` so that the windowing itself can be taught. The phantom's names (``window``,
``WINDOWS``, ``window_rgb``, ``load_example_ct``, ...) are re-exported here.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolo_teach.data.backgrounds import image_hw
from yolo_teach.data.core import BoxDataset, build_dataset
from yolo_teach.data.ct_phantom import (
    AIR,
    BLOOD,
    BOWEL,
    CANCELLOUS,
    CORTICAL,
    CSF,
    FAT,
    GAS,
    HU_MAX,
    HU_MIN,
    KIDNEY,
    LIVER,
    LUNG,
    MUSCLE,
    SINUS,
    SPLEEN,
    TABLE,
    TISSUE_HU,
    TISSUE_HU_JITTER,
    WINDOWS,
    BodyFrame,
    draw_phantom,
    load_example_ct,
    phantom_hu,
    window,
    window_rgb,
)

__all__ = [
    # lesions, this module
    "LESION_CLASSES", "LESION_STYLE", "LEVEL_LESIONS", "lesion_outline", "place_lesion",
    "render_ct_slice", "make_ct_lesions",
    # the phantom and its windowing, re-exported from ct_phantom (their home before the split)
    "WINDOWS", "window", "window_rgb", "load_example_ct", "BodyFrame", "draw_phantom",
    "phantom_hu", "TISSUE_HU", "TISSUE_HU_JITTER", "HU_MIN", "HU_MAX",
    "AIR", "FAT", "MUSCLE", "LUNG", "BLOOD", "LIVER", "SPLEEN", "KIDNEY", "SINUS", "CORTICAL",
    "CANCELLOUS", "CSF", "BOWEL", "GAS", "TABLE",
]  # fmt: skip

LESION_CLASSES = ("lung", "liver", "kidney", "bone", "mediastinum", "soft_tissue")
LEVEL_LESIONS = {
    "thorax": ("lung", "mediastinum", "bone", "soft_tissue"),
    "abdomen": ("liver", "kidney", "bone", "soft_tissue"),
}


def lesion_outline(rng: np.random.Generator, radius: float, lobulation: float) -> np.ndarray:
    """``(24, 2)`` outline of a lesion around the origin: an ellipse of mean radius ``radius``
    (aspect 0.65-1, random angle) with low-frequency radial bumps of relative size
    ``lobulation`` (0: smooth nodule or cyst, 0.2: lobulated mass)."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    r = np.ones_like(t)
    for k in (2, 3, 5):
        r += lobulation * rng.uniform(-1, 1) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) / k
    aspect, phi = rng.uniform(0.65, 1.0), rng.uniform(0, np.pi)
    xy = np.stack([r * np.cos(t), aspect * r * np.sin(t)], axis=1) * radius
    c, s = np.cos(phi), np.sin(phi)
    return xy @ np.array([[c, s], [-s, c]])


# Per lesion type: radius range (mm), HU choices [(probability, low, high)], lobulation.
LESION_STYLE = {
    "lung": ((2.5, 15.0), [(0.85, 15, 60), (0.15, -400, -200)], 0.25),
    "liver": ((4.0, 25.0), [(0.55, 15, 45), (0.3, 0, 15), (0.15, 100, 120)], 0.12),
    "kidney": ((4.0, 18.0), [(0.6, -5, 15), (0.4, 40, 60)], 0.08),
    "bone": ((3.0, 12.0), [(0.7, 40, 120), (0.3, 700, 1100)], 0.15),
    "mediastinum": ((5.0, 15.0), [(1.0, 30, 50)], 0.05),
    "soft_tissue": ((6.0, 25.0), [(1.0, 25, 55)], 0.2),
}


def _lesion_hu(rng, choices) -> float:
    """Sample a lesion density from ``[(probability, low, high), ...]``."""
    p = np.array([c[0] for c in choices])
    _, lo, hi = choices[int(np.searchsorted(np.cumsum(p / p.sum()), rng.random()))]
    return float(rng.uniform(lo, hi))


def place_lesion(
    rng: np.random.Generator, kind: str, region: np.ndarray, taken: np.ndarray, spacing: float
) -> np.ndarray | None:
    """Draw one lesion mask of type ``kind`` inside ``region`` (clipped to it), away from the
    lesions in ``taken``; None if 12 tries find no place with >= 70 % of the lesion inside."""
    (r_lo, r_hi), _, lobulation = LESION_STYLE[kind]
    ys, xs = np.nonzero(region & ~taken)
    if len(ys) == 0:
        return None
    h, w = region.shape
    for _ in range(12):
        radius = max(1.5, np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))) / spacing)
        idx = int(rng.integers(len(ys)))
        outline = lesion_outline(rng, radius, lobulation) + (xs[idx] + 0.5, ys[idx] + 0.5)
        drawn = np.zeros((h, w), np.uint8)
        pts = np.round((outline - 0.5) * 8).astype(np.int32)[None]
        cv2.fillPoly(drawn, pts, 1, cv2.LINE_8, 3)
        drawn = drawn.astype(bool)
        inside = drawn & region
        if inside.sum() >= max(4, 0.7 * drawn.sum()) and not (drawn & taken).any():
            return inside
    return None


def render_ct_slice(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    level: str | None = None,
    max_lesions: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One synthetic axial CT slice in HU with its lesion boxes.

    Recipe: tissue label map (``draw_phantom``) → HU per tissue (``phantom_hu``: per-slice
    jitter, a soft texture in lungs and liver) → 1..``max_lesions`` lesions of the types found
    at this level → Gaussian blur (partial volume) → correlated noise (σ ≈ 8-20 HU) → int16 in
    [-1024, 3071].

    Args:
        rng: the slice's generator.
        size: side length or ``(H, W)`` (DeepLesion slices are 512 × 512).
        level: ``"thorax"``, ``"abdomen"`` or None (random).
        max_lesions: the most lesions per slice (DeepLesion has mostly one).
    Returns:
        hu ``(H, W)`` int16, boxes ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` pixels, labels
        ``(N,)`` int64 indexing ``LESION_CLASSES``, and ``{"level", "pixel_spacing_mm"}``.
    """
    h, w = image_hw(size)
    level = level or ("thorax" if rng.random() < 0.5 else "abdomen")
    labels, regions, spacing = draw_phantom(rng, h, w, level)
    hu = phantom_hu(rng, labels)  # (H, W) float32

    boxes, classes = [], []
    taken = np.zeros((h, w), bool)
    n_lesions = 1 + int(rng.random() < 0.35) + int(rng.random() < 0.1)
    for _ in range(min(n_lesions, max_lesions)):
        kinds = [k for k in LEVEL_LESIONS[level] if regions[k].any()]
        kind = kinds[int(rng.integers(len(kinds)))]
        lesion = place_lesion(rng, kind, regions[kind], taken, spacing)
        if lesion is None:
            continue
        hu[lesion] = _lesion_hu(rng, LESION_STYLE[kind][1])
        taken |= cv2.dilate(lesion.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        rows, cols = np.flatnonzero(lesion.any(1)), np.flatnonzero(lesion.any(0))
        boxes.append(np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32))
        classes.append(LESION_CLASSES.index(kind))

    hu = cv2.GaussianBlur(hu, (0, 0), 0.6 * max(1.0, min(h, w) / 512))
    noise = rng.normal(0, 1, (h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.8)
    noise *= np.float32(rng.uniform(8, 20) / max(float(noise.std()), 1e-6))
    hu = np.clip(np.rint(hu + noise), HU_MIN, HU_MAX).astype(np.int16)
    boxes_arr = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
    info = {"level": level, "pixel_spacing_mm": float(spacing)}
    return hu, boxes_arr, np.asarray(classes, np.int64), info


def make_ct_lesions(
    n: int,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    windows=("soft_tissue",),
    max_lesions: int = 3,
    *,
    start: int = 0,
    progress: bool = False,
) -> BoxDataset:
    """``n`` synthetic CT slices with lesion boxes, DeepLesion style.

    Args:
        n: number of slices.
        size: side length or ``(H, W)``; 512 like DeepLesion.
        seed: dataset seed (slice ``i`` uses ``image_rng(seed, i)``).
        windows: one ``WINDOWS`` name (grey image) or three (one per channel).
        max_lesions: the most lesions per slice.
        start: index of the first slice (see ``build_dataset``).
        progress: show a progress bar.
    Returns:
        a ``BoxDataset`` of windowed ``(H, W, 3)`` uint8 images with ``class_names =
        LESION_CLASSES``; ``meta["hu"]`` holds the int16 HU slices, ``meta["level"]`` the
        thorax/abdomen level and ``meta["pixel_spacing_mm"]`` the spacing of each slice.
    """

    def render(rng: np.random.Generator):
        hu, boxes, labels, info = render_ct_slice(rng, size, max_lesions=max_lesions)
        return window_rgb(hu, windows), boxes, labels, {"hu": hu, **info}

    h, w = image_hw(size)
    meta = {
        "generator": "ct_lesions",
        "seed": seed,
        "windows": tuple([windows] if isinstance(windows, str) else windows),
    }
    return build_dataset(render, n, seed, LESION_CLASSES, start=start, progress=progress,
                         desc=f"ct_lesions {w}x{h} px", meta=meta)  # fmt: skip
