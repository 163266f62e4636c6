"""The attention explorer: what the SE / CBAM blocks of a trained detector do on one image.

Three questions about an attention block, each answered by a plain function, and a widget over
them (notebook 12):

* **Which channels does it keep?** :func:`attention_maps` runs the detector on an image inside
  :func:`~yolo_teach.layers.attention.record_attention` and returns every block's channel weights
  (SE, CBAM eq. 1-2) and, for CBAM, its spatial map (eq. 3-4).
* **What happens without it?** :func:`predictions_with_and_without_attention` runs the same
  detector twice, the second time inside :func:`~yolo_teach.layers.attention.attention_off`
  (every block an identity, the trained weights untouched); :func:`compare_predictions` counts
  which detections survive, disappear or appear, and :func:`comparison_line` says it in one line.
* **What does it cost the validation set?** :func:`map_with_and_without_attention` measures
  COCO mAP with the blocks on and off.

:func:`attention_explorer` is the widget: an image slider, a layer dropdown and an "attention
off" toggle over these functions; its picture is the channel bars, the spatial heatmap (CBAM
only) and the detections.

Images are ``(H, W, 3)`` uint8 as the datasets store them; the detector sees them letterboxed to
its ``img_size`` (:func:`network_input`), and every picture and box here is in that input's
pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from yolo_teach.boxes import box_iou
from yolo_teach.data.augment import letterbox
from yolo_teach.detectors import Detector
from yolo_teach.layers.attention import (
    SE,
    attention_modules,
    attention_off,
    record_attention,
)
from yolo_teach.metrics import mean_average_precision
from yolo_teach.utils import as_numpy
from yolo_teach.viz.attention_view import draw_channel_bars, draw_spatial_attention
from yolo_teach.viz.draw import draw_boxes, draw_canvas
from yolo_teach.viz.panel import WidgetPanel, show_figure


def network_input(image, img_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """An ``(H, W, 3)`` uint8 image as the detector sees it: letterboxed to ``img_size``.

    Returns:
        ``(tensor (1, 3, S, S) float in [0, 1], picture (S, S, 3) uint8)``: the network input
        and the same pixels for drawing.
    """
    picture = np.asarray(image)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
    picture = letterbox(picture, np.zeros((0, 4), np.float32), img_size)[0]  # (S, S, 3)
    tensor = torch.from_numpy(picture.transpose(2, 0, 1).copy()).float().div(255)[None]
    return tensor, picture


def _device(detector: Detector) -> torch.device:
    return next(detector.model.parameters()).device


def attention_maps(detector: Detector, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """The attention maps of every SE / CBAM block of ``detector`` on ``images (B, 3, S, S)``.

    One forward pass in eval mode (the model's mode is restored), recorded with
    :func:`~yolo_teach.layers.attention.record_attention`.

    Returns:
        ``{name: {"channel": (B, C), "spatial": (B, 1, h, w)}}`` in the order of
        :func:`~yolo_teach.layers.attention.attention_modules`; ``"spatial"`` for CBAM only;
        values in (0, 1), on the CPU.
    """
    model = detector.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), record_attention(model) as maps:
            model(images.to(_device(detector)))
    finally:
        model.train(was_training)
    return {name: {kind: m.cpu() for kind, m in maps[name].items()}
            for name in attention_modules(model) if name in maps}


def _numpy(detections: Sequence[dict]) -> list[dict]:
    return [{"boxes": as_numpy(d["boxes"]).reshape(-1, 4), "scores": as_numpy(d["scores"]),
             "labels": as_numpy(d["labels"], np.int64)} for d in detections]


def predictions_with_and_without_attention(detector: Detector, images: torch.Tensor,
                                           conf_threshold: float = 0.25,
                                           iou_threshold: float = 0.45,
                                           max_det: int = 100) -> dict[str, list[dict]]:
    """The detections on ``images (B, 3, S, S)`` with the attention blocks, and without them.

    The second pass runs inside :func:`~yolo_teach.layers.attention.attention_off`: every SE /
    CBAM returns its input, the other weights are the trained ones (an ablation without
    retraining). Both passes use the detector's own decoder and NMS and keep at most
    ``max_det`` detections per image.

    Returns:
        ``{"on": [...], "off": [...]}``, one numpy dict per image each, ``boxes (N, 4)`` xyxy
        pixels of the input, ``scores (N,)``, ``labels (N,)``, by decreasing score.
    """
    images = images.to(_device(detector))
    on = detector.predict(images, conf_threshold, iou_threshold, max_det)
    with attention_off(detector.model):
        off = detector.predict(images, conf_threshold, iou_threshold, max_det)
    return {"on": _numpy(on), "off": _numpy(off)}


def compare_predictions(on: dict, off: dict, iou_threshold: float = 0.5) -> dict:
    """How the detections of one image change when attention is switched off.

    Each detection without attention, best score first, is matched to the unmatched detection
    with attention of the same class that overlaps it most, if their IoU is at least
    ``iou_threshold``: that object is *kept*. Unmatched detections with attention are *lost*,
    unmatched ones without are *new*.

    Returns:
        ``on``, ``off`` (counts), ``kept``, ``lost``, ``new``, ``mean_score_on``,
        ``mean_score_off`` (0 without detections), and ``pairs``: ``(i_on, i_off)`` index pairs
        of the kept detections.
    """
    on_boxes = torch.as_tensor(as_numpy(on["boxes"]).reshape(-1, 4), dtype=torch.float64)
    off_boxes = torch.as_tensor(as_numpy(off["boxes"]).reshape(-1, 4), dtype=torch.float64)
    on_labels, off_labels = as_numpy(on["labels"], np.int64), as_numpy(off["labels"], np.int64)
    on_scores, off_scores = as_numpy(on["scores"]), as_numpy(off["scores"])
    iou = box_iou(off_boxes, on_boxes).numpy()  # (N_off, N_on)
    iou[off_labels[:, None] != on_labels[None, :]] = -1.0  # only the same class matches
    free = np.ones(len(on_labels), dtype=bool)
    pairs = []
    for j in np.argsort(-off_scores, kind="stable"):
        candidates = np.where(free, iou[j], -1.0)
        if len(candidates) and candidates.max() >= iou_threshold:
            i = int(candidates.argmax())
            free[i] = False
            pairs.append((i, int(j)))
    return {
        "on": len(on_labels),
        "off": len(off_labels),
        "kept": len(pairs),
        "lost": len(on_labels) - len(pairs),
        "new": len(off_labels) - len(pairs),
        "mean_score_on": float(on_scores.mean()) if len(on_scores) else 0.0,
        "mean_score_off": float(off_scores.mean()) if len(off_scores) else 0.0,
        "pairs": sorted(pairs),
    }


def _boxes(n: int) -> str:
    return f"{n} box" if n == 1 else f"{n} boxes"


def comparison_line(comparison: dict) -> str:
    """:func:`compare_predictions` in one line of text."""
    c = comparison
    return (f"attention on: {_boxes(c['on'])} (mean score {c['mean_score_on']:.2f}) · off: "
            f"{_boxes(c['off'])} (mean score {c['mean_score_off']:.2f}) · {c['kept']} kept, "
            f"{c['lost']} lost, {c['new']} new")


def map_with_and_without_attention(detector: Detector, data, targets: Sequence[dict],
                                   batch_size: int = 16) -> dict[str, dict]:
    """COCO mAP of ``detector`` on a validation set, with its attention blocks and without.

    Args:
        data: a :class:`~yolo_teach.data.loader.DetectionDataset` (letterboxed images).
        targets: ground truth per image, ``{"boxes" (M, 4) xyxy pixels, "labels" (M,)}``.

    Returns:
        ``{"on": metrics, "off": metrics}``: each what
        :func:`~yolo_teach.metrics.mean_average_precision` returns (``map_50``, ``map``...) for
        :meth:`~yolo_teach.detectors.Detector.predict_dataset`'s detections (COCO practice:
        scores >= 0.001).
    """
    on = detector.predict_dataset(data, batch_size=batch_size)
    with attention_off(detector.model):
        off = detector.predict_dataset(data, batch_size=batch_size)
    return {"on": mean_average_precision(on, list(targets)),
            "off": mean_average_precision(off, list(targets))}


def layer_description(name: str, module, maps: dict[str, torch.Tensor], index: int = 0) -> str:
    """One line about one block on one image: its kind, size and the range of its weights,
    and how many channels it passes almost whole (weight > 0.95) or almost shuts (< 0.05)."""
    channel = maps["channel"][index]  # (C,)
    kind = "SE" if isinstance(module, SE) else "CBAM"
    text = (f"{name}: {kind} over {channel.numel()} channels; channel weights "
            f"{float(channel.min()):.2f} to {float(channel.max()):.2f}, mean "
            f"{float(channel.mean()):.2f}, {int((channel > 0.95).sum())} above 0.95 and "
            f"{int((channel < 0.05).sum())} below 0.05")
    if "spatial" in maps:
        spatial = maps["spatial"][index, 0]  # (h, w)
        text += (f"; spatial map {spatial.shape[0]} × {spatial.shape[1]}, "
                 f"{float(spatial.min()):.2f} to {float(spatial.max()):.2f}")
    else:
        text += "; no spatial map (SE weighs each channel, the same at every position)"
    return text


def attention_explorer(detector: Detector, images: Sequence, class_names: Sequence[str],
                       conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                       max_det: int = 100, top: int = 10, image: int = 0,
                       layer: str | None = None, panel_size: float = 3.2,
                       dpi: int = 100) -> WidgetPanel:
    """Look at the attention blocks of a trained detector, one image and one block at a time.

    Args:
        detector: a detector whose model has SE or CBAM blocks.
        images: ``(H, W, 3)`` uint8 images (e.g. validation images), letterboxed to the
            detector's input (:func:`network_input`).
        class_names: K names, for the detections' tags.
        conf_threshold, iou_threshold, max_det: of the detections drawn.
        top: channels shown as bars.
        image, layer: what the widget shows first (index into ``images``; a block's name,
            ``None`` for the first block).

    Controls: ``image`` (a slider over ``images``), ``layer`` (a dropdown of the blocks, by
    their names in the model) and ``off`` (a toggle: "attention off"). The picture shows the
    block's ``top`` channel weights (:func:`~yolo_teach.viz.attention_view.draw_channel_bars`),
    its spatial map over the image for CBAM
    (:func:`~yolo_teach.viz.attention_view.draw_spatial_attention`; an SE block has none, and
    the picture says so), and the detections: with attention; or, with the toggle on, without
    attention (solid) over those with attention (dashed grey), with :func:`comparison_line`.

    Returns the container; ``.update()`` redraws and returns ``{"image", "layer", "off",
    "maps", "predictions", "comparison"}`` (the image's :func:`attention_maps`, its
    :func:`predictions_with_and_without_attention` and their :func:`compare_predictions`).
    """
    modules = attention_modules(detector.model)
    if not modules:
        raise ValueError(f"{detector.name} has no SE or CBAM block to look at")
    if not len(images):
        raise ValueError("attention_explorer needs at least one image")
    layer = next(iter(modules)) if layer is None else layer
    if layer not in modules:
        raise ValueError(f"no attention block {layer!r}; the blocks are {list(modules)}")
    style, layout = {"description_width": "4em"}, widgets.Layout(width="20em")
    controls = {
        "image": widgets.IntSlider(value=image, min=0, max=len(images) - 1, description="image",
                                   continuous_update=False, style=style, layout=layout),
        "layer": widgets.Dropdown(options=list(modules), value=layer,
                                  description="block", style=style, layout=layout),
        "off": widgets.ToggleButton(value=False, description="attention off",
                                    tooltip="run the detector again with every SE / CBAM "
                                            "block an identity",
                                    layout=widgets.Layout(width="10em")),
    }
    text = widgets.HTML()
    picture = widgets.Image(format="png")
    fig = Figure(dpi=dpi)
    cache: dict[int, dict] = {}  # per image: input, maps, predictions, comparison

    def computed(index: int) -> dict:
        if index not in cache:
            tensor, shown = network_input(images[index], detector.img_size)
            preds = predictions_with_and_without_attention(detector, tensor, conf_threshold,
                                                           iou_threshold, max_det)
            cache[index] = {"picture": shown, "maps": attention_maps(detector, tensor),
                            "predictions": preds,
                            "comparison": compare_predictions(preds["on"][0], preds["off"][0])}
        return cache[index]

    def draw_detections(ax, shown, preds: dict, off: bool) -> None:
        draw_canvas(ax, image=shown)
        on_det, off_det = preds["on"][0], preds["off"][0]
        if off:
            draw_boxes(ax, on_det["boxes"], color="0.6", linestyle="--", linewidth=1.2,
                       text=False)
            draw_boxes(ax, off_det["boxes"], off_det["labels"], off_det["scores"], class_names)
            ax.set_title(f"attention off: {_boxes(len(off_det['boxes']))}\n(dashed: the "
                         f"{len(on_det['boxes'])} with attention)", fontsize=9)
        else:
            draw_boxes(ax, on_det["boxes"], on_det["labels"], on_det["scores"], class_names)
            ax.set_title(f"attention on: {_boxes(len(on_det['boxes']))}, score ≥ "
                         f"{conf_threshold:.2f}", fontsize=9)

    def update(change=None) -> dict:
        index, name, off = (controls["image"].value, controls["layer"].value,
                            controls["off"].value)
        state = computed(index)
        maps = state["maps"][name]
        spatial = "spatial" in maps
        fig.clear()
        fig.set_size_inches(panel_size * (3 if spatial else 2) + 0.4, panel_size + 0.2)
        axes = fig.subplots(1, 3 if spatial else 2,
                            gridspec_kw={"width_ratios": [1.3, 1, 1] if spatial else [1.3, 1]})
        channels = maps["channel"].shape[1]
        draw_channel_bars(axes[0], maps["channel"], 0, min(top, channels),
                          title=f"{name}: top {min(top, channels)} of {channels} channels")
        if spatial:
            h, w = maps["spatial"].shape[-2:]
            # as floats in [0, 1]: draw_spatial_attention converts the image to float64
            draw_spatial_attention(axes[1], state["picture"] / 255.0, maps["spatial"],
                                   title=f"spatial map ({h} × {w}), bright = kept")
        else:
            axes[0].text(0.5, -0.3, "SE: no spatial map; one weight per channel,\nthe same "
                         "at every position", transform=axes[0].transAxes, ha="center",
                         va="top", fontsize=8, color="0.3")
        draw_detections(axes[-1], state["picture"], state["predictions"], off)
        fig.subplots_adjust(left=0.07 if spatial else 0.1, right=0.99, top=0.86,
                            bottom=0.26 if not spatial else 0.16, wspace=0.25)
        c = state["comparison"]
        line = comparison_line(c) if off else (
            f"{_boxes(c['on'])} with attention (mean score {c['mean_score_on']:.2f}); press "
            "<i>attention off</i> to compare")
        text.value = f"{layer_description(name, modules[name], maps)}<br>image {index}: {line}"
        show_figure(picture, fig)
        return {"image": index, "layer": name, "off": off, "maps": state["maps"],
                "predictions": state["predictions"], "comparison": state["comparison"]}

    for control in controls.values():
        control.observe(update, names="value")
    rows = [widgets.HBox([controls["image"], controls["layer"], controls["off"]]), picture,
            text]
    ui = WidgetPanel("attention-explorer", rows, picture, controls, update, fig, texts=[text])
    update()
    return ui
