"""The model zoo's registry: one :class:`DetectorSpec` per name, declared in the model's own file.

A model file states its facts once, beside its factories, and registers its names::

    register(DetectorSpec(
        name="yolov3-nano", make_model=lambda k, size: yolov3_nano(k), img_size=128,
        make_head=anchor_head, anchors=ANCHORS, rules=darknet_rules()))

Everything else (the trainer's wiring, the command line, the benchmarks, the notebooks) looks a
name up here and never branches on it. Adding a version = its model file (with its
registrations) + its tests; a model defined outside the package registers the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class AnchorSet:
    """A model's official anchors, with their unit stated.

    Attributes:
        sizes: ``(w, h)`` of every anchor, in ``unit``.
        masks: per output map (finest first), the indices of ``sizes`` it uses (Darknet's
            ``mask``); every map uses the same number of anchors A.
        unit: ``"pixels"`` (of a ``reference_size`` input: YOLOv3 and later) or ``"cells"``
            (of stride ``cell_stride``: YOLOv2's region layer).
        reference_size: the input size the anchors were chosen for.
        cell_stride: the stride of one cell, for ``unit="cells"``.

    The anchors are kept relative to the image: at another input size they are rescaled by
    ``img_size / reference_size`` (:meth:`pixels`).
    """

    sizes: tuple[tuple[float, float], ...]
    masks: tuple[tuple[int, ...], ...]
    unit: str = "pixels"
    reference_size: int = 416
    cell_stride: int = 1

    def __post_init__(self):
        if self.unit not in ("pixels", "cells"):
            raise ValueError(f"anchor unit must be 'pixels' or 'cells', got {self.unit!r}")
        if len({len(m) for m in self.masks}) != 1:
            raise ValueError(f"every output map needs the same number of anchors: {self.masks}")

    @property
    def per_scale(self) -> int:
        """Anchors per cell A."""
        return len(self.masks[0])

    @property
    def num_anchors(self) -> int:
        """Anchors over all maps (what k-means fits), e.g. 9 for YOLOv3."""
        return sum(len(m) for m in self.masks)

    def array(self) -> np.ndarray:
        """``(N, 2)`` read-only float64 array of ``sizes``, in ``unit``."""
        sizes = np.asarray(self.sizes, dtype=np.float64).reshape(-1, 2)
        sizes.flags.writeable = False
        return sizes

    def pixels(self, img_size: int) -> list[Tensor]:
        """Per output map, ``(A, 2)`` anchors in pixels of an ``img_size`` input."""
        sizes = self.array()
        if self.unit == "cells":
            sizes = sizes * self.cell_stride
        scale = img_size / self.reference_size
        return [torch.tensor(sizes[list(m)] * scale, dtype=torch.float32) for m in self.masks]


@dataclass(frozen=True)
class DetectorSpec:
    """Everything the package needs to build, train and load one named detector.

    Attributes:
        name: the registry key, e.g. ``"yolov4-nano"``.
        make_model: ``(num_classes, img_size) -> model`` (a
            :class:`~yolo_teach.protocols.DetectionModel`, bias initialised).
        make_head: ``(spec, model, num_classes, img_size, rule, anchors, loss_options) ->
            (criterion, decoder, anchors_px)``: the loss, the decoder and the anchors in
            pixels (``None`` without anchors) that belong to the model, e.g.
            :func:`yolo_teach.detectors.anchor_head`; optionally a fourth item, the NMS the
            rule brings (``None`` = ``nms`` below), e.g. :func:`~yolo_teach.detectors.refine_head`.
        img_size: the reference input size (448 for YOLOv1, 416 for YOLOv2-v4, 128 for nanos).
        anchors: the official anchors, ``None`` for models without anchors.
        rules: assignment rule -> loss recipe ``(strides, num_classes, img_size) -> loss
            keyword arguments``; the rules a user may pick with ``assign=``.
        default_rule: the rule used when none is given (the paper's).
        nms: ``(boxes, scores, classes, iou_threshold) -> keep`` used at inference
            (:func:`~yolo_teach.nms.batched_nms` unless the paper says otherwise).
        short_run: this model's changes to :data:`yolo_teach.experiment.SHORT_RUN`.
        description: one line for listings.
    """

    name: str
    make_model: Callable
    make_head: Callable
    img_size: int
    anchors: AnchorSet | None = None
    rules: Mapping[str, Callable] = field(default_factory=dict)
    default_rule: str = "single"
    nms: Callable | None = None
    short_run: Mapping[str, object] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if self.rules and self.default_rule not in self.rules:
            raise ValueError(f"{self.name}: default rule {self.default_rule!r} is not one of "
                             f"{sorted(self.rules)}")


_REGISTRY: dict[str, DetectorSpec] = {}


def register(spec: DetectorSpec) -> DetectorSpec:
    """Add ``spec`` under ``spec.name``. Registering a name again from the module that owns it
    (a reload) replaces it; from another module it is an error."""
    old = _REGISTRY.get(spec.name)
    if old is not None and _owner(old) != _owner(spec):
        raise ValueError(f"{spec.name!r} is already registered by {_owner(old)}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a name (tests that register a toy detector clean up with it)."""
    _REGISTRY.pop(name, None)


def _owner(spec: DetectorSpec) -> str:
    return getattr(spec.make_model, "__module__", "?")


def _load_builtin() -> None:
    importlib.import_module("yolo_teach.models")  # its model files register their names


def get_spec(name: str) -> DetectorSpec:
    """The spec registered under ``name``; ``ValueError`` listing the names otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; expected one of {detector_names()}")
    return _REGISTRY[name]


def detector_names() -> list[str]:
    """Every registered name, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def assignment_rules() -> list[str]:
    """Every assignment rule some registered detector accepts, sorted."""
    _load_builtin()
    return sorted({rule for spec in _REGISTRY.values() for rule in spec.rules})
