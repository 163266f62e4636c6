"""Photometric transforms: HSV jitter, brightness/exposure, blur (seed 001, YOLOv4 §2.2)."""

from __future__ import annotations

import cv2
import numpy as np

from yolo_teach.data.augment.core import Sample, _as_boxes, _as_labels


def _apply_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return cv2.LUT(image, np.clip(np.round(lut), 0, 255).astype(np.uint8))


def hsv_jitter(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    hgain: float = 0.015,
    sgain: float = 0.7,
    vgain: float = 0.4,
) -> Sample:
    """Random hue shift and saturation / value gains in HSV space (YOLOv4 §2.2, photometric).

    Draws :math:`\\Delta h \\sim U(-h_g, h_g)` (a fraction of the colour circle) and gains
    :math:`g_s \\sim 1 + U(-s_g, s_g)`, :math:`g_v \\sim 1 + U(-v_g, v_g)`, then
    :math:`h' = (h + \\Delta h) \\bmod 1,\\; s' = g_s s,\\; v' = g_v v` (clipped).

    Defaults are YOLOv5's ``hsv_h, hsv_s, hsv_v``; darknet's ``hue=.1 saturation=1.5
    exposure=1.5`` (seed 001 cfg) is roughly ``hgain=0.1, sgain=0.5, vgain=0.5``.

    # NOTE(paper): YOLOv5 multiplies the hue channel by its gain, which leaves red (h = 0) alone
    # and moves blue (h = 120 deg) the most; we add a shift as darknet does, so every hue
    # rotates by the same angle.
    """
    dh, ds, dv = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain])
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # OpenCV uint8 hue is in [0, 180)
    x = np.arange(256, dtype=np.float64)
    lut_h = np.mod(np.round(x + dh * 180), 180)
    hue = _apply_lut(hsv[..., 0], lut_h)
    sat = _apply_lut(hsv[..., 1], x * (1 + ds))
    val = _apply_lut(hsv[..., 2], x * (1 + dv))
    out = cv2.cvtColor(np.stack([hue, sat, val], -1), cv2.COLOR_HSV2RGB)
    return out, _as_boxes(boxes).copy(), _as_labels(labels).copy()


def brightness_exposure(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.4,
    exposure: float = 0.5,
) -> Sample:
    """Random exposure gain and brightness offset: :math:`I' = \\text{clip}(g I + 255 b)`.

    :math:`g \\sim 1 + U(-\\text{exposure}, \\text{exposure})` scales every intensity like a longer
    or shorter exposure; :math:`b \\sim U(-\\text{brightness}, \\text{brightness})` shifts them.
    Defaults follow the face-mask study (seed 001, Data Augmentation table): exposure ±50 %,
    brightness ±40 %. (That study used Roboflow, whose exact formulas are not published; this
    gain/offset reading is ours.)
    """
    g = 1 + rng.uniform(-exposure, exposure)
    b = rng.uniform(-brightness, brightness)
    x = np.arange(256, dtype=np.float64)
    out = _apply_lut(image, g * x + 255 * b)
    return out, _as_boxes(boxes).copy(), _as_labels(labels).copy()


def blur(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    max_sigma: float = 2.0,
) -> Sample:
    """Gaussian blur with :math:`\\sigma \\sim U(0, \\text{max\\_sigma})` pixels.

    Face-mask study (seed 001): "Blur (up to 2px)"; YOLOv4 §4.2 tests (bilateral) blurring as a
    freebie for the classifier.
    A sigma below 0.25 px leaves the image unchanged (the kernel would be a single tap).
    """
    sigma = rng.uniform(0, max_sigma)
    out = image.copy() if sigma < 0.25 else cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    return out, _as_boxes(boxes).copy(), _as_labels(labels).copy()


