"""Detectors by name: a model with the loss and the decoder that belong to it.

:func:`build_detector` is what the trainer and the command line use::

    det = build_detector("yolov3-nano", num_classes=3, img_size=128)
    loss, terms = det.criterion(det.model(images), targets)  # training
    detections = det.predict(images)                         # [{"boxes", "scores", "labels"}]

The names, and what each one brings (anchors, strides, loss, assigner, coder), are declared in
the model files and registered in :mod:`yolo_teach.registry`; this module only assembles them.
The ``assign`` rules and what they select are listed in :mod:`yolo_teach.losses.recipes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial, wraps

import numpy as np
import torch
from torch import Tensor, nn

from yolo_teach.decode import decode_anchor_maps, decode_refined, predict
from yolo_teach.losses import YOLOLoss
from yolo_teach.losses.refinedet_loss import RefineDetLoss
from yolo_teach.nms import batched_nms
from yolo_teach.registry import (
    AnchorSet,
    DetectorSpec,
    assignment_rules,
    detector_names,
    get_spec,
    register,
)


@dataclass
class Detector:
    """A model with its loss and decoder, for one input size and number of classes.

    Attributes:
        model: returns raw outputs in train and eval mode.
        criterion: ``(outputs, targets (M, 6)) -> (loss, {term: value})``.
        decoder: ``outputs -> (B, N, 4 + 1 + K)`` rows ``[x1, y1, x2, y2, obj, p_1..p_K]``.
        img_size: side of the square network input, pixels.
        name: its name in the registry.
        num_classes: K.
        anchors: per scale, ``(A, 2)`` anchor sizes in pixels at ``img_size``; ``None`` for v1.
        rule: the assignment rule of its loss.
        nms: ``(boxes, scores, classes, iou_threshold) -> keep``, the NMS of its paper.
    """

    model: nn.Module
    criterion: Callable
    decoder: Callable
    img_size: int
    name: str
    num_classes: int
    anchors: list[Tensor] | None = None
    rule: str = "single"
    nms: Callable = batched_nms

    def predict(self, images: Tensor, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                max_det: int = 300) -> list[dict[str, Tensor]]:
        """Detections on ``images (B, 3, S, S)``: one ``{"boxes", "scores", "labels"}`` each."""
        return predict(self.model, images, self.decoder, conf_threshold, iou_threshold, max_det,
                       nms=self.nms)

    def predictor(self, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                  max_det: int = 300) -> Callable[[nn.Module, Tensor], list[dict]]:
        """``(model, images) -> detections`` with this detector's decoder and NMS: what the
        trainer and :func:`~yolo_teach.train.predict_dataset` call (the model is passed so
        that the trainer can hand in its EMA copy)."""
        return partial(predict, decoder=self.decoder, conf_threshold=conf_threshold,
                       iou_threshold=iou_threshold, max_det=max_det, nms=self.nms)

    def predict_dataset(self, data, conf_threshold: float = 0.001, iou_threshold: float = 0.6,
                        batch_size: int = 16) -> list[dict]:
        """Detections on every image of a :class:`~yolo_teach.data.loader.DetectionDataset`,
        boxes mapped back to the original images: one numpy dict per image, in order.
        The defaults are COCO's evaluation practice (keep low scores for mAP)."""
        from yolo_teach.history import predict_dataset  # imports the data pipeline

        return predict_dataset(self.predictor(conf_threshold, iou_threshold), self.model, data,
                               batch_size=batch_size)


# --------------------------------------------------------------------------------------------
# Anchors
# --------------------------------------------------------------------------------------------
def official_anchors(name: str, img_size: int) -> list[Tensor]:
    """The official anchors of a registered model, per scale, in pixels at ``img_size``.

    Darknet's anchors are tuned for one input size (416 for YOLOv2/v3, 608 for YOLOv4); we keep
    them relative to the image (:meth:`~yolo_teach.registry.AnchorSet.pixels`).
    """
    spec = get_spec(name)
    if spec.anchors is None:
        raise ValueError(f"{name!r} has no anchors")
    return spec.anchors.pixels(img_size)


def split_anchors(anchors, num_scales: int) -> list[Tensor]:
    """Anchors in pixels, per scale: a list of ``(A, 2)`` kept as is, or one ``(num_scales A,
    2)`` array (e.g. from :func:`~yolo_teach.anchors.kmeans_anchors`) sorted by area and dealt
    out in equal groups, smallest to the finest scale (YOLOv3 §2.3)."""
    if isinstance(anchors, (list, tuple)) and len(anchors) == num_scales and all(
        np.asarray(a).ndim == 2 for a in anchors
    ):
        return [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in anchors]
    flat = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    if len(flat) % num_scales:
        raise ValueError(f"{len(flat)} anchors cannot be split over {num_scales} scales")
    flat = flat[np.argsort(flat.prod(1), kind="stable")]
    return [torch.tensor(g, dtype=torch.float32) for g in np.split(flat, num_scales)]


def anchor_head(spec: DetectorSpec, model: nn.Module, num_classes: int, img_size: int,
                rule: str, anchors, loss_options: dict):
    """The loss and decoder of an anchor-based model (YOLOv2 to v7): a
    :class:`~yolo_teach.losses.YOLOLoss` (or the recipe's ``loss_class``) made from
    ``spec.rules[rule]`` and ``loss_options``, and :func:`~yolo_teach.decode.decode_anchor_maps` with the same anchors and coders."""
    strides = tuple(model.strides)
    if img_size % max(strides):
        raise ValueError(f"{spec.name} needs an img_size divisible by {max(strides)}, "
                         f"got {img_size}")
    anchors = spec.anchors.pixels(img_size) if anchors is None else split_anchors(
        anchors, len(strides))
    if any(len(a) != spec.anchors.per_scale for a in anchors):
        raise ValueError(f"{spec.name} predicts {spec.anchors.per_scale} anchors per scale, "
                         f"got {[len(a) for a in anchors]}")
    options = {**spec.rules[rule](strides, num_classes, img_size), **loss_options}
    # a rule may bring its own loss class (YOLOv7's lead and auxiliary heads: LeadAuxLoss)
    loss_class = options.pop("loss_class", YOLOLoss)
    criterion = loss_class(anchors, strides, **options)
    decoder = partial(decode_anchor_maps, anchors=anchors, strides=strides,
                      coder=criterion.coder, class_activation=criterion.class_loss.activation)
    return criterion, decoder, anchors


def register_anchor_models(models: Sequence[tuple[str, Callable, int]], anchors: AnchorSet,
                           rules: dict, **spec_options) -> None:
    """Register anchor-based models that share anchors and rules: ``models`` lists
    ``(name, factory(num_classes), reference img_size)``; ``spec_options`` are further
    :class:`~yolo_teach.registry.DetectorSpec` fields (``default_rule``, ``nms``...)."""
    for name, factory, img_size in models:
        @wraps(factory)  # keeps the factory's module: the model file owns the name
        def make_model(num_classes: int, img_size: int, factory=factory) -> nn.Module:
            return factory(num_classes)

        register(DetectorSpec(name=name, make_model=make_model, make_head=anchor_head,
                              img_size=img_size, anchors=anchors, rules=rules,
                              description=factory.__doc__.splitlines()[0], **spec_options))


def refine_head(spec: DetectorSpec, model: nn.Module, num_classes: int, img_size: int,
                rule: str, anchors, loss_options: dict):
    """The loss, decoder and NMS of a two-step detector (RefineDet, RefineDetLite): a
    :class:`~yolo_teach.losses.refinedet_loss.RefineDetLoss` on ``model.priors(img_size)``
    made from ``spec.rules[rule]`` and ``loss_options``, :func:`~yolo_teach.decode.decode_refined`
    with the same priors, and the rule's ``nms`` when it brings one (soft-NMS)."""
    if anchors is not None:
        raise ValueError(f"{spec.name}'s default anchors come from its network "
                         f"(model.priors): leave anchors at None")
    priors = model.priors(img_size)  # (N, 4) xyxy pixels
    options = {**spec.rules[rule](tuple(model.strides), num_classes, img_size), **loss_options}
    nms = options.pop("nms", None)
    criterion = RefineDetLoss(priors, num_classes, **options)
    decoder = partial(decode_refined, priors=priors, coder=criterion.coder,
                      filter_threshold=criterion.filter_threshold)
    return criterion, decoder, None, nms


def register_refine_models(models: Sequence[tuple[str, Callable, int]], rules: dict,
                           **spec_options) -> None:
    """Register two-step detectors: ``models`` lists ``(name, factory(num_classes), reference
    img_size)``, the factory counting the background (as the official code), so that the
    registered name takes K foreground classes and builds ``factory(K + 1)``.

    Their short-run recipe keeps eq. 1's weights at 1 (``class_gain_scale`` 1, not the YOLO
    nanos' 4): four times the class terms drowned the box terms, GIoU's (about 0.4 per
    positive, against 2-3 for smooth L1) most, and the nano stopped localising."""
    spec_options.setdefault("short_run", {"class_gain_scale": 1.0})
    for name, factory, img_size in models:
        @wraps(factory)  # keeps the factory's module: the model file owns the name
        def make_model(num_classes: int, img_size: int, factory=factory) -> nn.Module:
            return factory(num_classes + 1)

        register(DetectorSpec(name=name, make_model=make_model, make_head=refine_head,
                              img_size=img_size, rules=rules, default_rule="basic",
                              description=factory.__doc__.splitlines()[0], **spec_options))


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------
def build_detector(name: str, num_classes: int, img_size: int | None = None,
                   assign: str | None = None, anchors=None, **loss_options) -> Detector:
    """Build a ready :class:`Detector` by its registered name.

    Args:
        name: a name of :func:`~yolo_teach.registry.detector_names`, e.g. ``"yolov3-nano"``.
        num_classes: K.
        img_size: side of the square input; ``None`` for the model's reference size.
        assign: an assignment rule of the model (:mod:`yolo_teach.losses.recipes`); ``None``
            for its paper's rule.
        anchors: pixels at ``img_size``, per scale or as one array to split (see
            :func:`split_anchors`); ``None`` for the official anchors rescaled to ``img_size``.
        **loss_options: override any argument of the loss.

    The model comes with its bias initialisation done (building gives a ready model).
    """
    spec = get_spec(name)
    rule = assign or spec.default_rule
    if rule not in spec.rules:
        raise ValueError(f"{name} has the assignment rules {sorted(spec.rules)}, got {rule!r}")
    img_size = img_size or spec.img_size
    model = spec.make_model(num_classes, img_size)
    # a head may return a fourth item, the NMS its rule brings (RefineDetLite's soft-NMS)
    criterion, decoder, anchors, *rule_nms = spec.make_head(spec, model, num_classes, img_size,
                                                            rule, anchors, dict(loss_options))
    nms = (rule_nms[0] if rule_nms else None) or spec.nms or batched_nms
    return Detector(model, criterion, decoder, img_size, name, num_classes, anchors, rule, nms)


__all__ = [
    "Detector",
    "DetectorSpec",
    "anchor_head",
    "assignment_rules",
    "build_detector",
    "detector_names",
    "official_anchors",
    "refine_head",
    "register_anchor_models",
    "register_refine_models",
    "split_anchors",
]
