"""A CT body phantom in Hounsfield units, and the windowing that turns HU into grey levels.

Real CT slices (DeepLesion's, say) cannot ship with a course, so ``ct_lesions.py`` draws its
slices on this phantom:

* a tissue label map drawn with OpenCV (body outline, subcutaneous fat, muscle wall, lungs,
  heart, aorta, liver, spleen, kidneys, bowel with gas, vertebra with spinal canal, ribs) at a
  thorax or an abdomen level, every organ's position and size jittered per slice;
* Hounsfield units per tissue (air -1000, lung ≈ -850, fat ≈ -100, kidney ≈ 30, muscle/soft
  tissue ≈ 40-50, liver ≈ 60, cancellous bone ≈ 220, cortical bone ≈ 700-1000) with a soft
  texture in lungs and liver.

A detector sees windowed slices: ``window`` maps HU to uint8 with a radiology reading window
(``WINDOWS``), ``window_rgb`` makes a 3-channel image of one or three windows.
``load_example_ct`` reads the one real CT slice that pydicom ships offline.
"""

from __future__ import annotations

import cv2
import numpy as np

# Window presets (level, width) in HU, the usual radiology reading windows.
WINDOWS = {
    "lung": (-600.0, 1500.0),
    "soft_tissue": (40.0, 400.0),
    "abdomen": (40.0, 400.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "liver": (60.0, 150.0),
}

# Tissue labels of the phantom and their mean HU (jittered per slice).
AIR, FAT, MUSCLE, LUNG, BLOOD, LIVER, SPLEEN, KIDNEY, SINUS = range(9)
CORTICAL, CANCELLOUS, CSF, BOWEL, GAS, TABLE = range(9, 15)
TISSUE_HU = np.array(
    [-1000, -100, 45, -850, 40, 60, 50, 30, -60, 800, 220, 10, 15, -950, -300], np.float32
)
TISSUE_HU_JITTER = np.array([0, 10, 6, 30, 8, 6, 6, 5, 10, 150, 30, 5, 8, 30, 50], np.float32)
HU_MIN, HU_MAX = -1024, 3071  # the 12-bit range of CT scanners (int16 storage)


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    r"""Map Hounsfield units to grey levels with a linear window (DICOM PS3.3 C.11.2.1.2.1).

    The DICOM "LINEAR" VOI LUT function with centre ``c = level`` and width ``w``:

    .. math::
        y = \begin{cases} 0 & x \le c - 0.5 - \frac{w-1}{2} \\
                            255 & x > c - 0.5 + \frac{w-1}{2} \\
                            \left(\frac{x - (c - 0.5)}{w - 1} + 0.5\right) 255 & \text{else}
            \end{cases}

    i.e. ``clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1) · 255``, rounded to the nearest integer.
    It differs from the textbook ``255 · clip((x - (L - W/2)) / W, 0, 1)`` by at most
    ``255 / (w - 1)`` grey levels (less than one for any window wider than 256 HU).

    Args:
        hu: array of HU values (any shape, any real dtype).
        level, width: the window centre and width in HU (e.g. ``WINDOWS["lung"]``).
    Returns:
        uint8 array of the same shape.
    """
    if width < 1:
        raise ValueError(f"window width must be >= 1 HU, got {width}")
    x = np.asarray(hu, np.float32)
    y = (x - np.float32(level - 0.5)) / np.float32(width - 1) + np.float32(0.5)
    return np.rint(np.clip(y, 0, 1) * np.float32(255)).astype(np.uint8)


def window_rgb(hu: np.ndarray, windows=("soft_tissue",)) -> np.ndarray:
    """A 3-channel uint8 image of an HU slice: one named window repeated in R, G and B, or three
    windows (e.g. ``("lung", "soft_tissue", "bone")``), one per channel.

    Args:
        hu: ``(H, W)`` HU slice.
        windows: names of ``WINDOWS`` (1 or 3).
    Returns:
        ``(H, W, 3)`` uint8.
    """
    if isinstance(windows, str):
        windows = (windows,)
    if len(windows) not in (1, 3):
        raise ValueError("give one window (grey) or three windows (one per channel)")
    channels = [window(hu, *WINDOWS[name]) for name in windows]
    if len(channels) == 1:
        channels = channels * 3
    return np.stack(channels, axis=-1)  # (H, W, 3)


def load_example_ct() -> np.ndarray:
    """The real CT slice that pydicom ships for its tests (``CT_small.dcm``), in HU.

    Stored pixel values ``SV`` become Hounsfield units with the modality LUT of the file,
    ``HU = RescaleSlope · SV + RescaleIntercept`` (DICOM PS3.3 C.11.1.1.2). Offline: the file
    is inside the pydicom wheel.

    Returns:
        ``(128, 128)`` int16 HU.
    """
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    hu = ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return np.rint(hu).astype(np.int16)


class BodyFrame:
    """Draws tissue labels in a body-centred frame: ``(u, v)`` in [-1, 1] maps to pixel
    ``(cx + u rx, cy + v ry)``; ``u`` grows to the image right (the patient's left, radiological
    convention), ``v`` grows posteriorly (down)."""

    _SHIFT = 3

    def __init__(self, labels: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> None:
        self.labels = labels
        self.cx, self.cy, self.rx, self.ry = cx, cy, rx, ry

    def px(self, u: float, v: float) -> tuple[float, float]:
        """Body-frame point -> pixel coordinates (pixel edges)."""
        return self.cx + u * self.rx, self.cy + v * self.ry

    def ellipse(self, canvas, u, v, au, av, value, angle=0.0, thickness=-1) -> None:
        """Filled ellipse with semi-axes ``(au rx, av ry)`` drawn on ``canvas``."""
        one = 1 << self._SHIFT
        x, y = self.px(u, v)
        centre = (int(round((x - 0.5) * one)), int(round((y - 0.5) * one)))
        axes = (max(1, int(round(au * self.rx * one))), max(1, int(round(av * self.ry * one))))
        cv2.ellipse(canvas, centre, axes, angle, 0, 360, value, thickness, cv2.LINE_8,
                    self._SHIFT)  # fmt: skip

    def tissue(self, u, v, au, av, label, angle=0.0) -> None:
        """Paint tissue ``label`` into the label map."""
        self.ellipse(self.labels, u, v, au, av, int(label), angle)

    def mask(self, u, v, au, av, angle=0.0) -> np.ndarray:
        """A boolean mask of one ellipse."""
        m = np.zeros(self.labels.shape, np.uint8)
        self.ellipse(m, u, v, au, av, 1, angle)
        return m.astype(bool)


def _draw_vertebra(frame: BodyFrame, rng, v: float) -> None:
    """Vertebral body (cortical shell, cancellous core: where bone lesions go), spinal canal,
    posterior elements."""
    r = rng.uniform(0.10, 0.13)  # vertebral body radius in units of rx (~35-45 mm wide)
    k = frame.rx / frame.ry  # converts a length in rx units to ry units
    frame.tissue(0, v, r, r * k, CORTICAL)
    frame.tissue(0, v, 0.8 * r, 0.8 * r * k, CANCELLOUS)
    canal_v = v + 1.5 * r * k
    frame.tissue(0, canal_v, 0.7 * r, 0.6 * r * k, CORTICAL)  # lamina ring
    frame.tissue(0, canal_v, 0.45 * r, 0.4 * r * k, CSF)
    x0, y0 = frame.px(0, canal_v + 0.5 * r * k)
    x1, y1 = frame.px(0, canal_v + 1.4 * r * k)
    thick = max(1, int(round(0.25 * r * frame.rx)))
    cv2.line(frame.labels, (int(x0), int(y0)), (int(x1), int(y1)), CORTICAL, thick)  # spinous
    for side in (-1, 1):  # transverse processes
        xa, ya = frame.px(side * 0.5 * r, canal_v - 0.2 * r * k)
        xb, yb = frame.px(side * 1.7 * r, canal_v - 0.1 * r * k)
        cv2.line(frame.labels, (int(xa), int(ya)), (int(xb), int(yb)), CORTICAL, thick)


def _draw_ribs(frame: BodyFrame, rng, cavity_au: float, cavity_av: float, count: int) -> None:
    """Rib cross-sections: small cortical ellipses just outside the cavity outline."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    for t in angles:
        if np.sin(t) > 0.75:  # no ribs right behind the spine
            continue
        u, v = 1.04 * cavity_au * np.cos(t), 1.04 * cavity_av * np.sin(t)
        frame.tissue(u, v, 0.035, 0.02 * frame.rx / frame.ry, CORTICAL, np.degrees(t) + 90)


def _draw_thorax(frame: BodyFrame, rng, cavity) -> dict[str, np.ndarray]:
    """Lungs with vessels, heart, descending aorta, sternum, ribs, vertebra."""
    j = lambda x, s=0.08: x * rng.uniform(1 - s, 1 + s)  # noqa: E731 - local jitter
    frame.tissue(j(-0.42, 0.05), j(0.02), j(0.36), j(0.66), LUNG, rng.uniform(-8, 8))
    frame.tissue(j(0.44, 0.05), j(0.04), j(0.33), j(0.64), LUNG, rng.uniform(-8, 8))
    frame.tissue(j(0.1), j(-0.2), j(0.3), j(0.3), BLOOD, rng.uniform(-40, -20))  # heart
    frame.tissue(j(0.14), j(0.36), 0.065, 0.065 * frame.rx / frame.ry, BLOOD)  # aorta
    lungs = frame.labels == LUNG
    ys, xs = np.nonzero(lungs)
    for idx in rng.integers(0, len(ys), int(rng.integers(30, 70))):  # vessels in the lungs
        r = max(1, int(round(rng.uniform(0.004, 0.015) * frame.rx)))
        cv2.circle(frame.labels, (int(xs[idx]), int(ys[idx])), r, BLOOD, -1, cv2.LINE_8)
    frame.tissue(0, -0.9 * cavity[1], 0.07, 0.05, CORTICAL)  # sternum
    _draw_ribs(frame, rng, cavity[0], cavity[1], int(rng.integers(10, 16)))
    _draw_vertebra(frame, rng, j(0.42, 0.05))
    lungs = frame.labels == LUNG
    central = np.zeros_like(lungs)
    x_lo, _ = frame.px(-0.3, 0)
    x_hi, _ = frame.px(0.3, 0)
    central[:, max(0, int(x_lo)) : int(x_hi)] = True
    mediastinum = (frame.labels == FAT) & frame.mask(0, 0, *cavity) & central
    return {"lung": lungs, "mediastinum": mediastinum, "bone": frame.labels == CANCELLOUS}


def _draw_abdomen(frame: BodyFrame, rng, cavity) -> dict[str, np.ndarray]:
    """Liver, spleen, bowel with gas, kidneys, aorta, IVC, psoas, vertebra, lower ribs."""
    j = lambda x, s=0.08: x * rng.uniform(1 - s, 1 + s)  # noqa: E731 - local jitter
    liver_scale = rng.uniform(0.5, 1.05)
    frame.tissue(j(-0.36), j(-0.08), 0.5 * liver_scale, 0.6 * liver_scale, LIVER,
                 rng.uniform(10, 30))  # fmt: skip
    if rng.random() < 0.7:
        frame.tissue(j(0.55), j(0.25), j(0.16), j(0.28), SPLEEN, rng.uniform(-40, -20))
    for _ in range(int(rng.integers(5, 12))):  # bowel loops: fluid, a wall, sometimes gas
        u, v = rng.uniform(-0.1, 0.6), rng.uniform(-0.7, 0.15)
        r = rng.uniform(0.05, 0.12)
        frame.tissue(u, v, r, r * frame.rx / frame.ry, MUSCLE)
        frame.tissue(u, v, 0.8 * r, 0.8 * r * frame.rx / frame.ry, BOWEL)
        if rng.random() < 0.5:
            frame.tissue(u, v - 0.3 * r, 0.6 * r, 0.35 * r * frame.rx / frame.ry, GAS)
    for side in (-1, 1):
        if rng.random() < 0.92:
            u, v = j(side * 0.36, 0.06), j(0.42, 0.06)
            angle = side * rng.uniform(15, 35)
            frame.tissue(u, v, j(0.13), j(0.2), KIDNEY, angle)
            frame.tissue(u - side * 0.06, v, 0.045, 0.07, SINUS, angle)
    frame.tissue(j(0.06), j(0.3), 0.06, 0.06 * frame.rx / frame.ry, BLOOD)  # aorta
    frame.tissue(j(-0.12), j(0.28), 0.07, 0.05, BLOOD)  # inferior vena cava
    for side in (-1, 1):
        frame.tissue(side * 0.17, j(0.55), 0.08, 0.1, MUSCLE)  # psoas
    _draw_ribs(frame, rng, cavity[0], cavity[1], int(rng.integers(4, 9)))
    _draw_vertebra(frame, rng, j(0.42, 0.05))
    labels = frame.labels
    return {"liver": labels == LIVER, "kidney": labels == KIDNEY, "bone": labels == CANCELLOUS}


def draw_phantom(rng: np.random.Generator, h: int, w: int, level: str):
    """The tissue label map of one slice and the regions where each lesion type may sit.

    Returns:
        labels ``(H, W)`` uint8 tissue ids, regions ``{lesion type: (H, W) bool}``, and the
        pixel spacing in mm.
    """
    labels = np.full((h, w), AIR, np.uint8)
    side = min(h, w)
    fov_mm = rng.uniform(360, 440)
    spacing = fov_mm / side
    rx = rng.uniform(150, 185) / spacing  # body half-width, px
    ry = rx * rng.uniform(0.62, 0.78)
    cx = w / 2 + rng.normal(0, 0.015) * w
    cy = h / 2 + rng.normal(0, 0.015) * h
    rx, ry = min(rx, 0.47 * w), min(ry, 0.4 * h)
    frame = BodyFrame(labels, cx, cy, rx, ry)
    table_y = int(cy + ry + rng.uniform(3, 15) / spacing)
    cv2.rectangle(labels, (0, table_y), (w - 1, table_y + max(1, int(8 / spacing))), TABLE, -1)
    fat = rng.uniform(0.05, 0.16)  # subcutaneous fat thickness, fraction of the half-axes
    wall = rng.uniform(0.05, 0.08)  # muscle wall thickness
    cavity = (1 - fat - wall, 1 - fat - 1.4 * wall)
    frame.tissue(0, 0, 1, 1, FAT)
    frame.tissue(0, 0, 1 - fat, 1 - fat, MUSCLE)
    frame.tissue(0, 0, *cavity, FAT)
    for side in (-1, 1):  # paraspinal muscles
        frame.tissue(side * 0.17, 0.8, 0.14, 0.17, MUSCLE)
    body = labels != AIR
    body[labels == TABLE] = False
    draw = _draw_thorax if level == "thorax" else _draw_abdomen
    regions = draw(frame, rng, cavity)
    regions["soft_tissue"] = body & ~frame.mask(0, 0, *cavity) & np.isin(labels, (FAT, MUSCLE))
    return labels, regions, spacing


def phantom_hu(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """HU of a tissue label map: each tissue's mean ``TISSUE_HU`` jittered per slice by up to
    ``±TISSUE_HU_JITTER``, plus a soft texture (σ = 15 HU) in lungs and liver.

    Args:
        labels: ``(H, W)`` uint8 tissue ids (``draw_phantom``).
    Returns:
        ``(H, W)`` float32 HU.
    """
    h, w = labels.shape
    tissue_hu = TISSUE_HU + rng.uniform(-1, 1, TISSUE_HU.shape).astype(np.float32) * (
        TISSUE_HU_JITTER
    )
    hu = tissue_hu[labels]  # (H, W) float32
    texture = cv2.resize(rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)).astype(np.float32),
                         (w, h), interpolation=cv2.INTER_CUBIC)  # fmt: skip
    soft = np.isin(labels, (LUNG, LIVER))
    hu[soft] += 15 * texture[soft]
    return hu
