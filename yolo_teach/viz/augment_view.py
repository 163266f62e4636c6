"""The mosaic preview: one augmented training sample built step by step, every box accounted for.

:func:`preview_sample` runs the steps of :class:`~yolo_teach.data.augment.Augment` in its order —
Mosaic (or letterbox), random affine, MixUp or CutMix, HSV jitter, horizontal flip — but each
step is switched on or off by a toggle instead of drawn with a probability, and the Mosaic centre
is chosen rather than drawn. Every transform is the library's own; the preview only keeps books.

The book-keeping trick: the transforms keep or drop a box together with its label, so the
preview passes each object's *id* where a class label would go. The ids that come out are the
objects kept; the others were dropped by :func:`~yolo_teach.data.augment.filter_boxes` inside
the step that lost them. For a dropped object the preview keeps what was left of its box (the part
inside its Mosaic quadrant or inside the canvas) and moves it through the later steps (affine
matrix, flip), so that the widget can draw it dashed where it ended up.

:func:`mosaic_preview` is the widget over :func:`preview_sample`; :func:`draw_samples` draws a grid
of samples with their boxes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from yolo_teach.data.augment import (
    Augment,
    affine_matrix,
    cutmix,
    filter_boxes,
    hflip,
    hsv_jitter,
    letterbox,
    mixup,
    mosaic,
    mosaic_layout,
    random_affine,
    resize_keep_aspect,
    transform_boxes,
)
from yolo_teach.viz.draw import class_legend, draw_boxes, draw_canvas
from yolo_teach.viz.panel import WidgetPanel, show_figure

AUGMENTATIONS = ("mosaic", "affine", "mixup", "cutmix", "flip", "hsv")
"""The steps a preview can switch on, named as in the widget's toggles."""

PREVIEW_AUGMENT = Augment(degrees=10.0, shear=2.0)
"""Magnitudes of the preview's steps: YOLOv5's defaults plus some rotation and shear, so that
the affine step shows all four of its parts. Probabilities in it are ignored (toggles decide)."""

MOSAIC_CENTRE_RANGE = (0.2, 0.8)  # mosaic()'s default center_range (darknet's min_offset = 0.2)
DROPPED_COLOR = "#D62728"


@dataclass(frozen=True)
class Preview:
    """One augmented sample and the fate of every object that went into it.

    Attributes:
        image: ``(S, S, 3)`` uint8, the augmented image.
        boxes: ``(M, 4)`` float32 ``xyxy`` pixels, the boxes that survived every step.
        labels: ``(M,)`` int64 class ids of ``boxes``.
        dropped: ``(D, 4)`` float32 ``xyxy``: what was still visible of each dropped object's
            box when it was dropped, moved by the later steps and clipped to the canvas (CutMix:
            the object's whole box); a row of zeros when nothing of it was left.
        dropped_labels: ``(D,)`` int64 class ids of the dropped objects.
        dropped_sources: ``(D,)`` int64 dataset index of the image each dropped object came from.
        dropped_steps: the step that dropped each one (``"mosaic"``, ``"affine"``, ...).
        sources: dataset indices of every image loaded, in order (Mosaic images first).
        centre: ``(x_c, y_c)`` pixels of the Mosaic centre, or None without Mosaic.
        steps: the steps applied, in order.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    dropped: np.ndarray
    dropped_labels: np.ndarray
    dropped_sources: np.ndarray
    dropped_steps: tuple[str, ...]
    sources: tuple[int, ...]
    centre: tuple[int, int] | None
    steps: tuple[str, ...]


class _Registry:
    """Issues an id for every object loaded and remembers its class and source image."""

    def __init__(self) -> None:
        self.labels, self.sources, self.images = [], [], []  # per object, per object, per image

    def load(self, dataset, index: int):
        """Image ``index`` of ``dataset`` as a sample whose labels are fresh object ids."""
        image, boxes, labels = dataset[index]
        labels = np.asarray(labels, np.int64).reshape(-1)
        ids = np.arange(len(self.labels), len(self.labels) + len(labels), dtype=np.int64)
        self.labels += labels.tolist()
        self.sources += [int(index)] * len(labels)
        self.images.append(int(index))
        return np.asarray(image), np.asarray(boxes, np.float32).reshape(-1, 4), ids


def _record_dropped(ghosts: dict, boxes, ids, kept_ids, step: str, visible=None) -> None:
    """Note every object of ``ids`` missing from ``kept_ids`` at its ``boxes`` row, clipped to
    the ``visible`` rectangle(s) ``xyxy`` (one, or one per box); NaN when nothing is left."""
    kept = set(np.asarray(kept_ids).tolist())
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if visible is not None:
        rect = np.broadcast_to(np.asarray(visible, np.float64), boxes.shape)  # (N, 4)
        boxes = np.concatenate([np.maximum(boxes[:, :2], rect[:, :2]),
                                np.minimum(boxes[:, 2:], rect[:, 2:])], 1)  # fmt: skip
        boxes[(boxes[:, 2:] <= boxes[:, :2]).any(1)] = np.nan  # nothing of it is visible
    for box, i in zip(boxes, np.asarray(ids).tolist()):
        if i not in kept:
            ghosts[i] = (box, step)


def _move_ghosts(ghosts: dict, mapping) -> None:
    """Apply a geometric map ``(G, 4) -> (G, 4)`` to the boxes of the dropped objects."""
    if ghosts:
        ids = list(ghosts)
        moved = mapping(np.stack([ghosts[i][0] for i in ids]))
        for i, box in zip(ids, np.asarray(moved, np.float64)):
            ghosts[i] = (box, ghosts[i][1])


def _geometric(dataset, index, size, rng, centre, toggles, hyp, registry):
    """Step 1 of ``Augment``: Mosaic (or letterbox), then the random affine.

    Returns ``(sample with object ids as labels, {id: (box, step)} of the dropped objects,
    Mosaic centre in pixels or None)``.
    """
    ghosts: dict = {}
    xy_centre = None
    if "mosaic" in toggles:
        picks = [index, *(int(i) for i in rng.integers(0, len(dataset), 3))]
        samples = [registry.load(dataset, i) for i in picks]
        if centre is None:
            centre = rng.uniform(*MOSAIC_CENTRE_RANGE, 2)
        xy_centre = (int(centre[0] * size), int(centre[1] * size))
        placed, placed_ids, visible = [], [], []
        for corner, (image, boxes, ids) in enumerate(samples):  # where mosaic() puts each box
            resized, boxes, _ = resize_keep_aspect(image, boxes, size)
            h, w = resized.shape[:2]
            rect, (dx, dy) = mosaic_layout(corner, xy_centre, w, h, size)
            placed.append(boxes + np.array([dx, dy, dx, dy], np.float32))
            placed_ids.append(ids)
            visible += [rect] * len(ids)
        sample = mosaic(samples, size, rng, centre=xy_centre)  # draws nothing from rng
        _record_dropped(ghosts, np.concatenate(placed), np.concatenate(placed_ids), sample[2],
                        "mosaic", np.array(visible).reshape(-1, 4))  # fmt: skip
    else:
        image, boxes, ids = registry.load(dataset, index)
        image, boxes, _, _ = letterbox(image, boxes, size)
        sample = (image, *filter_boxes(boxes, ids, size, size, min_size=0.0))  # as Augment
        _record_dropped(ghosts, boxes, ids, sample[2], "letterbox", (0, 0, size, size))
    if "affine" in toggles:
        # random_affine draws its matrix first: the same draws from a copy give the same matrix
        M = affine_matrix(size, size, size, size, copy.deepcopy(rng), hyp.degrees, hyp.translate,
                          hyp.scale, hyp.shear)  # fmt: skip
        before_boxes, before_ids = sample[1], sample[2]
        sample = random_affine(*sample, rng, degrees=hyp.degrees, translate=hyp.translate,
                               scale=hyp.scale, shear=hyp.shear)  # fmt: skip
        _move_ghosts(ghosts, lambda b: transform_boxes(b, M))
        _record_dropped(ghosts, transform_boxes(before_boxes, M), before_ids, sample[2], "affine",
                        (0, 0, size, size))  # fmt: skip
    return sample, ghosts, xy_centre


def _check_toggles(toggles) -> frozenset:
    toggles = frozenset([toggles] if isinstance(toggles, str) else toggles)
    unknown = toggles - set(AUGMENTATIONS)
    if unknown:
        message = f"unknown augmentations {sorted(unknown)}; expected some of {AUGMENTATIONS}"
        raise ValueError(message)
    return toggles


def preview_sample(
    dataset,
    index: int,
    seed: int = 0,
    centre: tuple[float, float] | None = (0.5, 0.5),
    toggles: Sequence[str] = ("mosaic",),
    size: int = 256,
    hyp: Augment | None = None,
) -> Preview:
    """Build one augmented sample of image ``index`` and say which boxes each step dropped.

    The steps are those of :class:`~yolo_teach.data.augment.Augment`, in its order, each on when
    its name is in ``toggles`` (probability 1) and off otherwise:

    1. ``mosaic``: image ``index`` and three random others around the centre (else the image
       is letterboxed to ``S x S``); ``affine``: :func:`random_affine` with ``hyp``'s
       ``degrees, translate, scale, shear``;
    2. ``mixup`` (else ``cutmix``) with a second sample built like step 1 from a random image
       (its Mosaic centre drawn as :func:`mosaic` does). Like ``Augment``, at most one of the
       two: with both toggles on, CutMix is skipped;
    3. ``hsv``: :func:`hsv_jitter` with ``hyp``'s gains;
    4. ``flip``: :func:`hflip`.

    Args:
        dataset: ``len(dataset)`` and ``dataset[i] -> (image, boxes xyxy, labels)``.
        index: the image the sample is about (the top-left image of the Mosaic).
        seed: seed of the one ``np.random.default_rng`` all random steps draw from.
        centre: the Mosaic centre as fractions ``(x, y)`` of the canvas; None draws it.
        toggles: names from ``AUGMENTATIONS``.
        size: side ``S`` of the output.
        hyp: magnitudes (an ``Augment``; its probabilities are ignored). Default
            ``PREVIEW_AUGMENT``.

    Returns:
        a :class:`Preview`. Every object loaded is either in ``boxes`` or in ``dropped``.
    """
    toggles = _check_toggles(toggles)
    hyp = PREVIEW_AUGMENT if hyp is None else hyp
    rng = np.random.default_rng(seed)
    registry = _Registry()
    sample, ghosts, xy_centre = _geometric(dataset, index, size, rng, centre, toggles, hyp,
                                           registry)  # fmt: skip
    steps = ["mosaic" if "mosaic" in toggles else "letterbox"] + ["affine"] * ("affine" in toggles)
    if toggles & {"mixup", "cutmix"}:
        partner = int(rng.integers(len(dataset)))
        other, other_ghosts, _ = _geometric(dataset, partner, size, rng, None, toggles, hyp,
                                            registry)  # fmt: skip
        ghosts.update(other_ghosts)
        if "mixup" in toggles:
            sample = mixup(sample, other, rng)
            steps += ["mixup"] + (["cutmix skipped (mixup is on)"] if "cutmix" in toggles else [])
        else:
            before_boxes = np.concatenate([sample[1], other[1]])
            before_ids = np.concatenate([sample[2], other[2]])
            sample = cutmix(sample, other, rng)
            _record_dropped(ghosts, before_boxes, before_ids, sample[2], "cutmix")
            steps.append("cutmix")
    if "hsv" in toggles:
        sample = hsv_jitter(*sample, rng, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v)
        steps.append("hsv")
    if "flip" in toggles:
        image = sample[0]
        sample = hflip(*sample)
        _move_ghosts(ghosts, lambda b: hflip(image, b, np.zeros(len(b), np.int64))[1])
        steps.append("flip")

    image, boxes, ids = sample
    labels = np.asarray(registry.labels, np.int64)
    sources = np.asarray(registry.sources, np.int64)
    dropped_ids = sorted(ghosts)
    dropped = np.array([ghosts[i][0] for i in dropped_ids], np.float64).reshape(-1, 4)
    dropped[:, [0, 2]] = dropped[:, [0, 2]].clip(0, image.shape[1])
    dropped[:, [1, 3]] = dropped[:, [1, 3]].clip(0, image.shape[0])
    dropped = np.nan_to_num(dropped, nan=0.0)  # nothing left: a row of zeros
    return Preview(
        image=image,
        boxes=boxes,
        labels=labels[ids],
        dropped=dropped.astype(np.float32),
        dropped_labels=labels[dropped_ids],
        dropped_sources=sources[dropped_ids],
        dropped_steps=tuple(ghosts[i][1] for i in dropped_ids),
        sources=tuple(registry.images),
        centre=xy_centre,
        steps=tuple(steps),
    )


def describe_dropped(preview: Preview, class_names: Sequence[str] | None = None) -> list[str]:
    """The dropped objects in words: one line per box still drawn, e.g.
    ``"star (image 17) dropped by mosaic: 40 x 1 px"``, then one line counting those with
    nothing left, by step."""
    lines, gone = [], {}
    p = preview
    for box, label, source, step in zip(p.dropped, p.dropped_labels, p.dropped_sources,
                                        p.dropped_steps):  # fmt: skip
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
        if w > 0 and h > 0:
            name = class_names[label] if class_names is not None else f"class {label}"
            lines.append(f"{name} (image {source}) dropped by {step}: {w:.0f} x {h:.0f} px")
        else:
            gone[step] = gone.get(step, 0) + 1
    if gone:
        steps = ", ".join(f"{step} {count}" for step, count in gone.items())
        lines.append(f"{sum(gone.values())} with nothing left on the canvas ({steps})")
    return lines


# ----------------------------------------------------------------------------- drawing
def draw_samples(axes, samples, class_names: Sequence[str] | None = None,
                 titles: Sequence[str] | None = None, fontsize: float = 6,
                 linewidth: float = 1.2) -> np.ndarray:
    """Draw ``(image, boxes xyxy, labels)`` samples, one per axes, boxes in their class colour.

    Axes left over are switched off. Returns the axes as a flat array.
    """
    axes = np.atleast_1d(axes).ravel()
    samples = list(samples)
    for k, ax in enumerate(axes):
        if k >= len(samples):
            ax.axis("off")
            continue
        image, boxes, labels = samples[k]
        draw_canvas(ax, image=image)
        draw_boxes(ax, boxes, labels, class_names=class_names, fontsize=fontsize,
                   linewidth=linewidth)  # fmt: skip
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    return axes


def draw_preview(ax: Axes, preview: Preview, class_names: Sequence[str] | None = None,
                 legend: bool = True, fontsize: float = 6) -> Axes:
    """The preview's image with the kept boxes (class colours) and the dropped ones (red, dashed,
    where they ended up; nothing for those that left the canvas)."""
    draw_canvas(ax, image=preview.image)
    draw_boxes(ax, preview.boxes, preview.labels, class_names=class_names, fontsize=fontsize,
               linewidth=1.2)  # fmt: skip
    d = preview.dropped
    visible = (d[:, 2] > d[:, 0]) & (d[:, 3] > d[:, 1])
    draw_boxes(ax, d[visible], color=DROPPED_COLOR, linestyle="--", linewidth=1.2, text=False)
    if legend and class_names is not None:
        dropped_style = {"color": DROPPED_COLOR, "linestyle": "--"}
        class_legend(ax, class_names, extra=[("dropped", dropped_style)], fontsize=fontsize)
    return ax


def mosaic_preview(dataset, index: int = 0, seed: int = 0,
                   centre: tuple[float, float] = (0.5, 0.5),
                   toggles: Sequence[str] = ("mosaic",), size: int = 256,
                   hyp: Augment | None = None, class_names: Sequence[str] | None = None,
                   figsize=(4.0, 4.0), dpi: int = 100) -> WidgetPanel:
    """The mosaic preview widget: image, seed and centre sliders, one toggle per augmentation.

    A thin view over :func:`preview_sample`: kept boxes are drawn in their class colour, dropped
    ones red and dashed, and the text under the controls lists every dropped object and the
    step that dropped it.

    Returns the container; ``.controls`` holds ``index``, ``seed``, ``cx``, ``cy`` and one
    toggle per name of ``AUGMENTATIONS``; ``.update()`` redraws and returns the :class:`Preview`.
    """
    if class_names is None:
        class_names = getattr(dataset, "class_names", None)
    active = _check_toggles(toggles)
    style, layout = {"description_width": "5.5em"}, widgets.Layout(width="21em")

    def slider(kind, description, value, lo, hi, step):
        return kind(value=value, min=lo, max=hi, step=step, description=description,
                    continuous_update=False, style=style, layout=layout)  # fmt: skip

    controls = {
        "index": slider(widgets.IntSlider, "image", index, 0, len(dataset) - 1, 1),
        "seed": slider(widgets.IntSlider, "seed", seed, 0, 99, 1),
        "cx": slider(widgets.FloatSlider, "centre x", centre[0], 0.05, 0.95, 0.05),
        "cy": slider(widgets.FloatSlider, "centre y", centre[1], 0.05, 0.95, 0.05),
    }
    for name in AUGMENTATIONS:
        controls[name] = widgets.ToggleButton(value=name in active, description=name,
                                              layout=widgets.Layout(width="6em"))  # fmt: skip
    summary = widgets.HTML()
    # an Image, not an Output: show_figure writes PNG bytes (an Output has no .value, and the
    # picture went nowhere) and sets the image's layout to its own size
    picture = widgets.Image(format="png")
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.02)

    def update(change=None) -> Preview:
        c = {k: w.value for k, w in controls.items()}
        on = [name for name in AUGMENTATIONS if c[name]]
        p = preview_sample(dataset, c["index"], c["seed"], (c["cx"], c["cy"]), on, size, hyp)
        ax.clear()
        draw_preview(ax, p, class_names, fontsize=7)
        ax.set_title(" → ".join(p.steps), fontsize=8)
        lines = "".join(f"<li>{line}</li>" for line in describe_dropped(p, class_names))
        summary.value = (f"images {list(p.sources)} · <b>{len(p.boxes)}</b> boxes kept, "
                         f"<b>{len(p.dropped)}</b> dropped<ul>{lines}</ul>")  # fmt: skip
        show_figure(picture, fig)
        return p

    for widget in controls.values():
        widget.observe(update, names="value")
    rows = [["index", "seed"], ["cx", "cy"], AUGMENTATIONS]
    ui = WidgetPanel("mosaic-preview", [*(widgets.HBox([controls[k] for k in row]) for row in rows),
                                        summary, picture], picture, controls, update, fig,
                     texts=[summary])
    update()
    return ui
